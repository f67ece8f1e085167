package auth

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPasswords(t *testing.T) {
	p, err := NewPasswords(Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}, rand.Reader, 1)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := p.Hash(t.Context(), "correct horse")
	h2, _ := p.Hash(t.Context(), "correct horse")
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
		got, err := p.Verify(t.Context(), tc.password, tc.hash)
		if err != nil || got != tc.want {
			t.Errorf("Verify(%q, %.20q) = %v, %v; want %v", tc.password, tc.hash, got, err, tc.want)
		}
	}
	if _, err := p.Verify(t.Context(), "x", "$argon2id$v=19$garbage"); err == nil {
		t.Error("a malformed hash verified without error")
	}
}

func TestOWASPParams(t *testing.T) {
	p, err := NewPasswords(OWASPParams, rand.Reader, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := p.Hash(t.Context(), "x")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q does not carry OWASP's parameters", h)
	}
}

func TestVerifyConcurrencyIsBounded(t *testing.T) {
	p, err := NewPasswords(Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}, rand.Reader, 2)
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := p.Hash(t.Context(), "pw")
	var inFlight, peak atomic.Int32
	derive := p.Derive
	p.Derive = func(pw, salt []byte, tm, mem uint32, th uint8, n uint32) []byte {
		cur := inFlight.Add(1)
		for old := peak.Load(); cur > old && !peak.CompareAndSwap(old, cur); old = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		return derive(pw, salt, tm, mem, th, n)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if i%2 == 0 { // hashing a new password takes a slot too
				if _, err := p.Hash(t.Context(), "new pw"); err != nil {
					t.Errorf("Hash: %v", err)
				}
				return
			}
			if ok, err := p.Verify(t.Context(), "pw", hash); !ok || err != nil {
				t.Errorf("Verify = %v, %v", ok, err)
			}
		})
	}
	wg.Wait()
	if got := peak.Load(); got != 2 {
		t.Errorf("%d hashes and verifications ran at once, want the bound of 2", got)
	}

	// A caller whose context ends while waiting for a slot gives up.
	p.slots <- struct{}{}
	p.slots <- struct{}{}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := p.Verify(ctx, "pw", hash); err == nil {
		t.Error("Verify with every slot taken returned without waiting for its context")
	}
	if _, err := p.Hash(ctx, "pw"); err == nil {
		t.Error("Hash with every slot taken returned without waiting for its context")
	}
}
