package forwardauth_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/forwardauth"
)

// FuzzForwardAuth sends the endpoint what a gateway (or anyone reaching it)
// might: any method, query, Authorization header (one or two) and
// forwarded URI. Every answer is 200, 400, 401 or 403, never a 5xx or a
// panic, and no header it sets carries a control character.
func FuzzForwardAuth(f *testing.F) {
	fx := newFixture(f)
	for _, seed := range [][4]string{
		{"GET", "", "Bearer " + fx.api, "/orders"},
		{"POST", "scope=orders:read", "Bearer " + fx.access, "/orders?id=1"},
		{"HEAD", "audience=" + ordersAPI, "Bearer " + fx.accessOrders, ""},
		{"GET", "scope=orders:write", "Bearer " + fx.access, "*"},
		{"DELETE", "scope=%zz&audience=", "Bearer\r\nX-Injected: 1", "/\r\nX: y"},
		{"GET", "x=1", "Basic Zm9vOmJhcg==", strings.Repeat("/a", 5000)},
		{"PATCH", "scope=a,,b c", "Bearer " + fx.revoked + "\x00", "/ünï"},
		{"GET", "", "Bearer " + fx.api + "\nBearer " + fx.access, ""},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, method, query, authz, uri string) {
		if method == "" || strings.ContainsAny(method, " \r\n") {
			method = "GET"
		}
		r := &http.Request{Method: method, URL: &url.URL{Path: forwardauth.Path, RawQuery: query}, Header: http.Header{}, Host: "tokenservice"}
		r = r.WithContext(t.Context())
		// A line per value, as a gateway could send several.
		for _, v := range strings.Split(authz, "\n") {
			r.Header.Add("Authorization", v)
		}
		r.Header.Set("X-Forwarded-Uri", uri)
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		default:
			t.Fatalf("%s ?%s Authorization %q X-Forwarded-Uri %q: %d %s", method, query, authz, uri, w.Code, w.Body)
		}
		for name, values := range w.Header() {
			for _, v := range values {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("header %s = %q", name, v)
				}
			}
		}
	})
}
