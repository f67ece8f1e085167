package pagetoken

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

func TestPageTokens(t *testing.T) {
	p := NewWithKey([]byte("server secret"))
	c := domain.Cursor{CreateTime: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC), ID: "tokTTTTTTTTTTTTT"}
	tok := p.Encode(c, "tokens", "userA", "0")

	got, err := p.Decode(tok, "tokens", "userA", "0")
	if err != nil || !got.CreateTime.Equal(c.CreateTime) || got.ID != c.ID {
		t.Fatalf("Decode = %+v, %v; want %+v", got, err, c)
	}

	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	raw[5] ^= 1 // move the cursor: the MAC no longer matches
	forged := base64.RawURLEncoding.EncodeToString(raw)
	cases := map[string]struct {
		token string
		query []string
	}{
		"other user":          {tok, []string{"tokens", "userB", "0"}},
		"other direction":     {tok, []string{"tokens", "userA", "1"}},
		"other listing":       {tok, []string{"users", "userA", "0"}},
		"query parts shifted": {tok, []string{"tokensu", "serA", "0"}},
		"forged":              {forged, []string{"tokens", "userA", "0"}},
		"other server key":    {NewWithKey([]byte("other")).Encode(c, "tokens", "userA", "0"), []string{"tokens", "userA", "0"}},
		"not base64":          {"!!!", []string{"tokens", "userA", "0"}},
		"truncated":           {tok[:len(tok)-3], []string{"tokens", "userA", "0"}},
		"empty payload":       {"AA", []string{"tokens", "userA", "0"}},
	}
	for name, tc := range cases {
		if _, err := p.Decode(tc.token, tc.query...); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("%s: Decode error = %v, want invalid argument", name, err)
		}
	}
}

func TestUseBeforeSetKeyPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Encode without a key did not panic: it would MAC with an empty key")
		}
	}()
	New().Encode(domain.Cursor{}, "tokens")
}

// FuzzPageTokenDecode: any page token decodes or is an invalid-argument
// error; none panics, and none but Encode's own decode.
func FuzzPageTokenDecode(f *testing.F) {
	p := NewWithKey([]byte("key"))
	good := p.Encode(domain.Cursor{CreateTime: time.Unix(1700000000, 123000), ID: "tokTTTTTTTTTTTTT"}, "u", "0")
	for _, seed := range []string{good, "", "AA", good[:10], good + "A", "!!", "\x00"} {
		f.Add(seed, "0")
	}
	f.Fuzz(func(t *testing.T, token string, direction string) {
		c, err := p.Decode(token, "u", direction)
		if err != nil {
			if domain.KindOf(err) != domain.KindInvalid {
				t.Fatalf("Decode(%q): %v, want invalid argument", token, err)
			}
			return
		}
		if p.Encode(*c, "u", direction) != token {
			t.Fatalf("Decode accepted %q, which Encode would not make", token)
		}
	})
}
