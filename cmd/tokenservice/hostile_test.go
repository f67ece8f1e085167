package main

import (
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// Whatever a REST client sends, the answer is a 4xx with a JSON Status that
// says what to fix, naming the field as the client spelt it, with the
// request id: never a 5xx, never a dropped connection, never Go, protobuf or
// database text.
func TestHostileRESTInput(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "ivan", "human")
	tok := rpc{t, s.grpcCaller()}.login("ivan")
	bearer := "Bearer " + tok
	const json = "application/json"
	router := specRouter(t, s.httpURL)

	cases := []struct {
		name, method, path, body, contentType, auth string
		want                                        int
		says                                        string // in the message
		field                                       string // the BadRequest field, if any
		header                                      string // a response header that must be set, "Name: value"
	}{
		{"invalid JSON", "POST", "/v1alpha1/tokens", `{"note":`, json, bearer, 400, "not valid JSON", "body", ""},
		{"JSON syntax error", "POST", "/v1alpha1/tokens", "{\n \"note\": }", json, bearer, 400, "line 2, column 10", "body", ""},
		{"wrong type", "POST", "/v1alpha1/tokens", `{"note": 5}`, json, bearer, 400, "note: must be a string", "note", ""},
		{"unknown field", "POST", "/v1alpha1/tokens", `{"expiry": "2030-01-01T00:00:00Z"}`, json, bearer, 400, "expiry: is not a field of this request; the fields are note, expireTime", "expiry", ""},
		{"misspelt field", "POST", "/v1alpha1/tokens", `{"expire_Time": "2030-01-01T00:00:00Z"}`, json, bearer, 400, "did you mean expireTime?", "expire_Time", ""},
		{"mistyped field", "POST", "/v1alpha1/tokens", `{"expireTim": "2030-01-01T00:00:00Z"}`, json, bearer, 400, "did you mean expireTime?", "expireTim", ""},
		{"a path field in the body", "POST", "/v1alpha1/users/me:changePassword", `{"userId": "x", "newPassword": "long enough"}`, json, bearer, 400, "userId: is not a field of this request; the fields are oldPassword, newPassword", "userId", ""},
		{"unparseable expireTime", "POST", "/v1alpha1/tokens", `{"expireTime": "tomorrow"}`, json, bearer, 400, "expireTime: must be a time in RFC 3339 form", "expireTime", ""},
		{"expireTime in the past", "POST", "/v1alpha1/tokens", `{"expireTime": "2001-01-01T00:00:00Z"}`, json, bearer, 400, "expireTime: must be in the future", "expireTime", ""},
		{"expire_time in the past, by proto name", "POST", "/v1alpha1/tokens", `{"expire_time": "2001-01-01T00:00:00Z"}`, json, bearer, 400, "expireTime: must be in the future", "expireTime", ""},
		{"note too long", "POST", "/v1alpha1/tokens", `{"note": "` + strings.Repeat("n", 257) + `"}`, json, bearer, 400, "note: must be at most 256 characters", "note", ""},
		{"invalid UTF-8", "POST", "/v1alpha1/tokens", "{\"note\": \"\xff\xfe\"}", json, bearer, 400, "not valid UTF-8", "", ""},
		{"body over 64 KiB", "POST", "/v1alpha1/tokens", `{"note": "` + strings.Repeat("a", 70<<10) + `"}`, json, bearer, 400, "over 64 KiB", "", ""},
		{"JSON array body", "POST", "/v1alpha1/access-tokens", `[]`, json, "", 400, "must be a JSON object", "body", ""},
		{"token of the wrong type", "POST", "/v1alpha1/access-tokens", `{"token": 12}`, json, "", 400, "token: must be a string", "token", ""},
		{"duplicated field", "POST", "/v1alpha1/tokens", `{"note": "a", "note": "b"}`, json, bearer, 400, "note: is given twice", "note", ""},
		{"a field by both its names", "POST", "/v1alpha1/tokens", `{"expireTime": "2030-01-01T00:00:00Z", "expire_time": "2030-01-01T00:00:00Z"}`, json, bearer, 400, "is given twice, as expireTime and as expire_time", "expire_time", ""},
		{"a duplicated field, the second null", "POST", "/v1alpha1/access-tokens", `{"token": "tks_x", "token": null}`, json, "", 400, "token: is given twice", "token", ""},
		{"null in a list", "POST", "/v1alpha1/tokens", `{"scopes": ["tokens:read", null]}`, json, bearer, 400, "scopes[1]: must not be null", "scopes[1]", ""},
		{"null body", "POST", "/v1alpha1/tokens", `null`, json, bearer, 400, "body: must be a JSON object", "body", ""},
		{"null body on a path with a variable", "POST", "/v1alpha1/tokens/abc:rotate", `null`, json, bearer, 400, "body: must be a JSON object", "body", ""},
		{"lone surrogate", "POST", "/v1alpha1/tokens", `{"note": "\ud800"}`, json, bearer, 400, "note: must be Unicode text", "note", ""},
		{"second half of a surrogate pair alone", "POST", "/v1alpha1/users", `{"username": "\udc00x", "machine": true}`, json, bearer, 400, "username: must be Unicode text", "username", ""},
		{"lone surrogate in a list", "POST", "/v1alpha1/access-tokens", `{"token": "tks_x", "scopes": ["\ud800\u0041"]}`, json, "", 400, "scopes[0]: must be Unicode text", "scopes[0]", ""},
		{"duration as the CLI takes it", "POST", "/v1alpha1/tokens/abc:rotate", `{"gracePeriod": "1h"}`, json, bearer, 400, `gracePeriod: must be a duration in seconds such as "3600s"`, "gracePeriod", ""},
		{"duration as a number", "POST", "/v1alpha1/tokens/abc:rotate", `{"gracePeriod": 3600}`, json, bearer, 400, `gracePeriod: must be a duration in seconds such as "3600s"`, "gracePeriod", ""},
		{"duration without its unit", "POST", "/v1alpha1/tokens/abc:rotate", `{"grace_period": "3600"}`, json, bearer, 400, `grace_period: must be a duration in seconds such as "3600s"`, "grace_period", ""},
		{"duration out of range", "POST", "/v1alpha1/tokens/abc:rotate", `{"gracePeriod": "99999999999999s"}`, json, bearer, 400, `must be a duration in seconds such as "3600s"`, "gracePeriod", ""},
		{"duration as an object", "POST", "/v1alpha1/tokens/abc:rotate", `{"gracePeriod": {"seconds": 3600}}`, json, bearer, 400, `must be a duration in seconds such as "3600s"`, "gracePeriod", ""},
		{"time without an offset", "POST", "/v1alpha1/tokens", `{"expireTime": "2030-01-01T00:00:00"}`, json, bearer, 400, "expireTime: must be a time in RFC 3339 form", "expireTime", ""},
		{"boolean as a string", "POST", "/v1alpha1/users", `{"username": "bot", "machine": "true"}`, json, bearer, 400, "machine: must be true or false", "machine", ""},
		{"string as a list", "POST", "/v1alpha1/tokens", `{"scopes": "tokens:read"}`, json, bearer, 400, "scopes: must be a JSON array", "scopes", ""},
		{"list item of the wrong type", "POST", "/v1alpha1/tokens", `{"scopes": [true]}`, json, bearer, 400, "scopes[0]: must be a string", "scopes[0]", ""},
		{"text/plain body", "POST", "/v1alpha1/tokens", `{}`, "text/plain", bearer, 415, "must be JSON", "", "Accept: application/json"},
		{"XML body", "POST", "/v1alpha1/tokens", `<note/>`, "application/xml", bearer, 415, "Content-Type: application/json", "", "Accept: application/json"},
		{"octet-stream body", "POST", "/v1alpha1/access-tokens", `{}`, "application/octet-stream", "", 415, "must be JSON", "", ""},
		{"form body", "POST", "/v1alpha1/tokens", `note=x`, "application/x-www-form-urlencoded", bearer, 415, "must be JSON", "", ""},
		{"negative page size", "GET", "/v1alpha1/tokens?pageSize=-1", "", "", bearer, 400, "pageSize: must be a whole number: 0 (or none) for pages of 50; more than 250 is taken as 250", "pageSize", ""},
		{"non-numeric page size", "GET", "/v1alpha1/tokens?pageSize=ten", "", "", bearer, 400, "must be a whole number", "pageSize", ""},
		{"time before year 1 in the query", "GET", "/v1alpha1/tokens?expireBefore=0000-01-01T00:00:00Z", "", "", bearer, 400, "expireBefore: must be a time in RFC 3339 form", "expireBefore", ""},
		{"time without an offset in the query", "GET", "/v1alpha1/tokens?expireBefore=2030-01-01T00:00:00", "", "", bearer, 400, "expireBefore: must be a time in RFC 3339 form", "expireBefore", ""},
		{"non-boolean reverse", "GET", "/v1alpha1/tokens?reverse=maybe", "", "", bearer, 400, "reverse: must be true or false", "reverse", ""},
		{"misspelt query parameter", "GET", "/v1alpha1/tokens?pagesize=1", "", "", bearer, 400, "pagesize: is not a query parameter of this method (did you mean pageSize?)", "pagesize", ""},
		{"mistyped query parameter", "GET", "/v1alpha1/tokens?pageSiz=1", "", "", bearer, 400, "(did you mean pageSize?)", "pageSiz", ""},
		{"unknown query parameter", "GET", "/v1alpha1/users?admin=true", "", "", bearer, 400, "admin: is not a query parameter of this method; the parameters are pageSize, pageToken, username", "admin", ""},
		{"a huge unknown query parameter, named clipped", "GET", "/v1alpha1/users?" + strings.Repeat("p", 100000) + "=1", "", "", bearer, 400, strings.Repeat("p", 64) + "…: is not a query parameter", strings.Repeat("p", 64) + "…", ""},
		{"a query on a body method", "POST", "/v1alpha1/tokens?note=x", `{}`, json, bearer, 400, "its fields go in the JSON body", "note", ""},
		{"a path field in the query", "GET", "/v1alpha1/tokens/abc?tokenId=def", "", "", bearer, 400, "tokenId: is not a query parameter of this method, which takes none", "tokenId", ""},
		{"repeated query parameter", "GET", "/v1alpha1/tokens?pageSize=1&pageSize=2", "", "", bearer, 400, "pageSize: must be given once", "pageSize", ""},
		{"garbage page token", "GET", "/v1alpha1/tokens?pageToken=%00%ff", "", "", bearer, 400, "pageToken: must be the next page token of a previous response", "pageToken", ""},
		{"odd path id", "GET", "/v1alpha1/tokens/..%2F..%2Fetc", "", "", bearer, 404, "token not found", "", ""},
		{"SQL in path id", "GET", "/v1alpha1/tokens/'%20OR%20'1'='1", "", "", bearer, 404, "token not found", "", ""},
		{"long path id", "GET", "/v1alpha1/tokens/" + strings.Repeat("x", 65), "", "", bearer, 400, "tokenId: must be at most 64 characters", "tokenId", ""},
		{"long bearer", "GET", "/v1alpha1/tokens", "", "", "Bearer " + strings.Repeat("x", 8000), 401, "invalid or missing credentials", "", `WWW-Authenticate: Bearer realm="tokenservice", error="invalid_token"`},
		{"an access token to exchange", "POST", "/v1alpha1/access-tokens", `{"token": "eyJhbGciOiJFUzI1NiJ9.e30.x"}`, json, "", 401, "the exchange takes an API token (tks_...), not an access token", "", ""},
		{"no scheme", "GET", "/v1alpha1/tokens", "", "", tok, 401, `send the token as "Authorization: Bearer <token>"`, "", `WWW-Authenticate: Bearer realm="tokenservice", error="invalid_request", error_description="send the token as: Authorization: Bearer <token>"`},
		{"basic auth", "GET", "/v1alpha1/tokens", "", "", "Basic YTpi", 401, `send the token as "Authorization: Bearer <token>"`, "", ""},
		{"the scheme without a token", "GET", "/v1alpha1/tokens", "", "", "Bearer", 401, `send the token as "Authorization: Bearer <token>"`, "", `WWW-Authenticate: Bearer realm="tokenservice", error="invalid_request", error_description="send the token as: Authorization: Bearer <token>"`},
		{"lower-case scheme", "GET", "/v1alpha1/tokens", "", "", "bearer " + tok, 200, "", "", ""},
		{"wrong method", "PUT", "/v1alpha1/tokens", `{}`, json, bearer, 405, "PUT is not a method of /v1alpha1/tokens: use GET or POST", "", "Allow: GET, POST"},
		{"wrong method on an id", "PATCH", "/v1alpha1/tokens/abc", `{}`, json, bearer, 405, "use DELETE or GET", "", "Allow: DELETE, GET"},
		{"misspelt custom method", "POST", "/v1alpha1/tokens/abc:rotat", `{}`, json, bearer, 404, ":rotat is not a custom method of /v1alpha1/tokens/abc; it has POST :rotate", "", ""},
		{"custom method in another case", "POST", "/v1alpha1/users/me:changepassword", `{}`, json, bearer, 404, ":changepassword is not a custom method of /v1alpha1/users/me; it has POST :changePassword", "", ""},
		{"unknown API path", "GET", "/v1alpha1/nope", "", "", bearer, 404, "no such path: /v1alpha1/nope", "", ""},
		{"unknown path", "GET", "/v2/tokens", "", "", bearer, 404, "no such path: /v2/tokens", "", ""},
	}
	for _, tc := range cases {
		req, err := http.NewRequest(tc.method, s.httpURL+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.contentType != "" {
			req.Header.Set("Content-Type", tc.contentType)
		}
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if _, _, err := router.FindRoute(req); err == nil { // the spec has the operation: the answer must be documented
			validate(t, router, req, resp, body)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s: no X-Request-Id", tc.name)
		}
		if tc.header != "" {
			name, value, _ := strings.Cut(tc.header, ": ")
			if got := resp.Header.Get(name); got != value {
				t.Errorf("%s: %s %q, want %q", tc.name, name, got, value)
			}
		}
		if tc.want == 200 {
			if resp.StatusCode != 200 {
				t.Errorf("%s: HTTP %d %s, want 200", tc.name, resp.StatusCode, body)
			}
			continue
		}
		st := &spb.Status{}
		if resp.StatusCode != tc.want || protojson.Unmarshal(body, st) != nil || !strings.Contains(st.GetMessage(), tc.says) {
			t.Errorf("%s: HTTP %d %s, want %d with a JSON Status saying %q", tc.name, resp.StatusCode, body, tc.want, tc.says)
		}
		if tc.field != "" && !slices.Contains(badRequestFields(st), tc.field) {
			t.Errorf("%s: the BadRequest fields are %v, want %q among them", tc.name, badRequestFields(st), tc.field)
		}
		if leak := internals(st.GetMessage()); leak != "" {
			t.Errorf("%s: the message speaks of %s: %s", tc.name, leak, st.GetMessage())
		}
	}
}

// Every response, not only the API's, carries X-Request-Id: the client's if
// it sent a well-formed one, else a new one.
func TestEveryResponseHasARequestID(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	for _, path := range []string{"/healthz", "/readyz", "/docs/", "/openapi.json", "/.well-known/jwks.json", "/v1alpha1/tokens", "/nope"} {
		for _, sent := range []string{"", "client-chosen-id.1", "not a valid id!"} {
			req, _ := http.NewRequest("GET", s.httpURL+path, nil)
			if sent != "" {
				req.Header.Set("X-Request-Id", sent)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.Header.Values("X-Request-Id")
			switch {
			case len(got) != 1:
				t.Errorf("GET %s (sent %q): X-Request-Id %v, want one", path, sent, got)
			case sent == "client-chosen-id.1" && got[0] != sent:
				t.Errorf("GET %s: X-Request-Id %q, want the client's %q", path, got[0], sent)
			case sent != "client-chosen-id.1" && (got[0] == sent || len(got[0]) != 16):
				t.Errorf("GET %s (sent %q): X-Request-Id %q, want a new one", path, sent, got[0])
			}
		}
	}
}

// badRequestFields returns the fields of a Status's google.rpc.BadRequest.
func badRequestFields(st *spb.Status) []string {
	var fields []string
	for _, d := range st.GetDetails() {
		var br errdetails.BadRequest
		if d.UnmarshalTo(&br) == nil {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

// internalsPattern matches what must never reach a client: Go, protobuf,
// validation-library and database text.
var internalsPattern = regexp.MustCompile(`(?i)\bproto:|strconv\.|google\.protobuf|protobuf|invalid syntax|buf\.validate|validation error|duplicated key|gorm|\bsql\b|mysql|sqlite|\bError \d{4}\b|rpc error|runtime error|goroutine|\.go:\d|unexpected EOF|json: |\bnil\b`)

// internals returns the first internal word in a client-facing message, or "".
func internals(message string) string {
	return internalsPattern.FindString(message)
}
