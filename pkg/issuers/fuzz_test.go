package issuers

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// FuzzVerify checks that Verify, whatever it is given, neither panics nor
// returns anything but a token or an *Error. The issuer's keys are a local
// file, so no input causes a network fetch.
func FuzzVerify(f *testing.F) {
	rsaK, ecK, edK := mustKey(f, jose.RS256, "rsa"), mustKey(f, jose.ES256, "ec"), mustKey(f, jose.EdDSA, "ed")
	path := filepath.Join(f.TempDir(), "jwks.json")
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{rsaK.jwk(), ecK.jwk(), edK.jwk()}}
	b, err := json.Marshal(set)
	if err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		f.Fatal(err)
	}
	const iss = "https://issuer.example"
	c := newClock()
	s := mustSet(f, c, Config{}, Issuer{URL: iss, JWKSFile: path})
	for _, k := range []testKey{rsaK, ecK, edK} {
		f.Add(mustSign(f, k, claimsFor(iss, c.Now()), nil))
	}
	f.Add(mustSign(f, ecK, claimsFor("https://other.example", c.Now()), map[jose.HeaderKey]any{"jku": iss}))
	f.Add("eyJhbGciOiJIUzI1NiIsImtpZCI6ImVjIn0.e30.c2ln")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("")
	f.Add("...")
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := s.Verify(t.Context(), raw)
		var e *Error
		switch {
		case err == nil && tok == nil:
			t.Fatal("no token and no error")
		case err != nil && (tok != nil || !errors.As(err, &e) || e.Reason == "" || e.Message == ""):
			t.Fatalf("Verify = %v, %#v: want an *Error with a reason and a message", tok, err)
		}
	})
}
