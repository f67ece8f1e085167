package tokens

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// countingTokens is a domain.Tokens that counts reads; the real stores are
// tested in the store package and end to end.
type countingTokens struct {
	domain.Tokens
	reads int
	token *domain.Token
}

var _ domain.Tokens = (*countingTokens)(nil)

func (c *countingTokens) TokenByID(_ context.Context, id string) (*domain.Token, error) {
	c.reads++
	if c.token != nil && c.token.ID == id {
		return c.token, nil
	}
	return nil, domain.Errorf(domain.KindNotFound, "token not found")
}

func TestMalformedTokensAreRefusedBeforeAnyRead(t *testing.T) {
	good, _ := auth.NewAPIToken(rand.Reader)
	store := &countingTokens{token: &domain.Token{ID: good.ID, SecretHash: auth.HashSecret(good.Secret)}}
	svc := New(Config{}, Deps{Tokens: store, Clock: time.Now, Rand: rand.Reader})
	s := good.String()
	for name, bad := range map[string]string{
		"typo":      s[:30] + otherDigit(s[30]) + s[31:],
		"truncated": s[:len(s)-1],
		"checksum":  s[:len(s)-1] + otherDigit(s[len(s)-1]),
	} {
		if _, err := svc.Exchange(context.Background(), ExchangeInput{APIToken: bad}); err != domain.ErrUnauthenticated {
			t.Errorf("%s: %v, want ErrUnauthenticated", name, err)
		}
		if _, err := svc.AuthenticateBearer(context.Background(), bad); err != domain.ErrUnauthenticated {
			t.Errorf("%s as a bearer: %v, want ErrUnauthenticated", name, err)
		}
	}
	if store.reads != 0 {
		t.Errorf("malformed tokens caused %d database reads, want 0", store.reads)
	}
	// The control: a well-formed token with a wrong secret is read, then refused.
	wrong := auth.APIToken{ID: good.ID, Secret: good.Secret[:len(good.Secret)-1] + otherDigit(good.Secret[len(good.Secret)-1])}.String()
	if _, err := svc.Exchange(context.Background(), ExchangeInput{APIToken: wrong}); err != domain.ErrUnauthenticated || store.reads != 2 {
		t.Errorf("wrong secret: %v after %d reads, want ErrUnauthenticated after 2 (the cached row, then the fresh one)", err, store.reads)
	}
}

// otherDigit returns a base62 digit other than c.
func otherDigit(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func (c *countingTokens) FreshTokenByID(ctx context.Context, id string) (*domain.Token, error) {
	return c.TokenByID(ctx, id)
}

// goneUserTokens is a domain.Tokens whose every create finds its user's
// row gone: the user was deleted between the credential's check and the
// write.
type goneUserTokens struct{ domain.Tokens }

func (goneUserTokens) CreateToken(context.Context, *domain.Token, int, ...*domain.AuditEvent) error {
	return domain.Errorf(domain.KindNotFound, "user not found")
}

// A caller deleted meanwhile (on another replica, or while its credential
// sat in a cache) creates no token, and is refused as the unknown
// credential it now is (401), not told "user not found".
func TestCreateByACallerDeletedMeanwhile(t *testing.T) {
	svc := New(Config{}, Deps{Users: oneUser{}, Tokens: goneUserTokens{}, Clock: time.Now, Rand: rand.Reader})
	alice := &domain.User{ID: "alice00000000000", Username: "alice"}
	_, _, err := svc.Create(context.Background(), &domain.Principal{User: alice, AllScopes: true}, CreateInput{Note: "after"})
	if err != domain.ErrUnauthenticated {
		t.Errorf("a token created by a deleted caller: %v, want unauthenticated", err)
	}
}
