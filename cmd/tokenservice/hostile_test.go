package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// Whatever a REST client sends, the answer is a 4xx with a JSON Status that
// says what was wrong: never a 5xx, never a dropped connection.
func TestHostileRESTInput(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "ivan", "human")
	tok := rpc{t, s.grpcCaller()}.login("ivan")
	bearer := "Bearer " + tok

	cases := []struct {
		name, method, path, body, auth string
		want                           int
	}{
		{"invalid JSON", "POST", "/v1alpha1/tokens", `{"note":`, bearer, 400},
		{"wrong type", "POST", "/v1alpha1/tokens", `{"note": 5}`, bearer, 400},
		{"unknown field", "POST", "/v1alpha1/tokens", `{"expiry": "2030-01-01T00:00:00Z"}`, bearer, 400},
		{"unparseable expire_time", "POST", "/v1alpha1/tokens", `{"expireTime": "tomorrow"}`, bearer, 400},
		{"expire_time in the past", "POST", "/v1alpha1/tokens", `{"expireTime": "2001-01-01T00:00:00Z"}`, bearer, 400},
		{"invalid UTF-8", "POST", "/v1alpha1/tokens", "{\"note\": \"\xff\xfe\"}", bearer, 400},
		{"body over 64 KiB", "POST", "/v1alpha1/tokens", `{"note": "` + strings.Repeat("a", 70<<10) + `"}`, bearer, 400},
		{"JSON array body", "POST", "/v1alpha1/access-tokens", `[]`, "", 400},
		{"token of the wrong type", "POST", "/v1alpha1/access-tokens", `{"token": 12}`, "", 400},
		{"negative page size", "GET", "/v1alpha1/tokens?pageSize=-1", "", bearer, 400},
		{"non-numeric page size", "GET", "/v1alpha1/tokens?pageSize=ten", "", bearer, 400},
		{"non-boolean reverse", "GET", "/v1alpha1/tokens?reverse=maybe", "", bearer, 400},
		{"garbage page token", "GET", "/v1alpha1/tokens?pageToken=%00%ff", "", bearer, 400},
		{"odd path id", "GET", "/v1alpha1/tokens/..%2F..%2Fetc", "", bearer, 404},
		{"SQL in path id", "GET", "/v1alpha1/tokens/'%20OR%20'1'='1", "", bearer, 404},
		{"long path id", "GET", "/v1alpha1/tokens/" + strings.Repeat("x", 65), "", bearer, 400},
		{"long bearer", "GET", "/v1alpha1/tokens", "", "Bearer " + strings.Repeat("x", 8000), 401},
		{"no scheme", "GET", "/v1alpha1/tokens", "", tok, 401},
		{"basic auth", "GET", "/v1alpha1/tokens", "", "Basic YTpi", 401},
		{"wrong method", "PUT", "/v1alpha1/tokens", `{}`, bearer, 501}, // the gateway: UNIMPLEMENTED
		{"unknown path", "GET", "/v1alpha1/nope", "", bearer, 404},
	}
	for _, tc := range cases {
		req, err := http.NewRequest(tc.method, s.httpURL+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
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
		var st struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if resp.StatusCode != tc.want || json.Unmarshal(body, &st) != nil || st.Message == "" {
			t.Errorf("%s: HTTP %d %s, want %d with a JSON Status", tc.name, resp.StatusCode, body, tc.want)
		}
		if strings.Contains(strings.ToLower(st.Message), "sql") || strings.Contains(st.Message, "goroutine") {
			t.Errorf("%s: the message leaks internals: %s", tc.name, st.Message)
		}
	}
}
