package tokens

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

func TestPageTokens(t *testing.T) {
	p := NewPageTokens([]byte("server secret"))
	c := domain.Cursor{CreateTime: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC), ID: "tokTTTTTTTTTTTTT"}
	tok := p.Encode(c, "userA", false)

	got, err := p.Decode(tok, "userA", false)
	if err != nil || !got.CreateTime.Equal(c.CreateTime) || got.ID != c.ID {
		t.Fatalf("Decode = %+v, %v; want %+v", got, err, c)
	}

	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	raw[5] ^= 1 // move the cursor: the MAC no longer matches
	forged := base64.RawURLEncoding.EncodeToString(raw)
	cases := map[string]struct {
		token   string
		userID  string
		reverse bool
	}{
		"other user":       {tok, "userB", false},
		"other direction":  {tok, "userA", true},
		"forged":           {forged, "userA", false},
		"other server key": {NewPageTokens([]byte("other")).Encode(c, "userA", false), "userA", false},
		"not base64":       {"!!!", "userA", false},
		"truncated":        {tok[:len(tok)-3], "userA", false},
		"empty payload":    {"AA", "userA", false},
	}
	for name, tc := range cases {
		if _, err := p.Decode(tc.token, tc.userID, tc.reverse); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("%s: Decode error = %v, want invalid argument", name, err)
		}
	}
}
