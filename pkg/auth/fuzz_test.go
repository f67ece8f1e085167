package auth

import (
	"crypto/rand"
	"testing"
)

// FuzzParseAPIToken: any string parses or is refused without panicking, and
// whatever parses prints back as itself.
func FuzzParseAPIToken(f *testing.F) {
	tok, _ := NewAPIToken(rand.Reader)
	for _, seed := range []string{tok.String(), "", "tks_", tok.String()[:40], tok.String() + "x", "tks_" + string(make([]byte, 66)), "\xff\xfe"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parsed, ok := ParseAPIToken(s)
		if ok && parsed.String() != s {
			t.Fatalf("ParseAPIToken(%q) = %+v, which prints as %q", s, parsed, parsed.String())
		}
	})
}
