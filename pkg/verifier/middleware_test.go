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
