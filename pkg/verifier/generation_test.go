package verifier_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokenservice/tokenservice/pkg/verifier"
)

// scriptedJWKS serves a key set whose every answer the test chooses: the
// handler of the nth fetch is answers[n-1], or the last one past the end.
type scriptedJWKS struct {
	srv     *httptest.Server
	fetches atomic.Int32
	answers []func(w http.ResponseWriter)
}

func newScriptedJWKS(t *testing.T, answers ...func(w http.ResponseWriter)) *scriptedJWKS {
	t.Helper()
	s := &scriptedJWKS{answers: answers}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.fetches.Add(1))
		s.answers[min(n, len(s.answers))-1](w)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// keySet answers the key set of keys.
func keySet(keys ...*testKey) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		var set jose.JSONWebKeySet
		for _, k := range keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: "ES256", Use: "sig"})
		}
		json.NewEncoder(w).Encode(set)
	}
}

// after closes arrived when the fetch arrives, waits for release, then
// answers with answer.
func after(arrived, release chan struct{}, answer func(w http.ResponseWriter)) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		close(arrived)
		<-release
		answer(w)
	}
}

// A background fetch that started first but answers last does not bring
// back its older key set over the newer one a fetch for an unknown kid got
// meanwhile: the new key stays accepted.
func TestSlowBackgroundRefreshKeepsTheNewerKeys(t *testing.T) {
	a, b := newTestKey(t), newTestKey(t)
	staleArrived, releaseStale := make(chan struct{}), make(chan struct{})
	nextBackground := make(chan struct{})
	var once sync.Once
	jwks := newScriptedJWKS(t,
		keySet(a), // New
		after(staleArrived, releaseStale, keySet(a)), // the background fetch, before b was published
		keySet(a, b), // the fetch for b's unknown kid
		func(w http.ResponseWriter) { // the next background fetch: the stale one has ended
			once.Do(func() { close(nextBackground) })
			http.Error(w, "down", http.StatusServiceUnavailable) // a failure keeps the keys
		},
	)
	defer close(releaseStale) // before the server's Cleanup waits for its handlers
	ti := newTestIssuer(t)
	v := ti.newVerifier(t, verifier.Config{JWKSURL: jwks.srv.URL, RefreshInterval: time.Millisecond, MinRefreshInterval: time.Hour})
	ctx := context.Background()

	<-staleArrived
	token := ti.token(t, b, nil)
	if _, err := v.Verify(ctx, token); err != nil {
		t.Fatalf("b, fetched for its unknown kid: %v", err)
	}
	releaseStale <- struct{}{} // the stale answer goes out
	<-nextBackground
	if _, err := v.Verify(ctx, token); err != nil {
		t.Errorf("b, after the older key set arrived: %v", err)
	}
}

// A request waiting for the fetch its unknown kid caused returns when its
// own context ends; the fetch goes on, and its keys serve the next request.
func TestUnknownKidWaitEndsWithTheRequest(t *testing.T) {
	a, b := newTestKey(t), newTestKey(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	jwks := newScriptedJWKS(t, keySet(a), after(arrived, release, keySet(a, b)), keySet(a, b))
	var released sync.Once
	releaseOnce := func() { released.Do(func() { close(release) }) }
	defer releaseOnce()
	ti := newTestIssuer(t)
	v := ti.newVerifier(t, verifier.Config{JWKSURL: jwks.srv.URL, RefreshInterval: time.Hour, MinRefreshInterval: time.Hour})
	token := ti.token(t, b, nil)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := v.Verify(ctx, token)
		done <- err
	}()
	<-arrived
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, verifier.ErrInvalidToken) || !errors.Is(err, context.Canceled) {
			t.Errorf("Verify = %v, want ErrInvalidToken and context.Canceled", err)
		}
	case <-time.After(5 * time.Second): // a bound on a hang, not a timing assertion
		t.Fatal("Verify did not return when its context was cancelled while the fetch ran")
	}

	releaseOnce()
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Errorf("the next request, once the fetch ended: %v", err)
	}
	if got := jwks.fetches.Load(); got != 2 {
		t.Errorf("%d key set fetches, want 2 (New and the one unknown kid)", got)
	}
}
