package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/users"
)

const fuzzPassword = "correct horse battery staple"

// newFuzzHandler starts the application as serve builds it, on SQLite, with
// one user "alice" and one API token of hers, and returns its HTTP handler
// (routes, body limit, gateway, the in-process gRPC path with every
// interceptor) and the token.
func newFuzzHandler(f *testing.F) (http.Handler, string) {
	f.Helper()
	a := apptest.MustStart(f, apptest.Config(f, "sqlite"))
	return a.Handler(), apptest.MustUserToken(f, a, users.CreateInput{Username: "alice", Password: fuzzPassword})
}

// FuzzRESTRequest sends arbitrary methods, paths, bodies, content types and
// bearers through the real REST handler: whatever arrives, the answer is a
// 4xx (or 200) with a JSON google.rpc.Status body on errors; never a 5xx,
// never a panic.
func FuzzRESTRequest(f *testing.F) {
	h, token := newFuzzHandler(f)
	seeds := []struct{ method, path, body, contentType, bearer string }{
		{"POST", "/v1alpha1/tokens", `{"username":"alice","password":"` + fuzzPassword + `"}`, "application/json", ""},
		{"POST", "/v1alpha1/tokens", `{"note":"n","expireTime":"2999-01-01T00:00:00Z"}`, "application/json", token},
		{"POST", "/v1alpha1/tokens", `{"expireTime":"yesterday"}`, "application/json", token},
		{"POST", "/v1alpha1/tokens", `{"note":123}`, "application/json", token},
		{"POST", "/v1alpha1/tokens", `{"note":"\xff\xfe"}`, "application/json", token},
		{"POST", "/v1alpha1/tokens", `{"nope":1}`, "text/plain", token},
		{"POST", "/v1alpha1/tokens", ``, "", token},
		{"POST", "/v1alpha1/access-tokens", `{"token":"` + token + `"}`, "application/json", ""},
		{"POST", "/v1alpha1/access-tokens", `{"token":"tks_AAAAAAAAAAAAAAAA_x"}`, "application/json", ""},
		{"POST", "/v1alpha1/access-tokens", `[]`, "application/json", ""},
		{"GET", "/v1alpha1/tokens?pageSize=-1&pageToken=%ff", "", "", token},
		{"GET", "/v1alpha1/tokens?pageSize=99999999999&reverse=maybe", "", "", token},
		{"GET", "/v1alpha1/tokens/' OR 1=1 --", "", "", token},
		{"GET", "/v1alpha1/tokens/" + strings.Repeat("a", 300), "", "", "eyJhbGciOiJub25lIn0.e30."},
		{"DELETE", "/v1alpha1/tokens/%00", "", "", token},
		{"PATCH", "/v1alpha1/tokens", "{}", "application/json", token},
		{"POST", "/v1alpha1/users", `{"username":"bot","machine":true}`, "application/json", token},
		{"POST", "/v1alpha1/users", `{"username":"Bob","password":"` + fuzzPassword + `","admin":true}`, "application/json", token},
		{"POST", "/v1alpha1/users", `{"username":"","machine":"yes","ownerId":7}`, "application/json", token},
		{"GET", "/v1alpha1/users/me", "", "", token},
		{"GET", "/v1alpha1/users?pageSize=3&username=ALICE&pageToken=x", "", "", token},
		{"DELETE", "/v1alpha1/users/me", "", "", token},
		{"POST", "/v1alpha1/users/me:changePassword", `{"oldPassword":"` + fuzzPassword + `","newPassword":"x"}`, "application/json", token},
		{"POST", "/v1alpha1/users/%2F..%2F:changePassword", `{}`, "application/json", token},
		{"POST", "/v1alpha1/tokens/" + token[4:20] + ":rotate", `{"gracePeriod":"-5s"}`, "application/json", token},
		{"POST", "/v1alpha1/tokens", `{"scopes":["", "a b", "\u0000"]}`, "application/json", token},
		{"POST", "/v1alpha1/access-tokens", `{"token":"` + token + `","scopes":["introspect","x"]}`, "application/json", ""},
		{"POST", "/oauth2/token", "grant_type=client_credentials&client_id=" + token[4:20] + "&client_secret=" + token + "&scope=tokens:read", "application/x-www-form-urlencoded", ""},
		{"POST", "/oauth2/token", "grant_type=client_credentials&scope=%20%20&client_id=&client_secret=%ff", "application/x-www-form-urlencoded; charset=utf-8", ""},
		{"POST", "/oauth2/token", "%%%", "application/x-www-form-urlencoded", ""},
		{"POST", "/oauth2/introspect", "token=" + token, "application/x-www-form-urlencoded", token},
		{"POST", "/oauth2/introspect", "token=a.b.c&token=d", "application/x-www-form-urlencoded", "a.b.c"},
		{"POST", "/oauth2/revoke", "token=" + strings.Repeat("x.", 5000), "application/x-www-form-urlencoded", ""},
		{"GET", "/oauth2/revoke", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.body, s.contentType, s.bearer)
	}
	f.Fuzz(func(t *testing.T, method, path, body, contentType, bearer string) {
		req, err := http.NewRequest(method, "http://fuzz.test/", strings.NewReader(body))
		if err != nil {
			return // not a request any client can send
		}
		// The path as the server's parser would see it, arbitrary bytes and all.
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req.URL.Path, req.URL.RawQuery, _ = strings.Cut(path, "?")
		req.RequestURI = path
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		resp := rec.Result()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented {
			t.Fatalf("%s %q: HTTP %d: %s", method, path, resp.StatusCode, out)
		}
		if resp.StatusCode >= 400 && slices.Contains([]string{"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"}, req.URL.Path) {
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(out, &e); err != nil || e.Error == "" {
				t.Fatalf("%s %q: HTTP %d without an RFC 6749 §5.2 error: %s", method, path, resp.StatusCode, out)
			}
		}
		if resp.StatusCode >= 400 && strings.HasPrefix(req.URL.Path, "/v1alpha1/") {
			var st struct {
				Code    *int   `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(out, &st); err != nil || st.Code == nil || st.Message == "" {
				t.Fatalf("%s %q: HTTP %d without a JSON Status that says what was wrong: %s", method, path, resp.StatusCode, out)
			}
		}
	})
}
