package main

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The stand-in issuer serves what a verifier fetches, and its subject
// tokens verify with its JWKS, each with a jti of its own; the unknown-kid
// ones name kids the JWKS lacks. It counts each document's requests.
func TestIssuerStandIn(t *testing.T) {
	iss, err := startIssuer()
	if err != nil {
		t.Fatal(err)
	}
	defer iss.close()
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, iss.url+"/.well-known/openid-configuration", &disc)
	var keys jose.JSONWebKeySet
	getJSON(t, disc.JWKSURI, &keys)
	if d, j := iss.fetches(); d != 1 || j != 1 {
		t.Errorf("fetches: %d discovery, %d JWKS; want 1 and 1", d, j)
	}
	if disc.Issuer != iss.url {
		t.Errorf("discovery names issuer %q, want %q", disc.Issuer, iss.url)
	}

	tokens, err := iss.subjectTokens(8, iss.ownKid)
	if err != nil {
		t.Fatal(err)
	}
	jtis := map[string]bool{}
	for _, raw := range tokens {
		tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		var c jwt.Claims
		if err := tok.Claims(keys, &c); err != nil {
			t.Fatalf("a subject token does not verify with the JWKS: %v", err)
		}
		if c.Issuer != iss.url || c.Subject != federatedSubject || !c.Audience.Contains(federatedAudience) || c.ID == "" {
			t.Errorf("claims %+v", c)
		}
		jtis[c.ID] = true
	}
	if len(jtis) != len(tokens) {
		t.Errorf("%d distinct jtis in %d tokens", len(jtis), len(tokens))
	}

	unknown, err := iss.subjectTokens(2, randomKid)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range unknown {
		tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		if kid := tok.Headers[0].KeyID; len(keys.Key(kid)) != 0 || kid == "" {
			t.Errorf("kid %q: want one the JWKS lacks", kid)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

// Issue 21's targets are judged from the summary: the federated exchange
// against the API token's, both without reuse, and the flood's fetches
// against one per refresh interval.
func TestFederationTargets(t *testing.T) {
	for _, c := range []struct {
		summary          map[string]any
		ratioMet, kidMet bool
	}{
		{map[string]any{"federated_of_exchange_no_reuse": 0.8, "unknown_kid_jwks_fetches": 6.0, "unknown_kid_fetches_allowed": 6.0}, true, true},
		{map[string]any{"federated_of_exchange_no_reuse": 0.79, "unknown_kid_jwks_fetches": 7.0, "unknown_kid_fetches_allowed": 6.0}, false, false},
	} {
		met := map[string]bool{}
		for _, tg := range targets(nil, c.summary, nil) {
			met[tg.What] = tg.Met
		}
		ratio, ok1 := met["federated exchange over REST, without reuse: throughput, of the API token's exchange without reuse"]
		kid, ok2 := met["unknown-kid flood: the issuer's JWKS fetches (one per refresh interval)"]
		if !ok1 || !ok2 || ratio != c.ratioMet || kid != c.kidMet {
			t.Errorf("summary %v: targets %v", c.summary, met)
		}
	}
}
