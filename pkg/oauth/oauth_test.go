package oauth

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/auth"
)

// The client authentication and scope rules of the endpoints, as tables:
// no server, no database.

func TestClientSecret(t *testing.T) {
	tok, err := auth.NewAPIToken(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	plain := tok.String()
	basic := func(id, secret string) string {
		// RFC 6749 §2.3.1: each part form-urlencoded, then Basic.
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
	}
	for name, tc := range map[string]struct {
		authorization string
		form          url.Values
		code          string // "": accepted
	}{
		"HTTP Basic":                    {basic(tok.ID, plain), nil, ""},
		"in the body":                   {"", url.Values{"client_id": {tok.ID}, "client_secret": {plain}}, ""},
		"both ways":                     {basic(tok.ID, plain), url.Values{"client_id": {tok.ID}}, "invalid_request"},
		"neither":                       {"", nil, "invalid_client"},
		"an ID that is not the token's": {basic("AAAAAAAAAAAAAAAA", plain), nil, "invalid_client"},
		"not a token":                   {basic(tok.ID, "password"), nil, "invalid_client"},
		"Basic that does not decode":    {"Basic !!!", nil, "invalid_client"},
		"a bearer":                      {"Bearer " + plain, nil, "invalid_client"},
		"an empty client_secret":        {"", url.Values{"client_id": {tok.ID}, "client_secret": {""}}, "invalid_client"},
	} {
		r, _ := http.NewRequest(http.MethodPost, "/oauth2/token", nil)
		if tc.authorization != "" {
			r.Header.Set("Authorization", tc.authorization)
		}
		if tc.form == nil {
			tc.form = url.Values{}
		}
		secret, e := clientSecret(r, tc.form)
		switch {
		case tc.code == "" && (e != nil || secret != plain):
			t.Errorf("%s: %q, %+v; want the token", name, secret, e)
		case tc.code != "" && (e == nil || e.code != tc.code):
			t.Errorf("%s: %+v, want %s", name, e, tc.code)
		case e != nil && e.status == http.StatusUnauthorized && e.challenge == "":
			t.Errorf("%s: a 401 without a challenge", name)
		}
	}
}

func TestParseScope(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "orders:read": "orders:read", "a b": "a b",
		"a  b": "!", " a": "!", `a"b`: "!", "é": "!", strings.Repeat("s", 129): "!",
	} {
		names, e := parseScope(in)
		switch {
		case want == "!" && (e == nil || e.code != "invalid_scope"):
			t.Errorf("parseScope(%q) = %v, %+v; want invalid_scope", in, names, e)
		case want != "!" && (e != nil || strings.Join(names, " ") != want):
			t.Errorf("parseScope(%q) = %v, %+v; want %q", in, names, e, want)
		}
	}
}
