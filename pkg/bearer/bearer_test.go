package bearer

import "testing"

func TestParse(t *testing.T) {
	for header, want := range map[string]struct {
		isBearer bool
		token    string
	}{
		"Bearer abc":      {true, "abc"},
		"bearer abc":      {true, "abc"},
		"BEARER   abc  ":  {true, "abc"},
		"Bearer":          {true, ""},
		"Bearer ":         {true, ""},
		"Basic dXNlcjpw":  {false, ""},
		"Bearerabc":       {false, ""},
		"abc":             {false, ""},
		"":                {false, ""},
		"Token abc":       {false, ""},
		"Bearer a b":      {true, "a b"},
		"Bearer\tabc":     {false, ""},
		" Bearer abc":     {false, ""},
		"Bearer tks_x_yz": {true, "tks_x_yz"},
	} {
		isBearer, token := Parse(header)
		if isBearer != want.isBearer || token != want.token {
			t.Errorf("Parse(%q) = %v, %q; want %v, %q", header, isBearer, token, want.isBearer, want.token)
		}
	}
}

func TestChallenges(t *testing.T) {
	for got, want := range map[string]string{
		Refusal(""):                               `Bearer realm="tokenservice"`,
		Refusal("Basic abc"):                      `Bearer realm="tokenservice", error="invalid_request", error_description="send the token as: Authorization: Bearer <token>"`,
		PasswordRefusal("Basic YWxpY2U6cHc="):     `Bearer realm="tokenservice"`, // a refused password: no Basic challenge, no error
		PasswordRefusal("Bearer wrong"):           `Bearer realm="tokenservice", error="invalid_token"`,
		Refusal("Bearer"):                         `Bearer realm="tokenservice", error="invalid_request", error_description="send the token as: Authorization: Bearer <token>"`,
		Refusal("tks_abc"):                        `Bearer realm="tokenservice", error="invalid_request", error_description="send the token as: Authorization: Bearer <token>"`,
		Refusal("Bearer wrong"):                   `Bearer realm="tokenservice", error="invalid_token"`,
		InsufficientScope(Realm, "tokens:write"):  `Bearer realm="tokenservice", error="insufficient_scope", scope="tokens:write"`,
		Challenge(`https://api."x"\y`, "", ""):    `Bearer realm="https://api.\"x\"\\y"`,
		Challenge("api", "invalid_token", "a\"b"): `Bearer realm="api", error="invalid_token", error_description="a\"b"`,
	} {
		if got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}

func TestParseBasic(t *testing.T) {
	for in, want := range map[string]struct {
		isBasic, ok    bool
		user, password string
	}{
		"Basic YWxpY2U6cDpx":  {true, true, "alice", "p:q"}, // alice:p:q: the password may hold colons
		"basic YWxpY2U6":      {true, true, "alice", ""},
		"Basic YWxpY2U=":      {true, false, "", ""}, // alice: no colon
		"Basic !!":            {true, false, "", ""},
		"Bearer YWxpY2U6cDpx": {false, false, "", ""},
		"":                    {false, false, "", ""},
	} {
		isBasic, user, password, ok := ParseBasic(in)
		if isBasic != want.isBasic || ok != want.ok || ok && (user != want.user || password != want.password) {
			t.Errorf("ParseBasic(%q) = %t %q %q %t, want %+v", in, isBasic, user, password, ok, want)
		}
	}
}
