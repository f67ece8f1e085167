package verifier_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokenservice/tokenservice/pkg/verifier"
)

// testIssuer serves a discovery document and a JWK set that a test changes,
// and counts the fetches.
type testIssuer struct {
	srv         *httptest.Server
	jwksFetches atomic.Int32
	discovery   atomic.Int32

	mu        sync.Mutex
	published []*testKey
	failure   string // non-empty: the JWKS answers this body with status failCode
	failCode  int
}

// testKey is an ES256 signing key with its kid.
type testKey struct {
	kid  string
	priv *ecdsa.PrivateKey
}

func newTestKey(t *testing.T) *testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: rand.Text()[:8], priv: priv}
}

// newTestIssuer starts an issuer publishing keys.
func newTestIssuer(t *testing.T, keys ...*testKey) *testIssuer {
	t.Helper()
	ti := &testIssuer{published: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		ti.discovery.Add(1)
		json.NewEncoder(w).Encode(map[string]string{"issuer": ti.srv.URL, "jwks_uri": ti.srv.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		ti.jwksFetches.Add(1)
		ti.mu.Lock()
		defer ti.mu.Unlock()
		if ti.failure != "" {
			w.WriteHeader(ti.failCode)
			w.Write([]byte(ti.failure))
			return
		}
		var set jose.JSONWebKeySet
		for _, k := range ti.published {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: "ES256", Use: "sig"})
		}
		json.NewEncoder(w).Encode(set)
	})
	ti.srv = httptest.NewServer(mux)
	t.Cleanup(ti.srv.Close)
	return ti
}

// publish makes keys the whole JWK set, answered with 200.
func (ti *testIssuer) publish(keys ...*testKey) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.published, ti.failure = keys, ""
}

// fail makes the JWK set answer code with body.
func (ti *testIssuer) fail(code int, body string) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.failure, ti.failCode = body, code
}

const testAudience = "https://api.example.test"

// newVerifier returns a Verifier of ti's tokens (cfg's Issuer and Audience
// default to ti's; ti serves http on 127.0.0.1, so AllowInsecureLoopback is
// set), closed when the test ends.
func (ti *testIssuer) newVerifier(t *testing.T, cfg verifier.Config) *verifier.Verifier {
	t.Helper()
	cfg.AllowInsecureLoopback = true
	if cfg.Issuer == "" {
		cfg.Issuer = ti.srv.URL
	}
	if cfg.Audience == "" {
		cfg.Audience = testAudience
	}
	v, err := verifier.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// validClaims are what the issuer puts in an access token minted now.
func (ti *testIssuer) validClaims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{
		"iss": ti.srv.URL, "aud": []string{testAudience}, "sub": "user1", "client_id": "tok1",
		"jti": "jti1", "iat": now, "exp": now + 60,
	}
}

// token returns an access token for ti signed ES256 by k, with claims
// merged over validClaims (a nil value removes the claim).
func (ti *testIssuer) token(t *testing.T, k *testKey, claims map[string]any) string {
	t.Helper()
	return mint(t, jose.ES256, jose.JSONWebKey{Key: k.priv, KeyID: k.kid}, map[string]any{"typ": "at+jwt"}, merge(ti.validClaims(), claims))
}

// mint signs claims with key and alg, with extra headers; alg "none" makes
// an unsecured JWS (RFC 7515 Appendix A.5), which go-jose will not sign.
func mint(t *testing.T, alg jose.SignatureAlgorithm, key any, headers, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	if alg == "none" {
		h, _ := json.Marshal(merge(map[string]any{"alg": "none"}, headers))
		return b64(h) + "." + b64(payload) + "."
	}
	opts := &jose.SignerOptions{}
	for k, v := range headers {
		opts = opts.WithHeader(jose.HeaderKey(k), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// merge returns base with over applied: a nil value in over removes the key.
func merge(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}
