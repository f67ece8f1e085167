package issuers

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

func TestUntrustedIssuerIsNeverFetched(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	trusted := newTestIssuer(t, key)
	untrusted := newTestIssuer(t, key)
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: trusted.URL})

	// iss untrusted, its key locations pointing at the trusted issuer's.
	headers := map[jose.HeaderKey]any{"jku": trusted.URL + "/jwks", "x5u": trusted.URL + "/jwks"}
	for range 5 {
		raw := mustSign(t, key, claimsFor(untrusted.URL, c.Now()), headers)
		_, err := s.Verify(t.Context(), raw)
		wantReason(t, err, ReasonUntrustedIssuer, raw)
	}
	// iss trusted, its key locations pointing at the untrusted issuer,
	// whose JWKS has the key the token is signed with.
	evil := mustKey(t, jose.ES256, "evil")
	untrusted.setKeys(evil)
	headers = map[jose.HeaderKey]any{"jku": untrusted.URL + "/jwks", "x5u": untrusted.URL + "/jwks", "jwk": evil.jwk()}
	raw := mustSign(t, evil, claimsFor(trusted.URL, c.Now()), headers)
	_, err := s.Verify(t.Context(), raw)
	wantReason(t, err, ReasonUnknownKey, raw)

	if n := untrusted.hits(); n != 0 {
		t.Errorf("the untrusted issuer got %d requests, want 0", n)
	}
	if n := trusted.hits(); n != 2 { // its discovery and JWKS, for the second token
		t.Errorf("the trusted issuer got %d requests, want 2", n)
	}
}

func TestDiscovery(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	for _, tc := range []struct {
		name   string
		change func(ti *testIssuer)
		ok     bool
	}{
		{"the issuer's own", func(*testIssuer) {}, true},
		{"another issuer", func(ti *testIssuer) { ti.docIssuer = ti.URL + "/other" }, false},
		{"the issuer with a trailing slash", func(ti *testIssuer) { ti.docIssuer = ti.URL + "/" }, false},
		{"jwks_uri http on another host", func(ti *testIssuer) { ti.jwksURI = "http://keys.example/jwks" }, false},
		{"jwks_uri not absolute", func(ti *testIssuer) { ti.jwksURI = "/jwks" }, false},
		{"no jwks_uri", func(ti *testIssuer) {
			ti.discovery = func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"issuer":"` + ti.URL + `"}`)) }
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ti := newTestIssuer(t, key)
			ti.set(tc.change)
			c := newClock()
			s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
			_, err := s.Verify(t.Context(), mustSign(t, key, claimsFor(ti.URL, c.Now()), nil))
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantReason(t, err, ReasonKeysUnavailable, "")
			if n := ti.jwksHits.Load(); n != 0 {
				t.Errorf("%d JWKS fetches, want 0", n)
			}
		})
	}
}

func TestDiscoveryStripsATrailingSlash(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	ti := newTestIssuer(t, key)
	ti.set(func(ti *testIssuer) { ti.docIssuer = ti.URL + "/" })
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL + "/"})
	if _, err := s.Verify(t.Context(), mustSign(t, key, claimsFor(ti.URL+"/", c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	if n := ti.otherHits.Load(); n != 0 {
		t.Errorf("%d requests to other paths (//.well-known?), want 0", n)
	}
}

func TestJWKSOnAnotherHost(t *testing.T) {
	// The issuer's own document may name keys elsewhere (Google's do).
	key := mustKey(t, jose.ES256, "k")
	keys := newTestIssuer(t, key)
	ti := newTestIssuer(t)
	ti.set(func(ti *testIssuer) { ti.jwksURI = keys.URL + "/jwks" })
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
	if _, err := s.Verify(t.Context(), mustSign(t, key, claimsFor(ti.URL, c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	if ti.jwksHits.Load() != 0 || keys.jwksHits.Load() != 1 {
		t.Errorf("JWKS fetched %d times from the issuer and %d from the named host, want 0 and 1", ti.jwksHits.Load(), keys.jwksHits.Load())
	}
}

func TestFetchFailuresAreKeysUnavailable(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	elsewhere := newTestIssuer(t, key)
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	huge := func(w http.ResponseWriter, _ *http.Request) {
		// Valid JSON past the limit: a reader that cut it would parse it.
		_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", 2000) + `"}`))
	}
	hugeChunked := func(w http.ResponseWriter, _ *http.Request) {
		for range 10 {
			_, _ = w.Write(bytes.Repeat([]byte(" "), 300))
			w.(http.Flusher).Flush()
		}
	}
	invalid := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"keys": [`)) }
	status500 := func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }
	status204 := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }
	away := func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}
	noUsableKey := func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}`))
	}
	type serve = func(http.ResponseWriter, *http.Request)
	for _, tc := range []struct {
		name            string
		discovery, jwks serve
		want            string // in the message
	}{
		{"slow discovery", slow, nil, "longer than"},
		{"slow JWKS", nil, slow, "longer than"},
		{"huge discovery", huge, nil, "larger than 1024 bytes"},
		{"huge JWKS", nil, huge, "larger than 1024 bytes"},
		{"huge JWKS without a length", nil, hugeChunked, "larger than 1024 bytes"},
		{"invalid discovery JSON", invalid, nil, "not a discovery document"},
		{"invalid JWKS JSON", nil, invalid, "not a JWKS"},
		{"discovery 500", status500, nil, "answered 500"},
		{"JWKS 500", nil, status500, "answered 500"},
		{"JWKS 204", nil, status204, "answered 204"},
		{"discovery redirected to another host", away, nil, "cannot fetch"},
		{"JWKS redirected to another host", nil, away, "cannot fetch"},
		{"JWKS without a usable key", nil, noUsableKey, "no usable signing key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ti := newTestIssuer(t, key)
			ti.set(func(ti *testIssuer) { ti.discovery, ti.jwks = tc.discovery, tc.jwks })
			c := newClock()
			var o observed
			s := mustSet(t, c, Config{Timeout: 200 * time.Millisecond, MaxBytes: 1024, Observer: &o}, Issuer{URL: ti.URL})
			raw := mustSign(t, key, claimsFor(ti.URL, c.Now()), nil)
			start := time.Now()
			_, err := s.Verify(t.Context(), raw)
			e := wantReason(t, err, ReasonKeysUnavailable, raw)
			if !strings.Contains(e.Message, tc.want) || !strings.Contains(e.Message, ti.URL) {
				t.Errorf("message %q, want it to say %q and name the issuer", e.Message, tc.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
			if elsewhere.hits() != 0 {
				t.Errorf("the other host got %d requests", elsewhere.hits())
			}
			if got := o.list(); len(got) == 0 || !strings.HasSuffix(got[len(got)-1], " error") {
				t.Errorf("observer told %q, want a failure last", got)
			}
			// A token right after does not wait on another fetch.
			_, err = s.Verify(t.Context(), raw)
			wantReason(t, err, ReasonKeysUnavailable, raw)
		})
	}
}

