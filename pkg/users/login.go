package users

import (
	"context"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/throttle"
)

// maxTrackedKeys bounds the memory of each login limiter.
const maxTrackedKeys = 100_000

// logins limits password attempts. The tight limit is per username and
// client address, so someone who knows a username and floods it with wrong
// passwords from their addresses is stopped there, and its owner, logging in
// from another address, still gets in. The per-username limit over all
// addresses is loose: it bounds a guess rate spread over many addresses, and
// only attempts the tighter limits let through count towards it.
type logins struct {
	byUserAndAddress *throttle.Limiter
	byAddress        *throttle.Limiter
	byUser           *throttle.Limiter
}

func newLogins(cfg Config, now func() time.Time) logins {
	return logins{
		byUserAndAddress: throttle.New(cfg.LoginAttemptsPerUserAndAddress, maxTrackedKeys, now),
		byAddress:        throttle.New(cfg.LoginAttemptsPerAddress, maxTrackedKeys, now),
		byUser:           throttle.New(cfg.LoginAttemptsPerUser, maxTrackedKeys, now),
	}
}

// allow takes one attempt of username from clientAddr from each limit in
// turn, tightest first, or says how long to wait.
func (l logins) allow(username, clientAddr string) error {
	for _, limit := range []struct {
		l   *throttle.Limiter
		key string
	}{{l.byAddress, clientAddr}, {l.byUserAndAddress, username + "\x00" + clientAddr}, {l.byUser, username}} {
		if ok, wait := limit.l.Allow(limit.key); !ok {
			return &domain.Error{Kind: domain.KindResourceExhausted, RetryAfter: wait,
				Message: "too many password attempts: retry later"}
		}
	}
	return nil
}

// AuthenticatePassword checks a human user's username and password, coming
// from clientAddr. Attempts are limited (see logins); an unknown user costs
// the same argon2id work as a wrong password, and both get the one
// unauthenticated answer.
func (s *Service) AuthenticatePassword(ctx context.Context, username, password, clientAddr string) (*domain.Principal, error) {
	// A malformed username is an unknown one: same limits, same work, same answer.
	name, malformed := domain.NormalizeUsername(username)
	if malformed != nil {
		name = username
	}
	if err := s.logins.allow(name, clientAddr); err != nil {
		return nil, err
	}
	var u *domain.User
	hash := ""
	if malformed == nil {
		switch found, ferr := s.Users.UserByUsername(ctx, name); {
		case ferr == nil:
			u, hash = found, found.PasswordHash
		case domain.KindOf(ferr) != domain.KindNotFound:
			return nil, ferr
		}
	}
	ok, verr := s.Passwords.Verify(ctx, password, hash)
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
