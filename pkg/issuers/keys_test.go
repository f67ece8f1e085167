package issuers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

// verifyAll verifies n tokens at once, each signed by key under a random
// unknown kid, and fails if one is accepted.
func verifyUnknownKids(t *testing.T, s *Set, key testKey, iss string, now time.Time, n int) {
	t.Helper()
	raws := make([]string, n)
	for i := range raws {
		raws[i] = mustSign(t, testKey{alg: key.alg, priv: key.priv, kid: fmt.Sprintf("unknown-%d-%d", now.Unix(), i)}, claimsFor(iss, now), nil)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, raw := range raws {
		wg.Go(func() { _, errs[i] = s.Verify(context.Background(), raw) })
	}
	wg.Wait()
	for _, err := range errs {
		wantReason(t, err, ReasonUnknownKey, "")
	}
}

func TestUnknownKidsShareOneFetchPerInterval(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	ti := newTestIssuer(t, key)
	c := newClock()
	s := mustSet(t, c, Config{RefreshInterval: time.Minute}, Issuer{URL: ti.URL})

	// Cold: 200 at once share the first fetch.
	verifyUnknownKids(t, s, key, ti.URL, c.Now(), 200)
	if d, j := ti.discoveryHits.Load(), ti.jwksHits.Load(); d != 1 || j != 1 {
		t.Fatalf("cold: %d discovery and %d JWKS requests, want 1 and 1", d, j)
	}
	// Within the interval: none.
	c.Advance(59 * time.Second)
	verifyUnknownKids(t, s, key, ti.URL, c.Now(), 200)
	if j := ti.jwksHits.Load(); j != 1 {
		t.Fatalf("within the interval: %d JWKS requests in all, want 1", j)
	}
	// Each interval after: at most one more, however many tokens.
	for want := int64(2); want <= 3; want++ {
		c.Advance(time.Minute)
		verifyUnknownKids(t, s, key, ti.URL, c.Now(), 200)
		if j := ti.jwksHits.Load(); j != want {
			t.Fatalf("after another interval: %d JWKS requests in all, want %d", j, want)
		}
	}
	// The discovery document is fetched again only when its cache ends.
	if d := ti.discoveryHits.Load(); d != 1 {
		t.Errorf("%d discovery requests, want 1", d)
	}
	// The known key works throughout, without fetching.
	if _, err := s.Verify(t.Context(), mustSign(t, key, claimsFor(ti.URL, c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	if j := ti.jwksHits.Load(); j != 3 {
		t.Errorf("%d JWKS requests, want 3", j)
	}
}

func TestIssuerKeyRotation(t *testing.T) {
	old := mustKey(t, jose.RS256, "2026-old")
	next := mustKey(t, jose.ES256, "2026-next")
	ti := newTestIssuer(t, old)
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
	if _, err := s.Verify(t.Context(), mustSign(t, old, claimsFor(ti.URL, c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	ti.setKeys(next) // the issuer rotates and withdraws the old key
	c.Advance(10 * time.Second)
	raw := mustSign(t, next, claimsFor(ti.URL, c.Now()), nil)
	// Just fetched: the new kid waits for the interval.
	_, err := s.Verify(t.Context(), raw)
	wantReason(t, err, ReasonUnknownKey, raw)
	c.Advance(time.Minute)
	if _, err := s.Verify(t.Context(), raw); err != nil {
		t.Fatalf("after a refresh: %v", err)
	}
	// The refresh replaced the set: the withdrawn key is gone.
	_, err = s.Verify(t.Context(), mustSign(t, old, claimsFor(ti.URL, c.Now()), nil))
	wantReason(t, err, ReasonUnknownKey, "")
	if j := ti.jwksHits.Load(); j != 2 {
		t.Errorf("%d JWKS requests, want 2", j)
	}
}

func TestCacheFollowsMaxAge(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	ti := newTestIssuer(t, key)
	ti.set(func(ti *testIssuer) { ti.cacheControl = "public, max-age=300" })
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
	verify := func() {
		t.Helper()
		if _, err := s.Verify(t.Context(), mustSign(t, key, claimsFor(ti.URL, c.Now()), nil)); err != nil {
			t.Fatal(err)
		}
	}
	verify()
	c.Advance(299 * time.Second)
	verify()
	if d, j := ti.discoveryHits.Load(), ti.jwksHits.Load(); d != 1 || j != 1 {
		t.Fatalf("within max-age: %d discovery and %d JWKS requests, want 1 and 1", d, j)
	}
	c.Advance(time.Second)
	verify()
	if d, j := ti.discoveryHits.Load(), ti.jwksHits.Load(); d != 2 || j != 2 {
		t.Fatalf("at max-age: %d discovery and %d JWKS requests, want 2 and 2", d, j)
	}
}

func TestCacheMaxAgeIsClamped(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	for _, tc := range []struct {
		cacheControl string
		fresh        time.Duration // no fetch this long after the first
	}{
		{"max-age=1", 2 * time.Minute},      // MinCacheTTL
		{"no-store", 2 * time.Minute},       // MinCacheTTL
		{"max-age=31536000", 6 * time.Hour}, // MaxCacheTTL
		{"", 30 * time.Minute},              // DefaultCacheTTL
		{"private, max-age=900", time.Minute * 15},
	} {
		t.Run(tc.cacheControl, func(t *testing.T) {
			ti := newTestIssuer(t, key)
			ti.set(func(ti *testIssuer) { ti.cacheControl = tc.cacheControl })
			c := newClock()
			s := mustSet(t, c, Config{MinCacheTTL: 2 * time.Minute, MaxCacheTTL: 6 * time.Hour, DefaultCacheTTL: 30 * time.Minute}, Issuer{URL: ti.URL})
			for _, step := range []time.Duration{0, tc.fresh - time.Second, time.Second} {
				c.Advance(step)
				if _, err := s.Verify(t.Context(), mustSign(t, key, claimsFor(ti.URL, c.Now()), nil)); err != nil {
					t.Fatal(err)
				}
			}
			if j := ti.jwksHits.Load(); j != 2 {
				t.Errorf("%d JWKS requests, want 2 (one at the start, one at %s)", j, tc.fresh)
			}
		})
	}
}

func TestOldKeysServeAGraceWhenARefetchFails(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	ti := newTestIssuer(t, key)
	ti.set(func(ti *testIssuer) { ti.cacheControl = "max-age=3600" })
	c := newClock()
	var o observed
	s := mustSet(t, c, Config{MaxCacheTTL: 24 * time.Hour, Observer: &o}, Issuer{URL: ti.URL})
	verify := func() error {
		_, err := s.Verify(t.Context(), mustSign(t, key, claimsFor(ti.URL, c.Now()), nil))
		return err
	}
	if err := verify(); err != nil {
		t.Fatal(err)
	}
	// The issuer goes down; the keys' hour ends.
	down := func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }
	ti.set(func(ti *testIssuer) { ti.discovery, ti.jwks = down, down })
	c.Advance(time.Hour)
	if err := verify(); err != nil {
		t.Fatalf("an hour later, the issuer down: %v", err)
	}
	// Retried at most once an interval, still in grace.
	for range 3 {
		c.Advance(30 * time.Second)
		if err := verify(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"discovery ok", "jwks ok", "discovery error", "jwks error", "discovery error", "jwks error"}
	if diff := cmp.Diff(want, o.list()); diff != "" {
		t.Errorf("observer (-want +got):\n%s", diff)
	}
	// Grace ends MaxCacheTTL after the keys' cache time did.
	c.Advance(24*time.Hour - 90*time.Second - time.Second)
	if err := verify(); err != nil {
		t.Fatalf("a second before the grace ends: %v", err)
	}
	c.Advance(2 * time.Second)
	e := wantReason(t, verify(), ReasonKeysUnavailable, "")
	if !strings.Contains(e.Message, "answered 503") {
		t.Errorf("message %q, want the fetch's failure", e.Message)
	}
	// The issuer back: keys again.
	ti.set(func(ti *testIssuer) { ti.discovery, ti.jwks = nil, nil })
	c.Advance(time.Minute)
	if err := verify(); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyReturnsWhenContextEnds(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	ti := newTestIssuer(t, key)
	release := make(chan struct{})
	ti.set(func(ti *testIssuer) {
		ti.discovery = func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			http.Error(w, "late", http.StatusServiceUnavailable)
		}
	})
	defer close(release)
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := s.Verify(ctx, mustSign(t, key, claimsFor(ti.URL, c.Now()), nil))
	wantReason(t, err, ReasonKeysUnavailable, "")
}

// writeJWKS writes keys to a JWKS file, atomically as a ConfigMap update is.
func writeJWKS(t *testing.T, path string, keys ...testKey) {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, k.jwk())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestJWKSFile(t *testing.T) {
	old := mustKey(t, jose.RS256, "sa-1")
	next := mustKey(t, jose.ES256, "sa-2")
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path, old)
	// An issuer URL nothing listens on: a fetch would fail the test.
	ti := newTestIssuer(t)
	c := newClock()
	var o observed
	s := mustSet(t, c, Config{Observer: &o}, Issuer{URL: ti.URL, JWKSFile: path})
	if _, err := s.Verify(t.Context(), mustSign(t, old, claimsFor(ti.URL, c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	writeJWKS(t, path, old, next) // the ConfigMap rotates
	raw := mustSign(t, next, claimsFor(ti.URL, c.Now()), nil)
	if _, err := s.Verify(t.Context(), raw); err != nil {
		t.Fatalf("the first unknown kid re-reads the file: %v", err)
	}
	for range 50 {
		_, err := s.Verify(t.Context(), mustSign(t, testKey{alg: next.alg, priv: next.priv, kid: "made-up"}, claimsFor(ti.URL, c.Now()), nil))
		wantReason(t, err, ReasonUnknownKey, "")
	}
	if diff := cmp.Diff([]string{"jwks ok", "jwks ok"}, o.list()); diff != "" {
		t.Errorf("file reads (-want +got):\n%s", diff)
	}
	c.Advance(time.Minute)
	_, err := s.Verify(t.Context(), mustSign(t, testKey{alg: next.alg, priv: next.priv, kid: "made-up"}, claimsFor(ti.URL, c.Now()), nil))
	wantReason(t, err, ReasonUnknownKey, "")
	if n := len(o.list()); n != 3 {
		t.Errorf("%d file reads, want 3", n)
	}
	// A file gone bad keeps the keys read before (within the grace).
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if _, err := s.Verify(t.Context(), mustSign(t, next, claimsFor(ti.URL, c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	if n := ti.hits(); n != 0 {
		t.Errorf("the issuer got %d requests, want 0", n)
	}
}

func TestNewReadsJWKSFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.json")
	if err := os.WriteFile(huge, []byte(`{"keys":[],"x":"`+strings.Repeat("x", 600<<10)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.json"), "cannot read"},
		{bad, "no usable signing key"},
		{huge, "larger than"},
	} {
		_, err := New(Config{Issuers: []Issuer{{URL: "https://k8s.example", JWKSFile: tc.file}}})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "https://k8s.example") {
			t.Errorf("New with JWKS file %s: %v, want an error naming the issuer and saying %q", filepath.Base(tc.file), err, tc.want)
		}
	}
}

func TestStaleKeysServeACallerThatStopsWaiting(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	ti := newTestIssuer(t, key)
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
	if _, err := s.Verify(t.Context(), mustSign(t, key, claimsFor(ti.URL, c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	hang := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	ti.set(func(ti *testIssuer) { ti.discovery, ti.jwks = hang, hang })
	c.Advance(2 * time.Hour) // past the keys' hour, within their grace
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Verify(ctx, mustSign(t, key, claimsFor(ti.URL, c.Now()), nil)); err != nil {
		t.Fatalf("a caller that stops waiting for the refetch: %v, want the cached key used", err)
	}
}
