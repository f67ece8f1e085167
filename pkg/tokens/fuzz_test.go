package tokens

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// FuzzPageTokenDecode: any page token decodes or is an invalid-argument
// error; none panics, and none but Encode's own decode.
func FuzzPageTokenDecode(f *testing.F) {
	p := NewPageTokens([]byte("key"))
	good := p.Encode(domain.Cursor{CreateTime: time.Unix(1700000000, 123000), ID: "tokTTTTTTTTTTTTT"}, "u", false)
	for _, seed := range []string{good, "", "AA", good[:10], good + "A", "!!", "\x00"} {
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, token string, reverse bool) {
		c, err := p.Decode(token, "u", reverse)
		if err != nil {
			if domain.KindOf(err) != domain.KindInvalid {
				t.Fatalf("Decode(%q): %v, want invalid argument", token, err)
			}
			return
		}
		if p.Encode(*c, "u", reverse) != token {
			t.Fatalf("Decode accepted %q, which Encode would not make", token)
		}
	})
}

// FuzzAuthenticateBearer: any bearer string is refused with the one
// unauthenticated error (no token exists), never a panic or another error.
func FuzzAuthenticateBearer(f *testing.F) {
	k, _ := auth.NewSigningKey(rand.Reader, time.Now())
	ks, _ := auth.NewKeySet([]*domain.SigningKey{k})
	minter := auth.NewMinter(ks, auth.MinterConfig{Issuer: "iss", Audience: "aud", Lifetime: time.Minute})
	at, _ := minter.Mint(&domain.Token{ID: "tokTTTTTTTTTTTTT", UserID: "u"}, time.Now())
	api, _ := auth.NewAPIToken(rand.Reader)
	svc := New(Config{}, nil, &countingTokens{}, nil, minter, nil, nil, time.Now, rand.Reader)
	for _, seed := range []string{at.JWT, api.String(), "", "a.b.c", "tks_", "eyJhbGciOiJub25lIn0.e30.", at.JWT + "."} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, bearer string) {
		if _, err := svc.AuthenticateBearer(context.Background(), bearer); err != domain.ErrUnauthenticated {
			t.Fatalf("AuthenticateBearer(%q) = %v, want ErrUnauthenticated", bearer, err)
		}
	})
}
