package auth

import (
	"crypto/rand"
	"strings"
	"testing"
)

func TestPasswords(t *testing.T) {
	p, err := NewPasswords(Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := p.Hash("correct horse")
	h2, _ := p.Hash("correct horse")
	if h1 == h2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(h1, "correct horse") {
		t.Errorf("hash %q is not an argon2id PHC string", h1)
	}
	for _, tc := range []struct {
		password, hash string
		want           bool
	}{
		{"correct horse", h1, true},
		{"correct horsf", h1, false},
		{"", h1, false},
		{"correct horse", "", false}, // no such user or a machine user: the dummy hash
	} {
		got, err := p.Verify(tc.password, tc.hash)
		if err != nil || got != tc.want {
			t.Errorf("Verify(%q, %.20q) = %v, %v; want %v", tc.password, tc.hash, got, err, tc.want)
		}
	}
	if _, err := p.Verify("x", "$argon2id$v=19$garbage"); err == nil {
		t.Error("a malformed hash verified without error")
	}
}

func TestOWASPParams(t *testing.T) {
	p, err := NewPasswords(OWASPParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := p.Hash("x")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q does not carry OWASP's parameters", h)
	}
}
