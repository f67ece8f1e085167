package tokens

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// FuzzAuthenticateBearer: any bearer string is refused with the one
// unauthenticated error (no token exists), never a panic or another error.
func FuzzAuthenticateBearer(f *testing.F) {
	k, _ := auth.NewSigningKey(rand.Reader, time.Now())
	ks, _ := auth.NewKeySet([]*domain.SigningKey{k}, time.Now(), time.Hour)
	minter := auth.NewMinter(auth.KeyRingOf(ks), auth.MinterConfig{Issuer: "iss", Audience: "aud", Lifetime: time.Minute})
	at, _ := minter.Mint(&domain.Token{ID: "tokTTTTTTTTTTTTT", UserID: "u"}, auth.Grant{}, time.Now())
	api, _ := auth.NewAPIToken(rand.Reader)
	svc := New(Config{}, Deps{Users: usersOf{}, Tokens: &countingTokens{}, Minter: minter, Clock: time.Now, Rand: rand.Reader})
	for _, seed := range []string{at.JWT, api.String(), "", "a.b.c", "tks_", "eyJhbGciOiJub25lIn0.e30.", at.JWT + "."} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, bearer string) {
		if _, err := svc.AuthenticateBearer(context.Background(), bearer); err != domain.ErrUnauthenticated {
			t.Fatalf("AuthenticateBearer(%q) = %v, want ErrUnauthenticated", bearer, err)
		}
	})
}
