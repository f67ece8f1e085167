package domain

import (
	"strings"
	"testing"
	"time"
)

// The rules of pkg/domain, as tables: they run in milliseconds, with no
// database, and say what each rule takes and refuses.

func TestNormalizeUsername(t *testing.T) {
	for in, want := range map[string]string{
		"alice": "alice", "Alice": "alice", "ci-bot.prod_1@team": "ci-bot.prod_1@team",
		"0day": "0day", strings.Repeat("a", 64): strings.Repeat("a", 64),
		"": "", "-alice": "", ".alice": "", "al ice": "", "al\x1bice": "", "me": "", "ME": "",
		strings.Repeat("a", 65): "", "\u212alvin": "", // the Kelvin sign is not a k
	} {
		got, err := NormalizeUsername(in)
		if want == "" {
			if err == nil || KindOf(err) != KindInvalid || FieldsOf(err)[0].Field != "username" {
				t.Errorf("NormalizeUsername(%q) = %q, %v; want a KindInvalid error about username", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("NormalizeUsername(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	for in, ok := range map[string]bool{
		"12345678": true, "eight ch": true, "ünïcödé!": true, strings.Repeat("p", MaxPasswordBytes): true,
		"1234567": false, "": false, "ünïcöd": false, strings.Repeat("p", MaxPasswordBytes+1): false,
	} {
		if err := ValidatePassword("password", in); (err == nil) != ok {
			t.Errorf("ValidatePassword(%d bytes) = %v, want ok %v", len(in), err, ok)
		}
	}
}

func TestCheckText(t *testing.T) {
	for in, ok := range map[string]bool{
		"laptop": true, "CI: déploiement — prod ✓": true, "👩\u200d💻": true, "a\u00a0b": true, "": true,
		"a\nb": false, "a\tb": false, "\x1b[31m": false, "\x00": false, "\u009b": false, "\x7f": false,
		"a\u2028b": false, "a\u2029b": false, "\u202egpj.exe": false, "\u2066x\u2069": false, "\u200f": false,
		"bad\xffutf8": false,
	} {
		if err := CheckText("note", in); (err == nil) != ok {
			t.Errorf("CheckText(%q) = %v, want ok %v", in, err, ok)
		}
	}
}

func TestScopes(t *testing.T) {
	s := NewScopes("tokens:write", "introspect", "tokens:write")
	if s.String() != "introspect tokens:write" {
		t.Errorf("NewScopes: %q, want sorted without duplicates", s)
	}
	if got := ParseScopes("  b a  b "); got.String() != "a b" {
		t.Errorf("ParseScopes: %q", got)
	}
	if !s.Has("introspect") || s.Has("tokens:read") || s.Has("") {
		t.Errorf("Has on %v", s)
	}
	if m := s.Missing(NewScopes("introspect", "tokens:read")); m != "tokens:read" {
		t.Errorf("Missing: %q, want tokens:read", m)
	}
	if m := s.Missing(nil); m != "" {
		t.Errorf("Missing(nothing): %q", m)
	}
	for name, ok := range map[string]bool{
		"orders:read": true, "a": true, "!#[]~": true, strings.Repeat("s", 128): true,
		"": false, "a b": false, `a"b`: false, `a\b`: false, "é": false, strings.Repeat("s", 129): false,
	} {
		if ValidScopeName(name) != ok {
			t.Errorf("ValidScopeName(%q) = %v", name, !ok)
		}
	}
}

func TestPrincipalRules(t *testing.T) {
	for name, tc := range map[string]struct {
		p    Principal
		want error
	}{
		"a password":                      {Principal{AllScopes: true}, nil},
		"an API token's current secret":   {Principal{TokenID: "t"}, nil},
		"an access token":                 {Principal{TokenID: "t", AccessToken: true}, ErrAccessTokenCannotChange},
		"a replaced secret":               {Principal{TokenID: "t", PreviousSecret: true}, ErrReplacedSecret},
		"an access token of one replaced": {Principal{TokenID: "t", AccessToken: true, PreviousSecret: true}, ErrReplacedSecret},
	} {
		if err := tc.p.MayChangeCredentials(); err != tc.want {
			t.Errorf("%s: MayChangeCredentials = %v, want %v", name, err, tc.want)
		}
	}
	p := Principal{Scopes: NewScopes("tokens:read")}
	if !p.Allows("tokens:read") || p.Allows("tokens:write") || !(&Principal{AllScopes: true}).Allows("anything") {
		t.Error("Allows")
	}
}

func TestTokenActiveAt(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		tok  Token
		want bool
	}{
		"no expiry":          {Token{}, true},
		"expires later":      {Token{ExpireTime: now.Add(time.Second)}, true},
		"expires now":        {Token{ExpireTime: now}, false},
		"deleted":            {Token{DeleteTime: now.Add(-time.Hour)}, false},
		"deleted, no expiry": {Token{DeleteTime: now.Add(time.Hour)}, false},
	} {
		if got := tc.tok.ActiveAt(now); got != tc.want {
			t.Errorf("%s: ActiveAt = %v, want %v", name, got, tc.want)
		}
	}
}

func TestErrorKinds(t *testing.T) {
	e := InvalidField("note", "must be at most %d characters", 256)
	if KindOf(e) != KindInvalid || MessageOf(e) != "note: must be at most 256 characters" || FieldsOf(e)[0].Field != "note" {
		t.Errorf("InvalidField: %v", e)
	}
	wrapped := Wrap(KindUnavailable, e, "the database is unavailable")
	if KindOf(wrapped) != KindUnavailable || MessageOf(wrapped) != "the database is unavailable" {
		t.Errorf("Wrap: kind %v, message %q", KindOf(wrapped), MessageOf(wrapped))
	}
	if KindOf(nil) != KindInternal || KindOf(errPlain("x")) != KindInternal {
		t.Error("an unclassified error is KindInternal")
	}
	if ReasonOf(ErrSecretChanged) != ReasonSecretChanged || KindOf(ErrSecretChanged) != KindAborted {
		t.Error("ErrSecretChanged")
	}
}

type errPlain string

func (e errPlain) Error() string { return string(e) }
