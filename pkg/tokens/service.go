// Package tokens owns the token service's rules: who may act for whom, how API
// tokens are created, listed, deleted and exchanged for access tokens, and how
// bearer credentials are authenticated. It speaks domain types only.
package tokens

import (
	"context"
	"io"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/throttle"
)

// maxTrackedKeys bounds the memory of each login limiter.
const maxTrackedKeys = 100_000

// Page sizes of ListTokens.
const (
	DefaultPageSize = 50
	MaxPageSize     = 250
)

// Config holds the service's tunables.
type Config struct {
	// MaxTokenLifetime, if positive, bounds an API token's lifetime: tokens
	// without an expire_time get now+MaxTokenLifetime, and a later one is refused.
	MaxTokenLifetime time.Duration
	// LoginAttemptsPerUser and LoginAttemptsPerAddress bound password
	// attempts a minute, per username and per client address (0: no limit).
	LoginAttemptsPerUser    int
	LoginAttemptsPerAddress int
}

// Service implements the token service's operations.
type Service struct {
	users     domain.Users
	tokens    domain.Tokens
	passwords *auth.Passwords
	minter    *auth.Minter
	pages     *PageTokens
	now       func() time.Time
	rnd       io.Reader
	cfg       Config
	byUser    *throttle.Limiter
	byAddress *throttle.Limiter
	usage     Usage
}

// Usage records token uses; the recording may be batched.
type Usage interface {
	Record(tokenID string, at time.Time)
}

type noUsage struct{}

func (noUsage) Record(string, time.Time) {}

// New returns a Service. usage records each exchange and bearer use (nil:
// none), now is the clock and rnd the source of randomness
// (crypto/rand.Reader in production).
func New(cfg Config, users domain.Users, tokens domain.Tokens, passwords *auth.Passwords,
	minter *auth.Minter, pages *PageTokens, usage Usage, now func() time.Time, rnd io.Reader) *Service {
	if usage == nil {
		usage = noUsage{}
	}
	return &Service{users: users, tokens: tokens, passwords: passwords, minter: minter,
		pages: pages, usage: usage, now: now, rnd: rnd, cfg: cfg,
		byUser:    throttle.New(cfg.LoginAttemptsPerUser, maxTrackedKeys, now),
		byAddress: throttle.New(cfg.LoginAttemptsPerAddress, maxTrackedKeys, now)}
}

// CreateInput is what a caller asks of CreateToken.
type CreateInput struct {
	UserID     string // empty: the caller
	Note       string
	ExpireTime time.Time // zero: no expiry (or the configured maximum)
}

// CreateToken creates an API token for in.UserID and returns its plaintext,
// which is never available again, with its stored metadata.
func (s *Service) CreateToken(ctx context.Context, caller *domain.Principal, in CreateInput) (string, *domain.Token, error) {
	owner, err := s.actingFor(ctx, caller, in.UserID)
	if err != nil {
		return "", nil, err
	}
	now := s.now()
	expire := in.ExpireTime
	if !expire.IsZero() && !expire.After(now) {
		return "", nil, domain.Errorf(domain.KindInvalid, "expire_time must be in the future")
	}
	if max := s.cfg.MaxTokenLifetime; max > 0 {
		limit := now.Add(max)
		if expire.IsZero() {
			expire = limit
		} else if expire.After(limit) {
			return "", nil, domain.Errorf(domain.KindInvalid, "expire_time must be within %s from now", max)
		}
	}
	plain, err := auth.NewAPIToken(s.rnd)
	if err != nil {
		return "", nil, domain.Wrap(domain.KindInternal, err, "generating token")
	}
	t := &domain.Token{
		ID:         plain.ID,
		UserID:     owner,
		SecretHash: auth.HashSecret(plain.Secret),
		Note:       in.Note,
		CreateTime: now,
		ExpireTime: expire.UTC().Truncate(time.Microsecond),
	}
	if err := s.tokens.CreateToken(ctx, t); err != nil {
		return "", nil, err
	}
	return plain.String(), t, nil
}

