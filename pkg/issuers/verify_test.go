package issuers

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

func TestVerifyAcceptsEachAlgorithm(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			key := mustKey(t, alg, "k-"+string(alg))
			ti := newTestIssuer(t, key)
			c := newClock()
			s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
			claims := claimsFor(ti.URL, c.Now())
			claims["aud"] = []string{"a", "b"}
			got, err := s.Verify(t.Context(), mustSign(t, key, claims, nil))
			if err != nil {
				t.Fatal(err)
			}
			want := &Token{
				Issuer:   ti.URL,
				Subject:  "repo:acme/app:ref:refs/heads/main",
				ID:       "j-1",
				Audience: []string{"a", "b"},
				IssuedAt: c.Now(),
				Expiry:   c.Now().Add(10 * time.Minute),
				Claims: map[string]any{
					"iss": ti.URL, "sub": "repo:acme/app:ref:refs/heads/main", "aud": []any{"a", "b"}, "jti": "j-1",
					"iat": float64(c.Now().Unix()), "nbf": float64(c.Now().Unix()),
					"exp": float64(c.Now().Add(10 * time.Minute).Unix()), "repository": "acme/app",
				},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifyRefusesTokens(t *testing.T) {
	key := mustKey(t, jose.RS256, "rsa")
	ecKey := mustKey(t, jose.ES256, "ec")
	ti := newTestIssuer(t, key, ecKey)
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
	now := c.Now()
	with := func(change func(m map[string]any)) map[string]any {
		m := claimsFor(ti.URL, now)
		change(m)
		return m
	}
	good := claimsFor(ti.URL, now)

	pubDER, err := x509.MarshalPKIXPublicKey(rsaKey().Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	b64 := base64.RawURLEncoding.EncodeToString
	payload := b64([]byte(`{"iss":"` + ti.URL + `","sub":"x","iat":` + jsonInt(now.Unix()) + `,"exp":` + jsonInt(now.Add(time.Minute).Unix()) + `}`))
	other := mustKey(t, jose.ES256, "ec") // same kid, another key

	for _, tc := range []struct {
		name, raw, reason string
	}{
		{"garbage", "not a token", ReasonMalformed},
		{"two parts", "a.b", ReasonMalformed},
		{"header not base64", "!!.e30.e30", ReasonMalformed},
		{"header not JSON", b64([]byte("x")) + "." + payload + ".", ReasonMalformed},
		{"payload not JSON", b64([]byte(`{"alg":"RS256","kid":"rsa"}`)) + "." + b64([]byte("[")) + "." + b64([]byte("sig")), ReasonMalformed},
		{"aud not a string", mustSign(t, key, with(func(m map[string]any) { m["aud"] = 7 }), nil), ReasonMalformed},
		{"alg none", b64([]byte(`{"alg":"none","kid":"rsa"}`)) + "." + payload + ".", ReasonUnsupportedAlg},
		{"alg None", b64([]byte(`{"alg":"None"}`)) + "." + payload + ".", ReasonUnsupportedAlg},
		{"HS256 keyed with the public key PEM", hmacToken(t, pubPEM, "rsa", good), ReasonUnsupportedAlg},
		{"HS256 keyed with the public key DER", hmacToken(t, pubDER, "", good), ReasonUnsupportedAlg},
		{"RS512", mustSign(t, testKey{alg: jose.RS512, priv: rsaKey(), kid: "rsa"}, good, nil), ReasonUnsupportedAlg},
		{"PS256", mustSign(t, testKey{alg: jose.PS256, priv: rsaKey(), kid: "rsa"}, good, nil), ReasonUnsupportedAlg},
		{"no iss", mustSign(t, key, with(func(m map[string]any) { delete(m, "iss") }), nil), ReasonMissingClaim},
		{"untrusted iss", mustSign(t, key, with(func(m map[string]any) { m["iss"] = "https://evil.example" }), nil), ReasonUntrustedIssuer},
		{"iss with a trailing slash", mustSign(t, key, with(func(m map[string]any) { m["iss"] = ti.URL + "/" }), nil), ReasonUntrustedIssuer},
		{"signature by another key", mustSign(t, other, good, nil), ReasonSignature},
		{"payload changed", tamper(mustSign(t, key, good, nil), b64([]byte(`{"iss":"`+ti.URL+`","sub":"admin","iat":`+jsonInt(now.Unix())+`,"exp":`+jsonInt(now.Add(time.Minute).Unix())+`}`))), ReasonSignature},
		{"RSA kid with ES256", mustSign(t, testKey{alg: jose.ES256, priv: other.priv, kid: "rsa"}, good, nil), ReasonUnknownKey},
		{"no kid with two keys", mustSign(t, testKey{alg: jose.RS256, priv: rsaKey()}, good, nil), ReasonUnknownKey},
		{"no exp", mustSign(t, key, with(func(m map[string]any) { delete(m, "exp") }), nil), ReasonMissingClaim},
		{"no iat", mustSign(t, key, with(func(m map[string]any) { delete(m, "iat") }), nil), ReasonMissingClaim},
		{"no sub", mustSign(t, key, with(func(m map[string]any) { delete(m, "sub") }), nil), ReasonMissingClaim},
		{"expired beyond leeway", mustSign(t, key, with(func(m map[string]any) { m["exp"] = now.Add(-61 * time.Second).Unix() }), nil), ReasonExpired},
		{"nbf beyond leeway", mustSign(t, key, with(func(m map[string]any) { m["nbf"] = now.Add(61 * time.Second).Unix() }), nil), ReasonNotYetValid},
		{"iat in the future beyond leeway", mustSign(t, key, with(func(m map[string]any) { m["iat"] = now.Add(61 * time.Second).Unix() }), nil), ReasonTooOld},
		{"iat older than MaxAge", mustSign(t, key, with(func(m map[string]any) { m["iat"] = now.Add(-time.Hour - 61*time.Second).Unix() }), nil), ReasonTooOld},
		{"too long", mustSign(t, key, with(func(m map[string]any) { m["pad"] = strings.Repeat("a", maxTokenBytes) }), nil), ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := s.Verify(t.Context(), tc.raw)
			if tok != nil {
				t.Errorf("token %+v, want none", tok)
			}
			wantReason(t, err, tc.reason, tc.raw)
		})
	}
}

func jsonInt(n int64) string { return strconv.FormatInt(n, 10) }

// tamper replaces raw's payload, keeping its header and signature.
func tamper(raw, payload string) string {
	p := strings.Split(raw, ".")
	return p[0] + "." + payload + "." + p[2]
}

// hmacToken signs claims with HS256 through go-jose, keyed with secret:
// the classic confusion when secret is the issuer's public key.
func hmacToken(t *testing.T, secret []byte, kid string, claims any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if kid != "" {
		opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return mustSignWith(t, signer, claims)
}

func TestVerifyLeeway(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	ti := newTestIssuer(t, key)
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
	now := c.Now()
	for name, change := range map[string]func(m map[string]any){
		"expired within leeway":   func(m map[string]any) { m["exp"] = now.Add(-59 * time.Second).Unix() },
		"nbf within leeway":       func(m map[string]any) { m["nbf"] = now.Add(59 * time.Second).Unix() },
		"iat ahead within leeway": func(m map[string]any) { m["iat"] = now.Add(59 * time.Second).Unix() },
		"iat at MaxAge":           func(m map[string]any) { m["iat"] = now.Add(-time.Hour).Unix() },
		"no nbf":                  func(m map[string]any) { delete(m, "nbf") },
		"no jti":                  func(m map[string]any) { delete(m, "jti") },
	} {
		m := claimsFor(ti.URL, now)
		change(m)
		if _, err := s.Verify(t.Context(), mustSign(t, key, m, nil)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVerifyTokenWithoutKidUsesTheOnlyKey(t *testing.T) {
	key := mustKey(t, jose.EdDSA, "only")
	ti := newTestIssuer(t, key)
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
	noKid := testKey{alg: key.alg, priv: key.priv}
	if _, err := s.Verify(t.Context(), mustSign(t, noKid, claimsFor(ti.URL, c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	// The only key, but of another type than the token's alg: not used.
	ec := mustKey(t, jose.ES256, "")
	_, err := s.Verify(t.Context(), mustSign(t, ec, claimsFor(ti.URL, c.Now()), nil))
	wantReason(t, err, ReasonUnknownKey, "")
}

func TestVerifyIgnoresKeysWhoseAlgDisagrees(t *testing.T) {
	key := mustKey(t, jose.RS256, "rsa")
	ti := newTestIssuer(t)
	jwk := key.jwk()
	jwk.Algorithm = string(jose.PS256) // published for PS256 only
	ti.set(func(ti *testIssuer) { ti.keys = []jose.JSONWebKey{jwk} })
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
	_, err := s.Verify(t.Context(), mustSign(t, key, claimsFor(ti.URL, c.Now()), nil))
	wantReason(t, err, ReasonUnknownKey, "")
}

func TestVerifyMessagesQuoteNoTokenAndClipValues(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	ti := newTestIssuer(t, key)
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
	m := claimsFor("https://evil.example/"+strings.Repeat("x", 500)+"\n", c.Now())
	_, err := s.Verify(context.Background(), mustSign(t, key, m, nil))
	e := wantReason(t, err, ReasonUntrustedIssuer, "")
	if len(e.Message) > 200 || strings.Contains(e.Message, "\n") {
		t.Errorf("message %q: want the issuer clipped and quoted", e.Message)
	}
}
