package issuers

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// testKey is a signing key and the public JWK a test issuer publishes for it.
type testKey struct {
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
	kid  string
}

func (k testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// rsaKey is generated once: 2048-bit RSA takes long enough to notice.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func mustKey(tb testing.TB, alg jose.SignatureAlgorithm, kid string) testKey {
	tb.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256:
		priv = rsaKey()
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		tb.Fatalf("no test key for %s", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return testKey{alg: alg, priv: priv, kid: kid}
}

// mustSign signs claims with key through go-jose; headers are extra
// protected header parameters.
func mustSign(tb testing.TB, key testKey, claims any, headers map[jose.HeaderKey]any) string {
	tb.Helper()
	opts := &jose.SignerOptions{}
	opts.WithType("JWT")
	if key.kid != "" {
		opts.WithHeader("kid", key.kid)
	}
	for k, v := range headers {
		opts.WithHeader(k, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: key.priv}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return mustSignWith(tb, s, claims)
}

func mustSignWith(tb testing.TB, s jose.Signer, claims any) string {
	tb.Helper()
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// t0 is the test clock's start.
var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// claimsFor returns valid claims from iss at now.
func claimsFor(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss":        iss,
		"sub":        "repo:acme/app:ref:refs/heads/main",
		"aud":        "https://tokens.example",
		"jti":        "j-1",
		"iat":        now.Unix(),
		"nbf":        now.Unix(),
		"exp":        now.Add(10 * time.Minute).Unix(),
		"repository": "acme/app",
	}
}

// clock is a settable clock for Config.Clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testIssuer is an OIDC issuer on httptest: it serves a discovery document
// and a JWKS, counts every request, and can be told to misbehave.
type testIssuer struct {
	srv *httptest.Server
	URL string

	discoveryHits, jwksHits, otherHits atomic.Int64

	mu           sync.Mutex
	keys         []jose.JSONWebKey
	rawJWKS      []byte // if set, served instead of keys
	cacheControl string
	discovery    func(w http.ResponseWriter, r *http.Request) // if set, serves discovery
	jwks         func(w http.ResponseWriter, r *http.Request) // if set, serves the JWKS
	docIssuer    string                                       // if set, the discovery document's issuer
	jwksURI      string                                       // if set, the discovery document's jwks_uri
}

func newTestIssuer(tb testing.TB, keys ...testKey) *testIssuer {
	tb.Helper()
	ti := &testIssuer{}
	for _, k := range keys {
		ti.keys = append(ti.keys, k.jwk())
	}
	ti.srv = httptest.NewServer(http.HandlerFunc(ti.serve))
	tb.Cleanup(ti.srv.Close)
	ti.URL = ti.srv.URL
	return ti
}

func (ti *testIssuer) serve(w http.ResponseWriter, r *http.Request) {
	ti.mu.Lock()
	discovery, jwksFn, cc := ti.discovery, ti.jwks, ti.cacheControl
	ti.mu.Unlock()
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		ti.discoveryHits.Add(1)
		if discovery != nil {
			discovery(w, r)
			return
		}
		ti.mu.Lock()
		doc := map[string]string{"issuer": ti.URL, "jwks_uri": ti.URL + "/jwks"}
		if ti.docIssuer != "" {
			doc["issuer"] = ti.docIssuer
		}
		if ti.jwksURI != "" {
			doc["jwks_uri"] = ti.jwksURI
		}
		ti.mu.Unlock()
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		_ = json.NewEncoder(w).Encode(doc)
	case "/jwks":
		ti.jwksHits.Add(1)
		if jwksFn != nil {
			jwksFn(w, r)
			return
		}
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		_, _ = w.Write(ti.jwksBody())
	default:
		ti.otherHits.Add(1)
		http.NotFound(w, r)
	}
}

func (ti *testIssuer) jwksBody() []byte {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if ti.rawJWKS != nil {
		return ti.rawJWKS
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: ti.keys})
	if err != nil {
		panic(err)
	}
	return b
}

func (ti *testIssuer) setKeys(keys ...testKey) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.keys = nil
	for _, k := range keys {
		ti.keys = append(ti.keys, k.jwk())
	}
}

func (ti *testIssuer) set(f func(ti *testIssuer)) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	f(ti)
}

func (ti *testIssuer) hits() int64 {
	return ti.discoveryHits.Load() + ti.jwksHits.Load() + ti.otherHits.Load()
}

// mustSet returns a Set trusting issuers on the clock c, with cfg's other
// fields.
func mustSet(tb testing.TB, c *clock, cfg Config, issuers ...Issuer) *Set {
	tb.Helper()
	cfg.Issuers = append(cfg.Issuers, issuers...)
	if c != nil {
		cfg.Clock = c.Now
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// wantReason fails unless err is an *Error with reason and a message that
// does not quote raw (the token).
func wantReason(tb testing.TB, err error, reason, raw string) *Error {
	tb.Helper()
	var e *Error
	if !errors.As(err, &e) {
		tb.Fatalf("error %v (%T), want *Error with reason %s", err, err, reason)
	}
	if e.Reason != reason {
		tb.Fatalf("reason %q (%s), want %q", e.Reason, e.Message, reason)
	}
	if e.Message == "" {
		tb.Fatal("empty message")
	}
	if raw != "" && strings.Contains(e.Message, raw) {
		tb.Fatalf("message %q quotes the token", e.Message)
	}
	return e
}

// observed records Observer calls.
type observed struct {
	mu    sync.Mutex
	calls []string // "document ok" or "document error"
}

func (o *observed) Fetched(issuer, document string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := document + " ok"
	if err != nil {
		s = document + " error"
	}
	o.calls = append(o.calls, s)
}

func (o *observed) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.calls...)
}
