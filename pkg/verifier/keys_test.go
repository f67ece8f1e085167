package verifier_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokenservice/tokenservice/pkg/verifier"
)

func TestNewDiscoversTheKeys(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a)
	v := ti.newVerifier(t, verifier.Config{})
	if _, err := v.Verify(context.Background(), ti.token(t, a, nil)); err != nil {
		t.Fatal(err)
	}
	if got := ti.discovery.Load(); got != 1 {
		t.Errorf("discovery fetched %d times, want 1", got)
	}
}

func TestNewWithJWKSURLSkipsDiscovery(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a)
	v := ti.newVerifier(t, verifier.Config{Issuer: ti.srv.URL, JWKSURL: ti.srv.URL + "/keys"})
	if _, err := v.Verify(context.Background(), ti.token(t, a, nil)); err != nil {
		t.Fatal(err)
	}
	if got := ti.discovery.Load(); got != 0 {
		t.Errorf("discovery fetched %d times, want 0", got)
	}
}

func TestNewFails(t *testing.T) {
	ti := newTestIssuer(t, newTestKey(t))
	impostor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Another server's discovery document, naming the real keys.
		json.NewEncoder(w).Encode(map[string]string{"issuer": ti.srv.URL, "jwks_uri": ti.srv.URL + "/keys"})
	}))
	t.Cleanup(impostor.Close)
	for name, cfg := range map[string]verifier.Config{
		"no issuer":                         {Audience: testAudience, JWKSURL: ti.srv.URL + "/keys"},
		"no audience":                       {Issuer: ti.srv.URL, JWKSURL: ti.srv.URL + "/keys"},
		"discovery names another issuer":    {Issuer: impostor.URL, Audience: testAudience},
		"no discovery document":             {Issuer: ti.srv.URL + "/nothing", Audience: testAudience},
		"no key set":                        {Issuer: ti.srv.URL, Audience: testAudience, JWKSURL: ti.srv.URL + "/nothing"},
		"a key set with no ES256 key in it": {Issuer: ti.srv.URL, Audience: testAudience, JWKSURL: ti.srv.URL + "/.well-known/openid-configuration"},
	} {
		cfg.AllowInsecureLoopback = true // ti is http on 127.0.0.1
		if v, err := verifier.New(context.Background(), cfg); err == nil {
			v.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// Keys the Verifier cannot use (another type, use or alg) are skipped, and
// do not hide the ES256 key beside them.
func TestKeySetWithOtherKeys(t *testing.T) {
	a := newTestKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &rsaKey.PublicKey, KeyID: "rsa", Algorithm: "RS256", Use: "sig"},
		{Key: &a.priv.PublicKey, KeyID: "enc", Use: "enc"},
		{Key: &a.priv.PublicKey, KeyID: a.kid, Algorithm: "ES256", Use: "sig"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	set = []byte(strings.Replace(string(set), `{"keys":[`, `{"keys":[{"kty":"OKP","crv":"X448","x":"AA"},`, 1))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(set) }))
	t.Cleanup(srv.Close)
	ti := newTestIssuer(t)
	v := ti.newVerifier(t, verifier.Config{JWKSURL: srv.URL})
	if _, err := v.Verify(context.Background(), ti.token(t, a, nil)); err != nil {
		t.Errorf("ES256 key: %v", err)
	}
	encToken := mint(t, jose.ES256, a.priv, map[string]any{"kid": "enc", "typ": "at+jwt"}, ti.validClaims())
	if _, err := v.Verify(context.Background(), encToken); !errors.Is(err, verifier.ErrInvalidToken) {
		t.Errorf("key published for encryption: Verify = %v, want ErrInvalidToken", err)
	}
}

// A token signed with a key published since the last fetch is accepted:
// it makes the Verifier fetch the keys again, at most once per
// MinRefreshInterval however many unknown kids arrive.
func TestUnknownKidRefreshesAtMostOncePerInterval(t *testing.T) {
	a, b, c := newTestKey(t), newTestKey(t), newTestKey(t)
	ti := newTestIssuer(t, a)
	v := ti.newVerifier(t, verifier.Config{MinRefreshInterval: time.Hour})
	ctx := context.Background()

	ti.publish(a, b)
	if _, err := v.Verify(ctx, ti.token(t, b, nil)); err != nil {
		t.Fatalf("token signed by a key published since New: %v", err)
	}
	if got := ti.jwksFetches.Load(); got != 2 {
		t.Fatalf("%d key set fetches, want 2 (New and the unknown kid)", got)
	}

	ti.publish(a, b, c)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			made := mint(t, jose.ES256, c.priv, map[string]any{"kid": rand.Text(), "typ": "at+jwt"}, ti.validClaims())
			if _, err := v.Verify(ctx, made); !errors.Is(err, verifier.ErrInvalidToken) {
				t.Errorf("made-up kid: Verify = %v, want ErrInvalidToken", err)
			}
		})
	}
	wg.Wait()
	if _, err := v.Verify(ctx, ti.token(t, c, nil)); !errors.Is(err, verifier.ErrInvalidToken) {
		t.Errorf("a key published within the interval: Verify = %v, want ErrInvalidToken until the next fetch", err)
	}
	if got := ti.jwksFetches.Load(); got != 2 {
		t.Errorf("%d key set fetches after 101 unknown kids within the interval, want still 2", got)
	}
}

// Concurrent tokens with unknown kids share one fetch.
func TestUnknownKidsShareOneFetch(t *testing.T) {
	a, b := newTestKey(t), newTestKey(t)
	ti := newTestIssuer(t, a)
	v := ti.newVerifier(t, verifier.Config{})
	ti.publish(a, b)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), ti.token(t, b, nil)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := ti.jwksFetches.Load(); got != 2 {
		t.Errorf("%d key set fetches, want 2 (New and one for the unknown kid)", got)
	}
}

func TestUnknownKidRefreshesAgainAfterTheInterval(t *testing.T) {
	a, b := newTestKey(t), newTestKey(t)
	ti := newTestIssuer(t, a)
	const interval = 50 * time.Millisecond
	v := ti.newVerifier(t, verifier.Config{MinRefreshInterval: interval})
	ctx := context.Background()
	if _, err := v.Verify(ctx, ti.token(t, b, nil)); !errors.Is(err, verifier.ErrInvalidToken) {
		t.Fatalf("unpublished key: Verify = %v, want ErrInvalidToken", err)
	}
	ti.publish(a, b)
	time.Sleep(interval)
	if _, err := v.Verify(ctx, ti.token(t, b, nil)); err != nil {
		t.Errorf("key published, interval over: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5s", what)
		}
	}
}
