package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// standIn is a platform's OIDC issuer in miniature (GitHub Actions, a
// Kubernetes cluster): on a loopback httptest server it serves its
// discovery document and JWKS, signs tokens with go-jose, and counts every
// request by path, so a test can say what the service fetched.
type standIn struct {
	t   *testing.T
	srv *httptest.Server
	URL string

	mu        sync.Mutex
	published []*standInKey // in the JWKS
	hits      map[string]int
}

// standInKey is one signing key of a standIn.
type standInKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

// newStandIn starts an issuer publishing one RS256 key, "k1".
func newStandIn(t *testing.T) *standIn {
	t.Helper()
	o := &standIn{t: t, hits: map[string]int{}}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.srv.Close)
	o.URL = o.srv.URL
	o.addKey("k1", jose.RS256)
	return o
}

func (o *standIn) serve(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.hits[r.URL.Path]++
	keys := jose.JSONWebKeySet{}
	for _, k := range o.published {
		keys.Keys = append(keys.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		json.NewEncoder(w).Encode(map[string]any{"issuer": o.URL, "jwks_uri": o.URL + "/jwks"})
	case "/jwks":
		json.NewEncoder(w).Encode(keys)
	default:
		http.NotFound(w, r)
	}
}

// newKey makes a key of alg, not yet published.
func newKey(t *testing.T, kid string, alg jose.SignatureAlgorithm) *standInKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256, jose.HS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &standInKey{kid: kid, alg: alg, priv: priv}
}

// addKey makes and publishes a key.
func (o *standIn) addKey(kid string, alg jose.SignatureAlgorithm) *standInKey {
	k := newKey(o.t, kid, alg)
	o.mu.Lock()
	o.published = append(o.published, k)
	o.mu.Unlock()
	return k
}

// key returns the published key kid.
func (o *standIn) key(kid string) *standInKey {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range o.published {
		if k.kid == kid {
			return k
		}
	}
	o.t.Fatalf("no key %q", kid)
	return nil
}

// requests returns how many requests path had; "" for all paths.
func (o *standIn) requests(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if path != "" {
		return o.hits[path]
	}
	n := 0
	for _, c := range o.hits {
		n += c
	}
	return n
}

func (o *standIn) jwksRequests() int { return o.requests("/jwks") }

// claims are a fresh token's claims from o for sub and aud, as a platform
// issues them; change any before signing.
func (o *standIn) claims(sub, aud string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": o.URL, "sub": sub, "aud": aud, "jti": rand.Text(),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"repository_owner": "acme", "ref": "refs/heads/main",
	}
}

// token signs claims with o's first key.
func (o *standIn) token(claims map[string]any) string {
	return o.key("k1").sign(o.t, claims, nil)
}

// sign signs claims as a compact JWS with header kid and extra headers.
func (k *standInKey) sign(t *testing.T, claims map[string]any, extra map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	for h, v := range extra {
		opts = opts.WithHeader(h, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// trusting returns the env that makes a service trust issuers, refreshing
// their keys at most once per refresh.
func trusting(refresh time.Duration, issuers ...*standIn) []string {
	var urls []string
	for _, o := range issuers {
		urls = append(urls, o.URL)
	}
	return []string{"TOKENSERVICE_TRUSTED_ISSUERS", strings.Join(urls, ","),
		"TOKENSERVICE_ISSUER_KEYS_REFRESH_INTERVAL", refresh.String()}
}
