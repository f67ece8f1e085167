package tokens

import (
	"context"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
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
		s.deps.LastUsed.Record(t.ID, s.deps.Clock())
		return s.principal(ctx, t)
	}
	claims, err := s.deps.Minter.Verify(bearer, s.deps.Clock())
	if err != nil {
		return nil, domain.ErrUnauthenticated
	}
	// The access token is refused as soon as its API token is deleted or
	// expired: this service checks; gateways verifying offline honour it
	// until its exp.
	t, err := s.deps.Tokens.TokenByID(ctx, claims.TokenID)
	if err != nil {
		return nil, unauthenticated(err)
	}
	now := s.deps.Clock()
	if !t.ActiveAt(now) || t.UserID != claims.UserID {
		return nil, domain.ErrUnauthenticated
	}
	s.deps.LastUsed.Record(t.ID, now)
	return s.principal(ctx, t)
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
	t, err := s.deps.Tokens.TokenByID(ctx, parsed.ID)
	if err != nil {
		return nil, unauthenticated(err)
	}
	if !auth.SecretMatches(parsed.Secret, t.SecretHash) || !t.ActiveAt(s.deps.Clock()) {
		return nil, domain.ErrUnauthenticated
	}
	return t, nil
}

func (s *Service) principal(ctx context.Context, t *domain.Token) (*domain.Principal, error) {
	u, err := s.deps.Users.UserByID(ctx, t.UserID)
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
