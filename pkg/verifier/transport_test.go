package verifier_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/verifier"
)

// Keys are fetched over https only: http:// is refused on any host but a
// loopback one, and there only with AllowInsecureLoopback, whether it is
// the issuer, the JWKS URL or the jwks_uri the discovery document names.
func TestNewRefusesInsecureURLs(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a) // http on 127.0.0.1
	port := ti.srv.URL[strings.LastIndex(ti.srv.URL, ":"):]
	// A discovery document on loopback naming a key set elsewhere in plaintext.
	plainKeys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": "http://" + r.Host, "jwks_uri": "http://keys.example.test/keys"})
	}))
	t.Cleanup(plainKeys.Close)
	for _, c := range []struct {
		name    string
		cfg     verifier.Config
		wantErr string // "": New succeeds
	}{
		{"loopback, not allowed", verifier.Config{Issuer: ti.srv.URL}, "AllowInsecureLoopback"},
		{"loopback JWKS URL, not allowed", verifier.Config{Issuer: "https://tokens.example.test", JWKSURL: ti.srv.URL + "/keys"}, "AllowInsecureLoopback"},
		{"loopback, allowed", verifier.Config{Issuer: ti.srv.URL, AllowInsecureLoopback: true}, ""},
		{"localhost, allowed", verifier.Config{Issuer: ti.srv.URL, JWKSURL: "http://localhost" + port + "/keys", AllowInsecureLoopback: true}, ""},
		{"another host, allowed for loopback", verifier.Config{Issuer: "http://tokens.example.test", AllowInsecureLoopback: true}, "not https"},
		{"another host's JWKS URL", verifier.Config{Issuer: ti.srv.URL, JWKSURL: "http://keys.example.test/keys", AllowInsecureLoopback: true}, "not https"},
		{"a discovered jwks_uri on another host", verifier.Config{Issuer: plainKeys.URL, AllowInsecureLoopback: true}, "not https"},
		{"another scheme", verifier.Config{Issuer: ti.srv.URL, JWKSURL: "file:///etc/keys.json", AllowInsecureLoopback: true}, "not an absolute URL"},
		{"no scheme", verifier.Config{Issuer: "tokens.example.test"}, "not an absolute URL"},
	} {
		c.cfg.Audience = testAudience
		v, err := verifier.New(context.Background(), c.cfg)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: New = %v, want an error saying %q", c.name, err, c.wantErr)
		}
		if v != nil {
			v.Close()
		}
	}
}

// A redirect is followed only on the origin it began on: a discovery
// document or a key set served from elsewhere would be another server's.
func TestNewRefusesCrossOriginRedirects(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a)
	elsewhere := newTestIssuer(t, a) // the same keys: only the redirect is wrong
	redirect := func(to string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) }
	}
	mux := http.NewServeMux()
	mux.Handle("/moved", redirect("/keys"))
	mux.Handle("/keys", redirect(ti.srv.URL+"/keys")) // same host, another port
	mux.Handle("/away", redirect(elsewhere.srv.URL+"/keys"))
	mux.Handle("/.well-known/openid-configuration", redirect(elsewhere.srv.URL+"/.well-known/openid-configuration"))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// Same origin: ti's own keys reached by way of ti.
	sameOrigin := http.NewServeMux()
	sameOrigin.Handle("/old-keys", redirect("/keys"))
	sameOrigin.Handle("/", ti.srv.Config.Handler)
	same := httptest.NewServer(sameOrigin)
	t.Cleanup(same.Close)

	for _, c := range []struct {
		name    string
		cfg     verifier.Config
		wantErr bool
	}{
		{"a redirect on the origin", verifier.Config{Issuer: ti.srv.URL, JWKSURL: same.URL + "/old-keys"}, false},
		{"a JWKS redirect to another server", verifier.Config{Issuer: ti.srv.URL, JWKSURL: srv.URL + "/away"}, true},
		{"a second redirect, to another origin", verifier.Config{Issuer: ti.srv.URL, JWKSURL: srv.URL + "/moved"}, true},
		{"a discovery redirect to another origin", verifier.Config{Issuer: srv.URL}, true},
	} {
		c.cfg.Audience, c.cfg.AllowInsecureLoopback = testAudience, true
		v, err := verifier.New(context.Background(), c.cfg)
		if v != nil {
			v.Close()
		}
		switch {
		case !c.wantErr && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr && (err == nil || !strings.Contains(err.Error(), "another origin")):
			t.Errorf("%s: New = %v, want a refused redirect", c.name, err)
		}
	}
}
