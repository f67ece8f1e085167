package auth

import (
	"crypto/rand"
	"regexp"
	"strings"
	"testing"
)

func TestAPITokenRoundTripAndPattern(t *testing.T) {
	scanner := regexp.MustCompile(TokenPattern)
	for range 100 {
		tok, err := NewAPIToken(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s := tok.String()
		if len(s) != TokenLen || !scanner.MatchString(s) {
			t.Fatalf("%q: length %d or the documented pattern does not match", s, len(s))
		}
		got, ok := ParseAPIToken(s)
		if !ok || got != tok {
			t.Fatalf("ParseAPIToken(%q) = %+v, %v; want %+v", s, got, ok, tok)
		}
	}
}

func TestParseAPITokenRejectsDamage(t *testing.T) {
	tok, _ := NewAPIToken(rand.Reader)
	s := tok.String()
	cases := map[string]string{
		"empty":          "",
		"truncated":      s[:len(s)-1],
		"extended":       s + "a",
		"other prefix":   "tkx_" + s[4:],
		"no separator":   s[:20] + "x" + s[21:],
		"non-base62":     s[:30] + "-" + s[31:],
		"bad checksum":   s[:len(s)-1] + flip(s[len(s)-1]),
		"typo in id":     s[:5] + flip(s[5]) + s[6:],
		"typo in secret": s[:30] + flip(s[30]) + s[31:],
	}
	for name, in := range cases {
		if _, ok := ParseAPIToken(in); ok {
			t.Errorf("%s: ParseAPIToken(%q) accepted it", name, in)
		}
	}
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func TestRandomBase62IsUniformish(t *testing.T) {
	// 256 bits of secret need every one of the 62 digits to be drawn, and none
	// to be much likelier than another (byte%62 without rejection would favour 0-7).
	counts := map[byte]int{}
	for range 2000 {
		s, err := randomBase62(rand.Reader, SecretLen)
		if err != nil {
			t.Fatal(err)
		}
		for i := range len(s) {
			counts[s[i]]++
		}
	}
	if len(counts) != 62 {
		t.Fatalf("drew %d distinct digits, want 62", len(counts))
	}
	mean := 2000 * SecretLen / 62
	for c, n := range counts {
		if n < mean*8/10 || n > mean*12/10 {
			t.Errorf("digit %q drawn %d times, mean %d", c, n, mean)
		}
	}
}

func TestSecretHash(t *testing.T) {
	h := HashSecret("s3cret")
	if len(h) != 32 || strings.Contains(string(h), "s3cret") {
		t.Fatalf("HashSecret = %x", h)
	}
	if !SecretMatches("s3cret", h) || SecretMatches("s3cres", h) || SecretMatches("s3cret", h[:31]) {
		t.Error("SecretMatches gives the wrong answer")
	}
}
