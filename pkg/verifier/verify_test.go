package verifier_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tokenservice/tokenservice/pkg/verifier"
)

func TestVerifyReturnsTheClaims(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a)
	v := ti.newVerifier(t, verifier.Config{})
	now := time.Now().Unix()
	token := ti.token(t, a, map[string]any{"iat": now - 5, "nbf": now - 5, "exp": now + 60, "scope": "read  orders:write"})

	got, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	want := &verifier.Claims{
		Subject: "user1", ClientID: "tok1", Issuer: ti.srv.URL, Audience: []string{testAudience}, ID: "jti1",
		Expiry: time.Unix(now+60, 0), IssuedAt: time.Unix(now-5, 0), NotBefore: time.Unix(now-5, 0),
		Scopes: []string{"read", "orders:write"},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(verifier.Claims{}, "Raw")); diff != "" {
		t.Errorf("Verify (-want +got):\n%s", diff)
	}
	if got.Raw["scope"] != "read  orders:write" {
		t.Errorf("Raw[scope] = %v, want the claim as it is", got.Raw["scope"])
	}
	if !got.HasScope("orders:write") || got.HasScope("orders") || got.HasScope("") {
		t.Errorf("HasScope of %q answers wrong", got.Scopes)
	}
}

func TestVerifyAccepts(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a)
	v := ti.newVerifier(t, verifier.Config{})
	now := time.Now().Unix()
	es256 := jose.JSONWebKey{Key: a.priv, KeyID: a.kid}
	for name, token := range map[string]string{
		"valid":                        ti.token(t, a, nil),
		"typ application/at+jwt":       mint(t, jose.ES256, es256, map[string]any{"typ": "application/at+jwt"}, ti.validClaims()),
		"typ in upper case":            mint(t, jose.ES256, es256, map[string]any{"typ": "AT+JWT"}, ti.validClaims()),
		"aud a string":                 ti.token(t, a, map[string]any{"aud": testAudience}),
		"aud among others":             ti.token(t, a, map[string]any{"aud": []string{"https://other.test", testAudience}}),
		"expired within the leeway":    ti.token(t, a, map[string]any{"exp": now - 10, "iat": now - 70}),
		"nbf ahead within the leeway":  ti.token(t, a, map[string]any{"nbf": now + 10}),
		"iat ahead within the leeway":  ti.token(t, a, map[string]any{"iat": now + 10}),
		"a second key of the issuer's": func() string { b := newTestKey(t); ti.publish(a, b); return ti.token(t, b, nil) }(),
	} {
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	a, other := newTestKey(t), newTestKey(t)
	ti := newTestIssuer(t, a)
	v := ti.newVerifier(t, verifier.Config{})
	now := time.Now().Unix()
	header := map[string]any{"kid": a.kid, "typ": "at+jwt"}
	publicJWK, err := json.Marshal(jose.JSONWebKey{Key: &a.priv.PublicKey, KeyID: a.kid})
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, token, why string }{
		{"alg none", mint(t, "none", nil, header, ti.validClaims()), "unexpected signature algorithm"},
		{"HS256 keyed with the public key", mint(t, jose.HS256, publicJWK, header, ti.validClaims()), "unexpected signature algorithm"},
		{"RS256", mint(t, jose.RS256, rsaKey, header, ti.validClaims()), "unexpected signature algorithm"},
		{"ES384", mint(t, jose.ES384, p384, header, ti.validClaims()), "unexpected signature algorithm"},
		{"unknown kid", mint(t, jose.ES256, a.priv, merge(header, map[string]any{"kid": "nope"}), ti.validClaims()), "unknown kid"},
		{"no kid", mint(t, jose.ES256, a.priv, map[string]any{"typ": "at+jwt"}, ti.validClaims()), "no kid"},
		{"signed by another key", mint(t, jose.ES256, other.priv, header, ti.validClaims()), "cryptographic primitive"},
		{"typ JWT", mint(t, jose.ES256, a.priv, merge(header, map[string]any{"typ": "JWT"}), ti.validClaims()), "typ"},
		{"no typ", mint(t, jose.ES256, a.priv, map[string]any{"kid": a.kid}, ti.validClaims()), "typ"},
		{"expired beyond the leeway", ti.token(t, a, map[string]any{"exp": now - 40, "iat": now - 100}), "expired"},
		{"nbf beyond the leeway", ti.token(t, a, map[string]any{"nbf": now + 40}), "not valid before"},
		{"iat beyond the leeway", ti.token(t, a, map[string]any{"iat": now + 40}), "issued in the future"},
		{"another issuer", ti.token(t, a, map[string]any{"iss": "https://evil.test"}), "iss"},
		{"the issuer with a slash", ti.token(t, a, map[string]any{"iss": ti.srv.URL + "/"}), "iss"},
		{"another audience", ti.token(t, a, map[string]any{"aud": []string{"https://other.test"}}), "aud"},
		{"no aud", ti.token(t, a, map[string]any{"aud": nil}), "aud"},
		{"no sub", ti.token(t, a, map[string]any{"sub": nil}), "no sub"},
		{"empty sub", ti.token(t, a, map[string]any{"sub": ""}), "no sub"},
		{"no client_id", ti.token(t, a, map[string]any{"client_id": nil}), "no client_id"},
		{"no jti", ti.token(t, a, map[string]any{"jti": nil}), "no jti"},
		{"no exp", ti.token(t, a, map[string]any{"exp": nil}), "no exp"},
		{"no iat", ti.token(t, a, map[string]any{"iat": nil}), "no iat"},
		{"garbage", "not.a.jwt", "illegal base64"},
		{"empty", "", "empty input"},
		{"a JWE", "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aaaa.bbbb.cccc", "compact JWS format must have three parts"},
	} {
		_, err := v.Verify(context.Background(), c.token)
		if !errors.Is(err, verifier.ErrInvalidToken) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: Verify = %v, want ErrInvalidToken because of %q", c.name, err, c.why)
		}
	}
}

// A tighter Leeway is honoured: the default would accept this token.
func TestVerifyLeeway(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a)
	v := ti.newVerifier(t, verifier.Config{Leeway: time.Second})
	now := time.Now().Unix()
	if _, err := v.Verify(context.Background(), ti.token(t, a, map[string]any{"exp": now - 10, "iat": now - 70})); !errors.Is(err, verifier.ErrInvalidToken) {
		t.Errorf("expired 10s ago with a 1s leeway: Verify = %v, want ErrInvalidToken", err)
	}
}

// NoLeeway is none, not the default: a token is refused from its exp
// on, and before its nbf and iat.
func TestVerifyZeroLeeway(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a)
	none := ti.newVerifier(t, verifier.Config{Leeway: verifier.NoLeeway})
	byDefault := ti.newVerifier(t, verifier.Config{})
	now := time.Now().Unix()
	for name, token := range map[string]string{
		"expired 2s ago":  ti.token(t, a, map[string]any{"exp": now - 2, "iat": now - 60}),
		"nbf 5s ahead":    ti.token(t, a, map[string]any{"nbf": now + 5}),
		"issued 5s ahead": ti.token(t, a, map[string]any{"iat": now + 5}),
	} {
		if _, err := none.Verify(context.Background(), token); !errors.Is(err, verifier.ErrInvalidToken) {
			t.Errorf("%s, no leeway: Verify = %v, want ErrInvalidToken", name, err)
		}
		if _, err := byDefault.Verify(context.Background(), token); err != nil {
			t.Errorf("%s, the default leeway: %v", name, err)
		}
	}
}
