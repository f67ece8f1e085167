package tokens

import (
	"context"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/throttle"
)

// AuthenticateBearer resolves a bearer credential, an API token or an access
// token minted by this service, to the caller. Every failure is the same
// domain.ErrUnauthenticated.
func (s *Service) AuthenticateBearer(ctx context.Context, bearer string) (*domain.Principal, error) {
	if auth.LooksLikeAPIToken(bearer) {
		t, err := s.apiToken(ctx, bearer)
		if err != nil {
			return nil, err
		}
		s.usage.Record(t.ID, s.now())
		return s.principal(ctx, t)
	}
	claims, err := s.minter.Verify(bearer, s.now())
	if err != nil {
		return nil, domain.ErrUnauthenticated
	}
	// The access token is refused as soon as its API token is deleted or
	// expired: this service checks; gateways verifying offline honour it
	// until its exp.
	t, err := s.tokens.TokenByID(ctx, claims.TokenID)
	if err != nil {
		return nil, unauthenticated(err)
	}
	now := s.now()
	if !t.ActiveAt(now) || t.UserID != claims.UserID {
		return nil, domain.ErrUnauthenticated
	}
	s.usage.Record(t.ID, now)
	return s.principal(ctx, t)
}

// AuthenticatePassword checks a human user's username and password, coming
// from clientAddr. Attempts are limited per username and per address; an
// unknown user costs the same argon2id work as a wrong password.
func (s *Service) AuthenticatePassword(ctx context.Context, username, password, clientAddr string) (*domain.Principal, error) {
	for _, limit := range []struct {
		l   *throttle.Limiter
		key string
	}{{s.byAddress, clientAddr}, {s.byUser, username}} {
		if ok, wait := limit.l.Allow(limit.key); !ok {
			return nil, &domain.Error{Kind: domain.KindResourceExhausted, RetryAfter: wait,
				Message: "too many password attempts: retry later"}
		}
	}
	u, err := s.users.UserByUsername(ctx, username)
	hash := ""
	switch {
	case err == nil:
		hash = u.PasswordHash
	case domain.KindOf(err) != domain.KindNotFound:
		return nil, err
	}
	ok, verr := s.passwords.Verify(ctx, password, hash)
	if ctx.Err() != nil {
		return nil, domain.Wrap(domain.KindUnavailable, ctx.Err(), "too busy to check the password: retry later")
	}
	if verr != nil {
		return nil, domain.Wrap(domain.KindInternal, verr, "verifying password")
	}
	if !ok || u == nil {
		return nil, domain.ErrUnauthenticated
	}
	return &domain.Principal{User: u}, nil
}

// apiToken checks a plaintext API token: well formed with a valid checksum
// (before any database read), known, matching secret, not deleted or expired.
// One read: a token outlives neither its user (deleting a user deletes its
// tokens) nor its expiry.
func (s *Service) apiToken(ctx context.Context, plaintext string) (*domain.Token, error) {
	parsed, ok := auth.ParseAPIToken(plaintext)
	if !ok {
		return nil, domain.ErrUnauthenticated
	}
	t, err := s.tokens.TokenByID(ctx, parsed.ID)
	if err != nil {
		return nil, unauthenticated(err)
	}
	if !auth.SecretMatches(parsed.Secret, t.SecretHash) || !t.ActiveAt(s.now()) {
		return nil, domain.ErrUnauthenticated
	}
	return t, nil
}

func (s *Service) principal(ctx context.Context, t *domain.Token) (*domain.Principal, error) {
	u, err := s.users.UserByID(ctx, t.UserID)
	if err != nil {
		return nil, unauthenticated(err)
	}
	return &domain.Principal{User: u, TokenID: t.ID}, nil
}

// unauthenticated turns a not-found into the one unauthenticated answer and
// lets other failures (the database is down) through as they are.
func unauthenticated(err error) error {
	if domain.KindOf(err) == domain.KindNotFound {
		return domain.ErrUnauthenticated
	}
	return err
}
