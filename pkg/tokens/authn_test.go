package tokens

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// staleTokens answers TokenByID with one row (as a cache may) and
// FreshTokenByID with another (the database's), counting fresh reads.
type staleTokens struct {
	domain.Tokens
	cached, fresh *domain.Token
	freshReads    int
}

func (s *staleTokens) TokenByID(context.Context, string) (*domain.Token, error) { return s.cached, nil }

func (s *staleTokens) FreshTokenByID(context.Context, string) (*domain.Token, error) {
	s.freshReads++
	return s.fresh, nil
}

type oneUser struct{ domain.Users }

func (oneUser) UserByID(_ context.Context, id string) (*domain.User, error) {
	return &domain.User{ID: id, Username: "u"}, nil
}

// TestAccessTokensFollowTheirSecret: an access token is as good as the
// secret it was minted from: the current one fully, the one a rotation
// replaced for reading until the grace period ends, any older one not at
// all; one newer than the cached row makes the service ask the database.
func TestAccessTokensFollowTheirSecret(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	k, _ := auth.NewSigningKey(rand.Reader, now.Add(-time.Hour))
	ks, _ := auth.NewKeySet([]*domain.SigningKey{k}, now, time.Hour)
	minter := auth.NewMinter(auth.KeyRingOf(ks), auth.MinterConfig{Issuer: "iss", Audience: "aud", Lifetime: time.Minute, Resources: []string{"https://orders"}})
	row := func(gen int, graceUntil time.Time) *domain.Token {
		return &domain.Token{ID: "tokTTTTTTTTTTTTT", UserID: "u", Scopes: domain.ServiceScopes, SecretGeneration: gen,
			PreviousSecretHash: []byte("old"), PreviousSecretExpireTime: graceUntil}
	}
	for _, c := range []struct {
		name          string
		minted        int // the access token's secret generation
		aud           string
		cached, fresh *domain.Token
		want          error
		previous      bool
		freshReads    int
	}{
		{name: "current secret", minted: 2, cached: row(2, time.Time{})},
		{name: "replaced, within the grace period", minted: 1, cached: row(2, now.Add(time.Second)), previous: true},
		{name: "replaced, grace period over", minted: 1, cached: row(2, now), want: domain.ErrUnauthenticated},
		{name: "replaced without grace", minted: 1, cached: row(2, time.Time{}), want: domain.ErrUnauthenticated},
		{name: "replaced twice", minted: 0, cached: row(2, now.Add(time.Hour)), want: domain.ErrUnauthenticated},
		{name: "rotated on another replica", minted: 3, cached: row(2, time.Time{}), fresh: row(3, time.Time{}), freshReads: 1},
		{name: "newer than even the database (never minted here)", minted: 4, cached: row(2, time.Time{}), fresh: row(3, time.Time{}), freshReads: 1, want: domain.ErrUnauthenticated},
		{name: "minted for another API", minted: 2, aud: "https://orders", cached: row(2, time.Time{}), want: domain.ErrUnauthenticated},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := &staleTokens{cached: c.cached, fresh: c.fresh}
			svc := New(Config{}, Deps{Tokens: store, Users: oneUser{}, Minter: minter, Clock: func() time.Time { return now }, Rand: rand.Reader})
			at, err := minter.Mint(c.cached, auth.Grant{Scopes: domain.ServiceScopes, SecretGeneration: c.minted, Audience: c.aud}, now)
			if err != nil {
				t.Fatal(err)
			}
			p, err := svc.AuthenticateBearer(context.Background(), at.JWT)
			if err != c.want {
				t.Fatalf("AuthenticateBearer: %v, want %v", err, c.want)
			}
			if store.freshReads != c.freshReads {
				t.Errorf("%d fresh reads, want %d", store.freshReads, c.freshReads)
			}
			if err != nil {
				return
			}
			if !p.AccessToken || p.PreviousSecret != c.previous {
				t.Errorf("principal: access token %v, previous secret %v; want true, %v", p.AccessToken, p.PreviousSecret, c.previous)
			}
			if err := p.MayChangeCredentials(); err == nil {
				t.Error("an access token may change credentials")
			}
		})
	}
}

// TestExchangeLeavesOutTheWriteScopes: an exchange that names no scopes
// gives all of the token's but tokens:write and users:write; named, they
// are given; the previous secret's access token carries its generation.
func TestExchangeLeavesOutTheWriteScopes(t *testing.T) {
	now := time.Now()
	k, _ := auth.NewSigningKey(rand.Reader, now.Add(-time.Hour))
	ks, _ := auth.NewKeySet([]*domain.SigningKey{k}, now, time.Hour)
	minter := auth.NewMinter(auth.KeyRingOf(ks), auth.MinterConfig{Issuer: "iss", Audience: "aud", Lifetime: time.Minute})
	plain, _ := auth.NewAPIToken(rand.Reader)
	old, _ := auth.NewAPIToken(rand.Reader)
	tok := &domain.Token{ID: plain.ID, UserID: "u", SecretHash: auth.HashSecret(plain.Secret), Scopes: domain.ServiceScopes,
		SecretGeneration: 5, PreviousSecretHash: auth.HashSecret(old.Secret), PreviousSecretExpireTime: now.Add(time.Hour)}
	store := &countingTokens{token: tok}
	svc := New(Config{}, Deps{Users: usersOf{}, Tokens: store, Minter: minter, Clock: time.Now, Rand: rand.Reader})
	x, err := svc.Exchange(context.Background(), ExchangeInput{APIToken: plain.String()})
	if err != nil {
		t.Fatal(err)
	}
	if got := x.Scopes.String(); got != "audit:read introspect tokens:read users:read" {
		t.Errorf("scopes %q, want all but the write scopes", got)
	}
	x, err = svc.Exchange(context.Background(), ExchangeInput{APIToken: plain.String(), Scopes: []string{"tokens:write"}})
	if err != nil || x.Scopes.String() != "tokens:write" {
		t.Errorf("naming tokens:write: %v, %v", x.Scopes, err)
	}
	previous := auth.APIToken{ID: plain.ID, Secret: old.Secret}.String()
	x, err = svc.Exchange(context.Background(), ExchangeInput{APIToken: previous})
	if err != nil {
		t.Fatal(err)
	}
	c, err := minter.Verify(x.AccessToken.JWT, time.Now())
	if err != nil || c.SecretGeneration != 4 {
		t.Errorf("the previous secret's access token: generation %d (%v), want 4", c.SecretGeneration, err)
	}
	// It expires with the grace period (an hour; the minter would give it
	// a minute): shorten the grace and mint again.
	tok.PreviousSecretExpireTime = now.Add(10 * time.Second)
	minter.Forget(tok.ID)
	x, err = svc.Exchange(context.Background(), ExchangeInput{APIToken: previous})
	if err != nil {
		t.Fatal(err)
	}
	if !x.AccessToken.ExpireTime.Equal(tok.PreviousSecretExpireTime.Truncate(time.Second)) {
		t.Errorf("the previous secret's access token expires %v, want with its grace period, %v", x.AccessToken.ExpireTime, tok.PreviousSecretExpireTime)
	}
	// The replaced secret is given no write scope, even named: an offline
	// verifier would grant what the service refuses it.
	for _, w := range WriteScopes {
		_, err = svc.Exchange(context.Background(), ExchangeInput{APIToken: previous, Scopes: []string{w}})
		if domain.ReasonOf(err) != domain.ReasonInvalidScope || !strings.Contains(err.Error(), "rotation replaced") {
			t.Errorf("the previous secret naming %s: %v, want INVALID_SCOPE saying the secret was replaced", w, err)
		}
	}
}