// GetToken returns a token the caller may see (its own or its machine users',
// or any for an admin), or a not-found error, so existence does not leak.
func (s *Service) GetToken(ctx context.Context, caller *domain.Principal, id string) (*domain.Token, error) {
	t, err := s.visibleToken(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	if !t.DeleteTime.IsZero() {
		return nil, errTokenNotFound
	}
	return t, nil
}

// DeleteToken deletes a token the caller may see. Deleting a deleted token
// succeeds. Once it returns, the token and access tokens minted from it are refused.
func (s *Service) DeleteToken(ctx context.Context, caller *domain.Principal, id string) error {
	if _, err := s.visibleToken(ctx, caller, id); err != nil {
		return err
	}
	return s.tokens.DeleteToken(ctx, id, s.now())
}

// ListInput is what a caller asks of ListTokens.
type ListInput struct {
	UserID    string // empty: the caller
	PageSize  int    // 0: DefaultPageSize; clamped to MaxPageSize
	PageToken string
	Reverse   bool
}

// ListTokens returns one page of a user's active tokens and the token of the
// next page ("" on the last page).
func (s *Service) ListTokens(ctx context.Context, caller *domain.Principal, in ListInput) ([]*domain.Token, string, error) {
	userID, err := s.actingFor(ctx, caller, in.UserID)
	if err != nil {
		return nil, "", err
	}
	size := in.PageSize
	switch {
	case size <= 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
	}
	q := domain.ListQuery{UserID: userID, Now: s.now(), Limit: size + 1, Reverse: in.Reverse}
	if in.PageToken != "" {
		if q.After, err = s.pages.Decode(in.PageToken, userID, in.Reverse); err != nil {
			return nil, "", err
		}
	}
	toks, err := s.tokens.ListTokens(ctx, q)
	if err != nil {
		return nil, "", err
	}
	if len(toks) <= size {
		return toks, "", nil
	}
	toks = toks[:size]
	last := toks[size-1]
	return toks, s.pages.Encode(domain.Cursor{CreateTime: last.CreateTime, ID: last.ID}, userID, in.Reverse), nil
}

// Exchange trades a plaintext API token for a signed access token.
func (s *Service) Exchange(ctx context.Context, plaintext string) (auth.AccessToken, error) {
	t, err := s.apiToken(ctx, plaintext)
	if err != nil {
		return auth.AccessToken{}, err
	}
	now := s.now()
	at, err := s.minter.Mint(t, now)
	if err != nil {
		return auth.AccessToken{}, domain.Wrap(domain.KindInternal, err, "minting access token")
	}
	s.usage.Record(t.ID, now)
	return at, nil
}

var errTokenNotFound = domain.Errorf(domain.KindNotFound, "token not found")

// visibleToken returns the token, deleted or not, if the caller may see it.
func (s *Service) visibleToken(ctx context.Context, caller *domain.Principal, id string) (*domain.Token, error) {
	t, err := s.tokens.TokenByID(ctx, id)
	if domain.KindOf(err) == domain.KindNotFound {
		return nil, errTokenNotFound
	}
	if err != nil {
		return nil, err
	}
	if t.UserID == caller.User.ID || caller.User.Admin {
		return t, nil
	}
	owner, err := s.users.UserByID(ctx, t.UserID)
	if err != nil {
		if domain.KindOf(err) == domain.KindNotFound {
			return nil, errTokenNotFound
		}
		return nil, err
	}
	if owner.OwnerID != caller.User.ID {
		return nil, errTokenNotFound
	}
	return t, nil
}

// actingFor returns the ID of the user the caller acts for: itself when
// userID is empty, else userID if it is the caller, a machine user the caller
// owns, or anyone for an admin.
func (s *Service) actingFor(ctx context.Context, caller *domain.Principal, userID string) (string, error) {
	if userID == "" || userID == caller.User.ID {
		return caller.User.ID, nil
	}
	target, err := s.users.UserByID(ctx, userID)
	switch {
	case domain.KindOf(err) == domain.KindNotFound:
		if caller.User.Admin {
			return "", domain.Errorf(domain.KindNotFound, "user not found")
		}
		return "", errPermissionDenied
	case err != nil:
		return "", err
	case caller.User.Admin || target.OwnerID == caller.User.ID:
		return target.ID, nil
	}
	return "", errPermissionDenied
}

var errPermissionDenied = domain.Errorf(domain.KindPermissionDenied,
	"user_id must be empty, your own user ID, or a machine user you own")
