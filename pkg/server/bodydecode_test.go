package server

import (
	"testing"
	"unicode/utf8"

	"github.com/tokenservice/tokenservice/pkg/httprule"
)

// TestDecodesVouchesOnlyForCleanBodies checks the shortcut that lets a body
// skip checkBody: it holds for a body the gateway takes with nothing to
// name, and not for one checkBody would name a field in, a path variable
// set from the body among them.
func TestDecodesVouchesOnlyForCleanBodies(t *testing.T) {
	cases := []struct {
		path, body string
		decodes    bool
	}{
		{"/v1alpha1/tokens", `{"note":"ci","scopes":["tokens:read"],"expireTime":"2030-01-02T15:04:05Z"}`, true},
		{"/v1alpha1/tokens", `{"note":"ci","expire_time":null,"user_id":"u1"}`, true},
		{"/v1alpha1/tokens", ``, true},
		{"/v1alpha1/tokens", " \n", true},
		{"/v1alpha1/tokens", `{}`, true},
		{"/v1alpha1/tokens", `{"notes":"ci"}`, false},
		{"/v1alpha1/tokens", `{"note":1}`, false},
		{"/v1alpha1/tokens", `{"expireTime":"tomorrow"}`, false},
		{"/v1alpha1/tokens", `{"scopes":"tokens:read"}`, false},
		{"/v1alpha1/tokens", `[1]`, false},
		{"/v1alpha1/tokens", `{"note":"ci"`, false},
		{"/v1alpha1/access-tokens", `{"token":"tks_x","scopes":["a"]}`, true},
		{"/v1alpha1/access-tokens", `{"token":"tks_x","token":"tks_y"}`, false},
		// The path gives tokenId: the body may not, and only checkBody looks.
		{"/v1alpha1/tokens/abc:rotate", `{"tokenId":"other"}`, false},
		{"/v1alpha1/tokens/abc:rotate", `{}`, false},
	}
	table := httprule.All()
	for _, tc := range cases {
		route, vars, found, _ := table.Find("POST", tc.path)
		if !found {
			t.Fatalf("no route POST %s", tc.path)
		}
		_, got := decode(route, vars, []byte(tc.body))
		if got != tc.decodes {
			t.Errorf("POST %s %s: decode says %v, want %v", tc.path, tc.body, got, tc.decodes)
		}
		violations := checkBody(route, vars, []byte(tc.body))
		if got && len(violations) > 0 {
			t.Errorf("POST %s %s decodes, but checkBody names %v", tc.path, tc.body, violations)
		}
	}
	route, vars, _, _ := table.Find("POST", "/v1alpha1/tokens/abc:rotate")
	if len(checkBody(route, vars, []byte(`{"tokenId":"other"}`))) == 0 {
		t.Error("checkBody lets a body set the path's tokenId")
	}
}

// FuzzDecodes checks, for any body, that one decode vouches only for what
// checkBody finds nothing in: the shortcut never lets past a body the
// field-by-field check would have named. And the other way: every body the
// gateway's decoder refuses, checkBody explains, naming a field, so no
// client reads protojson's own text (readJSONBody refuses invalid UTF-8
// before either looks).
func FuzzDecodes(f *testing.F) {
	for _, seed := range []string{``, `{}`, `{"note":"x"}`, `{"note":1}`, `{"expireTime":"2030-01-02T15:04:05Z"}`,
		`{"scopes":["a","b"]}`, `{"expire_time":{"seconds":1}}`, `{"userId":"u","user_id":"u"}`, `{"token":"t","scopes":null}`,
		`{"note":"a","note":"b"}`, `{"scopes":[null]}`, `{"note":"\ud800"}`, `{"note":"\udc00\ud800"}`, `null`,
		`{"gracePeriod":"1h"}`, `{"gracePeriod":3600}`, `{"expireTime":"2030-01-02T15:04:05"}`, `{"machine":"true"}`} {
		f.Add("/v1alpha1/tokens", seed)
		f.Add("/v1alpha1/access-tokens", seed)
		f.Add("/v1alpha1/users", seed)
		f.Add("/v1alpha1/tokens/abc:rotate", seed)
	}
	table := httprule.All()
	f.Fuzz(func(t *testing.T, path, body string) {
		route, vars, found, _ := table.Find("POST", path)
		if !found || route.Body == "" || !utf8.ValidString(body) {
			return
		}
		if _, ok := decode(route, vars, []byte(body)); ok {
			if v := checkBody(route, vars, []byte(body)); len(v) > 0 {
				t.Errorf("POST %s %q decodes, but checkBody names %v", path, body, v)
			}
		}
		if _, err := decodeBody(route, []byte(body)); err != nil && len(checkBody(route, vars, []byte(body))) == 0 {
			t.Errorf("POST %s %q: protojson refuses it (%v), but checkBody names nothing", path, body, err)
		}
	})
}