func TestRedirectsOnTheSameHostAreFollowed(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	ti := newTestIssuer(t, key)
	ti.set(func(ti *testIssuer) {
		ti.jwksURI = ti.URL + "/jwks?hop=1"
		ti.jwks = func(w http.ResponseWriter, r *http.Request) {
			switch hop := r.URL.Query().Get("hop"); hop {
			case "1", "2", "3": // the third redirect is the last followed
				http.Redirect(w, r, "/jwks?hop="+string(rune(hop[0]+1)), http.StatusFound)
			default:
				_, _ = w.Write(ti.jwksBody())
			}
		}
	})
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
	if _, err := s.Verify(t.Context(), mustSign(t, key, claimsFor(ti.URL, c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	if n := ti.jwksHits.Load(); n != 4 {
		t.Errorf("%d JWKS requests, want 4", n)
	}
}

func TestRedirectLimits(t *testing.T) {
	client := safeClient(nil, time.Second)
	req := func(u string) *http.Request { return httptest.NewRequest(http.MethodGet, u, nil) }
	for _, tc := range []struct {
		name string
		via  []string
		to   string
		ok   bool
	}{
		{"same host", []string{"https://a.example/x"}, "https://a.example/y", true},
		{"third on the same host", []string{"https://a.example/1", "https://a.example/2", "https://a.example/3"}, "https://a.example/4", true},
		{"fourth", []string{"https://a.example/1", "https://a.example/2", "https://a.example/3", "https://a.example/4"}, "https://a.example/5", false},
		{"another host", []string{"https://a.example/x"}, "https://b.example/x", false},
		{"another port", []string{"https://a.example/x"}, "https://a.example:8443/x", false},
		{"https to http", []string{"https://a.example/x"}, "http://a.example/x", false},
		{"http to http on loopback", []string{"http://127.0.0.1:1/x"}, "http://127.0.0.1:1/y", true},
	} {
		var via []*http.Request
		for _, u := range tc.via {
			via = append(via, req(u))
		}
		err := client.CheckRedirect(req(tc.to), via)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestJWKSKeepsOnlyPublicSignatureKeys(t *testing.T) {
	rsaK := mustKey(t, jose.RS256, "private")
	ecEnc := mustKey(t, jose.ES256, "enc")
	good := mustKey(t, jose.EdDSA, "good")
	ti := newTestIssuer(t)
	priv := jose.JSONWebKey{Key: rsaKey(), KeyID: "private", Algorithm: "RS256", Use: "sig"}
	enc := ecEnc.jwk()
	enc.Use = "enc"
	oct := jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "oct", Algorithm: "HS256"}
	ti.set(func(ti *testIssuer) { ti.keys = []jose.JSONWebKey{priv, enc, oct, good.jwk()} })
	c := newClock()
	s := mustSet(t, c, Config{}, Issuer{URL: ti.URL})
	if _, err := s.Verify(t.Context(), mustSign(t, good, claimsFor(ti.URL, c.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []testKey{rsaK, ecEnc} {
		_, err := s.Verify(t.Context(), mustSign(t, k, claimsFor(ti.URL, c.Now()), nil))
		wantReason(t, err, ReasonUnknownKey, "")
	}
	_, err := s.Verify(t.Context(), hmacToken(t, []byte("0123456789abcdef0123456789abcdef"), "oct", claimsFor(ti.URL, c.Now())))
	wantReason(t, err, ReasonUnsupportedAlg, "")
}

func TestParseJWKSSkipsKeysItCannotUse(t *testing.T) {
	good := mustKey(t, jose.ES256, "good")
	b, err := good.jwk().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	body := `{"keys":[{"kty":"XYZ","kid":"new"},{"kty":"RSA","kid":"small","n":"AQAB","e":"AQAB"},` +
		`{"kty":"EC","crv":"P-384","kid":"p384","x":"x","y":"y"},` + string(b) + `]}`
	keys, err := parseJWKS([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.KeyID)
	}
	if diff := cmp.Diff([]string{"good"}, kids); diff != "" {
		t.Errorf("kids (-want +got):\n%s", diff)
	}
}

func TestCacheTTL(t *testing.T) {
	s := mustSet(t, nil, Config{MinCacheTTL: time.Minute, MaxCacheTTL: time.Hour, DefaultCacheTTL: 10 * time.Minute})
	for _, tc := range []struct {
		headers []string
		want    time.Duration
	}{
		{nil, 10 * time.Minute},
		{[]string{"public"}, 10 * time.Minute},
		{[]string{"public, max-age=300"}, 5 * time.Minute},
		{[]string{"Max-Age=300"}, 5 * time.Minute},
		{[]string{"max-age=5"}, time.Minute},
		{[]string{"max-age=0"}, time.Minute},
		{[]string{"no-store"}, time.Minute},
		{[]string{"no-cache, max-age=600"}, time.Minute},
		{[]string{"max-age=86400"}, time.Hour},
		{[]string{"max-age=999999999999999999"}, time.Hour},
		{[]string{"max-age=-1"}, 10 * time.Minute},
		{[]string{"max-age=abc"}, 10 * time.Minute},
		{[]string{"max-age=600", "max-age=300"}, 5 * time.Minute},
		{[]string{`max-age="120"`}, 2 * time.Minute},
	} {
		if got := s.cacheTTL(tc.headers); got != tc.want {
			t.Errorf("cacheTTL(%q) = %s, want %s", tc.headers, got, tc.want)
		}
	}
}

// dialAllTo returns a client whose connections all go to srv, whatever the
// URL's host, trusting srv's certificate: so URLs on any host can be
// tested without a network.
func dialAllTo(srv *httptest.Server) *http.Client {
	client := srv.Client()
	tr := client.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	return &http.Client{Transport: tr}
}

func TestJWKSURIMustBeHTTPSUnlessTheIssuerIsLoopbackHTTP(t *testing.T) {
	key := mustKey(t, jose.ES256, "k")
	for _, tc := range []struct {
		name, issuer, jwksURI string
		tls, ok               bool
	}{
		{"https issuer, https keys", "https://example.com", "https://example.com/jwks", true, true},
		{"https issuer, http keys elsewhere", "https://example.com", "http://keys.example/jwks", true, false},
		{"https issuer, http loopback keys", "https://example.com", "http://127.0.0.1/jwks", true, false},
		{"loopback http issuer, http keys elsewhere", "http://127.0.0.1", "http://keys.example/jwks", false, false},
		{"loopback http issuer, http loopback keys", "http://127.0.0.1", "http://localhost/jwks", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var jwksHits atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/.well-known/openid-configuration":
					_, _ = w.Write([]byte(`{"issuer":"` + tc.issuer + `","jwks_uri":"` + tc.jwksURI + `"}`))
				case "/jwks":
					jwksHits.Add(1)
					b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{key.jwk()}})
					_, _ = w.Write(b)
				}
			})
			srv := httptest.NewUnstartedServer(h)
			if tc.tls {
				// A plain http request to it fails; the message check
				// below tells that from the jwks_uri being refused.
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			c := newClock()
			s := mustSet(t, c, Config{Client: dialAllTo(srv)}, Issuer{URL: tc.issuer})
			_, err := s.Verify(t.Context(), mustSign(t, key, claimsFor(tc.issuer, c.Now()), nil))
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := wantReason(t, err, ReasonKeysUnavailable, "")
			if !strings.Contains(e.Message, "jwks_uri is not https") || jwksHits.Load() != 0 {
				t.Errorf("message %q, %d JWKS requests: want the jwks_uri refused before any request", e.Message, jwksHits.Load())
			}
		})
	}
}
