package verifier_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/verifier"
)

func TestMiddleware(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a)
	v := ti.newVerifier(t, verifier.Config{})
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, ok := verifier.ClaimsFromContext(r.Context())
		if !ok {
			t.Error("no claims in the request's context")
			return
		}
		fmt.Fprint(w, claims.Subject)
	}))
	valid := ti.token(t, a, nil)
	expired := ti.token(t, a, map[string]any{"exp": time.Now().Unix() - 3600, "iat": time.Now().Unix() - 7200})
	const (
		noCredential = `Bearer realm="` + testAudience + `"`
		invalidToken = noCredential + `, error="invalid_token"`
	)
	for _, c := range []struct {
		name          string
		authorization []string
		wantCode      int
		wantChallenge string
		wantBody      string
	}{
		{"valid", []string{"Bearer " + valid}, http.StatusOK, "", "user1"},
		{"scheme in lower case", []string{"bearer " + valid}, http.StatusOK, "", "user1"},
		{"scheme in upper case, two spaces", []string{"BEARER  " + valid}, http.StatusOK, "", "user1"},
		{"no credential", nil, http.StatusUnauthorized, noCredential, "Unauthorized\n"},
		{"another scheme", []string{"Basic dXNlcjpwYXNz"}, http.StatusUnauthorized, noCredential, "Unauthorized\n"},
		{"the token with no scheme", []string{valid}, http.StatusUnauthorized, noCredential, "Unauthorized\n"},
		{"garbage", []string{"Bearer garbage"}, http.StatusUnauthorized, invalidToken, "Unauthorized\n"},
		{"empty bearer", []string{"Bearer "}, http.StatusUnauthorized, invalidToken, "Unauthorized\n"},
		{"expired", []string{"Bearer " + expired}, http.StatusUnauthorized, invalidToken, "Unauthorized\n"},
		{"two credentials", []string{"Bearer " + valid, "Bearer " + valid}, http.StatusBadRequest,
			noCredential + `, error="invalid_request"`, "Bad Request\n"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, a := range c.authorization {
			req.Header.Add("Authorization", a)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		// The body is the same for every refusal: why is the server's business.
		if rec.Code != c.wantCode || rec.Header().Get("WWW-Authenticate") != c.wantChallenge || rec.Body.String() != c.wantBody {
			t.Errorf("%s: %d, WWW-Authenticate %q, body %q; want %d, %q, %q", c.name,
				rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body.String(), c.wantCode, c.wantChallenge, c.wantBody)
		}
	}
}

// The realm is a quoted-string even if the audience has quotes in it.
func TestMiddlewareQuotesTheRealm(t *testing.T) {
	ti := newTestIssuer(t, newTestKey(t))
	v := ti.newVerifier(t, verifier.Config{Audience: `api "one"\`})
	rec := httptest.NewRecorder()
	v.Middleware(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if got, want := rec.Header().Get("WWW-Authenticate"), `Bearer realm="api \"one\"\\"`; got != want {
		t.Errorf("WWW-Authenticate = %s, want %s", got, want)
	}
}

func TestContextWithClaims(t *testing.T) {
	want := &verifier.Claims{Subject: "user1"}
	got, ok := verifier.ClaimsFromContext(verifier.ContextWithClaims(t.Context(), want))
	if !ok || got != want {
		t.Errorf("ClaimsFromContext = %v, %t; want %v, true", got, ok, want)
	}
	if got, ok := verifier.ClaimsFromContext(t.Context()); ok {
		t.Errorf("ClaimsFromContext of a bare context = %v, true; want false", got)
	}
}

// RequireScopes serves only tokens granted every scope named; others get
// 403 and an RFC 6750 §3.1 insufficient_scope challenge naming them, and a
// token Verify refuses is still 401.
func TestMiddlewareRequireScopes(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a)
	v := ti.newVerifier(t, verifier.Config{})
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "served") })
	read := v.Middleware(ok, verifier.RequireScopes("orders:read"))
	readWrite := v.Middleware(ok, verifier.RequireScopes("orders:read"), verifier.RequireScopes("orders:write"))
	spaced := v.Middleware(ok, verifier.RequireScopes("orders:read orders:write"))
	withScope := func(scope any) string { return "Bearer " + ti.token(t, a, map[string]any{"scope": scope}) }
	const realm = `Bearer realm="` + testAudience + `"`
	for _, c := range []struct {
		name          string
		h             http.Handler
		authorization string
		wantCode      int
		wantChallenge string
	}{
		{"the scope", read, withScope("orders:read"), http.StatusOK, ""},
		{"the scope among others", read, withScope("users:read orders:read"), http.StatusOK, ""},
		{"both scopes", readWrite, withScope("orders:write orders:read"), http.StatusOK, ""},
		{"another scope", read, withScope("orders:write"), http.StatusForbidden,
			realm + `, error="insufficient_scope", scope="orders:read"`},
		{"a scope with the name as a prefix", read, withScope("orders:readall"), http.StatusForbidden,
			realm + `, error="insufficient_scope", scope="orders:read"`},
		{"no scope claim", read, withScope(nil), http.StatusForbidden,
			realm + `, error="insufficient_scope", scope="orders:read"`},
		{"one of two scopes", readWrite, withScope("orders:read"), http.StatusForbidden,
			realm + `, error="insufficient_scope", scope="orders:read orders:write"`},
		{"two scopes named in one string", spaced, withScope("orders:write orders:read"), http.StatusOK, ""},
		{"one of two scopes named in one string", spaced, withScope("orders:read"), http.StatusForbidden,
			realm + `, error="insufficient_scope", scope="orders:read orders:write"`},
		{"an invalid token", read, "Bearer garbage", http.StatusUnauthorized, realm + `, error="invalid_token"`},
		{"no token", read, "", http.StatusUnauthorized, realm},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if c.authorization != "" {
			req.Header.Set("Authorization", c.authorization)
		}
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, req)
		if rec.Code != c.wantCode || rec.Header().Get("WWW-Authenticate") != c.wantChallenge {
			t.Errorf("%s: %d, WWW-Authenticate %q; want %d, %q", c.name,
				rec.Code, rec.Header().Get("WWW-Authenticate"), c.wantCode, c.wantChallenge)
		}
		if served := rec.Body.String() == "served"; served != (c.wantCode == http.StatusOK) {
			t.Errorf("%s: served %t, body %q", c.name, served, rec.Body.String())
		}
	}
}
