package tokens

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// A token rotating itself rotates from the secret its caller proved: if
// another rotation (through another replica) replaced that secret after
// the caller authenticated, this one is refused as SECRET_CHANGED, though
// the token it reads now is the newer one. Else the replaced secret could
// rotate the token from under whoever rotated it, and keep it.
func TestSelfRotationIsFromTheProvedSecret(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		st := storetest.MustOpen(t, driver)
		now := time.Now().UTC().Truncate(time.Microsecond)
		u := &domain.User{ID: "uuuuuuuuuuuuuuuu", Username: "alice", CreateTime: now}
		if err := st.CreateUser(ctx, u, 0); err != nil {
			t.Fatal(err)
		}
		plain, _ := auth.NewAPIToken(rand.Reader)
		tok := &domain.Token{ID: plain.ID, UserID: u.ID, SecretHash: auth.HashSecret(plain.Secret), Scopes: domain.ServiceScopes, CreateTime: now}
		if err := st.CreateToken(ctx, tok, 0); err != nil {
			t.Fatal(err)
		}
		svc := New(Config{MaxRotationGracePeriod: time.Hour}, Deps{Users: st, Tokens: st, Minter: auth.NewMinter(nil, auth.MinterConfig{}),
			Clock: func() time.Time { return now }, Rand: rand.Reader})
		caller, err := svc.AuthenticateBearerToChange(ctx, plain.String())
		if err != nil {
			t.Fatal(err)
		}
		// Rotated elsewhere meanwhile: the caller's secret is replaced.
		other, _ := auth.NewAPIToken(rand.Reader)
		if err := st.RotateSecret(ctx, tok.ID, 0, auth.HashSecret(other.Secret), time.Time{}, now); err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.Rotate(ctx, caller, tok.ID, 0); err != domain.ErrSecretChanged {
			t.Fatalf("the replaced secret rotating its token: %v, want SECRET_CHANGED", err)
		}
		got, err := st.TokenByID(ctx, tok.ID)
		if err != nil || got.SecretGeneration != 1 || string(got.SecretHash) != string(auth.HashSecret(other.Secret)) {
			t.Errorf("the token after: generation %d (%v), want the other rotation's, 1", got.SecretGeneration, err)
		}
	})
}
