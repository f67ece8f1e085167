package users

import (
	"context"
	"net/netip"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/throttle"
)

// Bounds of the login limiters' memory.
const (
	maxTrackedKeys    = 100_000
	maxKnownAddresses = 100_000
	// knownFor is how long a successful login makes its address known for
	// that username.
	knownFor = 30 * 24 * time.Hour
)

// logins limits password attempts in three ways:
//   - per username and client address, tightly, every attempt: one source
//     guessing one account is stopped there;
//   - per client address, every attempt, whatever the username;
//   - per username, loosely, attempts from addresses it has not logged in
//     from in the last 30 days: once that budget is spent, only the known
//     addresses still reach the password check. A flood of wrong passwords
//     from many addresses then gets few guesses checked, yet does not lock
//     the owner out where they usually log in. (The budget is taken before
//     the check, so concurrent attempts cannot all pass it.)
//
// IPv6 addresses count by their /64, which one host often holds whole.
type logins struct {
	byUserAndAddress *throttle.Limiter
	byAddress        *throttle.Limiter
	byUser           *throttle.Limiter             // attempts from addresses not known for the user
	known            *lru.Cache[string, time.Time] // username and address → last login there
	now              func() time.Time
}

func newLogins(cfg Config, now func() time.Time) logins {
	known, _ := lru.New[string, time.Time](maxKnownAddresses) // size > 0: cannot fail
	return logins{
		byUserAndAddress: throttle.New(cfg.LoginAttemptsPerUserAndAddress, maxTrackedKeys, now),
		byAddress:        throttle.New(cfg.LoginAttemptsPerAddress, maxTrackedKeys, now),
		byUser:           throttle.New(cfg.LoginAttemptsPerUser, maxTrackedKeys, now),
		known:            known,
		now:              now,
	}
}

// addressKey is what a client address counts as: itself, or for IPv6 its /64.
func addressKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil || ip.Unmap().Is4() {
		return addr
	}
	p, _ := ip.Prefix(64) // an IPv6 address always has a /64
	return p.String()
}

// maxUsernameKey bounds what a malformed username counts as in the limits:
// a valid one is at most 64 bytes.
const maxUsernameKey = 64

func tooMany(wait time.Duration) error {
	return &domain.Error{Kind: domain.KindResourceExhausted, RetryAfter: wait, Reason: domain.ReasonTooManyAttempts,
		Message: "too many password attempts: retry after the time Retry-After gives"}
}

// allow takes one attempt of username from address, or says which limit
// refused it and how long to wait.
func (l logins) allow(username, address string) (PasswordOutcome, error) {
	if ok, wait := l.byAddress.Allow(address); !ok {
		return LimitedByAddress, tooMany(wait)
	}
	if ok, wait := l.byUserAndAddress.Allow(username + "\x00" + address); !ok {
		return LimitedByUserAndAddress, tooMany(wait)
	}
	if l.isKnown(username, address) {
		return "", nil
	}
	if ok, wait := l.byUser.Allow(username); !ok {
		return LimitedByUser, tooMany(wait)
	}
	return "", nil
}

func (l logins) isKnown(username, address string) bool {
	at, ok := l.known.Get(username + "\x00" + address)
	return ok && l.now().Sub(at) < knownFor
}

// succeeded makes address known for username.
func (l logins) succeeded(username, address string) {
	l.known.Add(username+"\x00"+address, l.now())
}

// AuthenticatePassword checks a human user's username and password, coming
// from clientAddr. Attempts are limited (see logins); an unknown user costs
// the same argon2id work as a wrong password, and both get the one
// unauthenticated answer.
func (s *Service) AuthenticatePassword(ctx context.Context, username, password, clientAddr string) (*domain.Principal, error) {
	p, outcome, found, err := s.authenticatePassword(ctx, username, password, clientAddr)
	if outcome != "" {
		s.deps.Observer.PasswordChecked(outcome)
		s.loginAttempted(ctx, username, found, outcome)
	}
	return p, err
}

// authenticatePassword checks a password attempt and says how it ended;
// found is the user the username names, if it was read.
func (s *Service) authenticatePassword(ctx context.Context, username, password, clientAddr string) (_ *domain.Principal, _ PasswordOutcome, found *domain.User, _ error) {
	// A malformed username is an unknown one: same limits, same work, same
	// answer; counted by its first maxUsernameKey bytes, copied, so a huge
	// one (HTTP Basic takes any length) neither grows the limiters' keys nor
	// keeps its request's memory alive in them.
	name, malformed := domain.NormalizeUsername(username)
	if malformed != nil {
		name = strings.Clone(username[:min(len(username), maxUsernameKey)])
	}
	address := addressKey(clientAddr)
	if limited, err := s.logins.allow(name, address); err != nil {
		return nil, limited, nil, err
	}
	var u *domain.User
	hash := ""
	if malformed == nil {
		switch found, err := s.deps.Users.UserByUsername(ctx, name); {
		case err == nil:
			u, hash = found, found.PasswordHash
		case domain.KindOf(err) != domain.KindNotFound:
			return nil, "", nil, err
		}
	}
	// A password longer than any can be is wrong, after the same work as
	// any other: argon2id over its first MaxPasswordBytes, not over all of
	// what the client sent.
	tooLong := len(password) > domain.MaxPasswordBytes
	if tooLong {
		password = password[:domain.MaxPasswordBytes]
	}
	ok, err := s.deps.Passwords.Verify(ctx, password, hash)
	ok = ok && !tooLong
	if ctx.Err() != nil {
		return nil, "", nil, domain.Wrap(domain.KindUnavailable, ctx.Err(), "too busy to check the password: retry later")
	}
	if err != nil {
		return nil, "", nil, domain.Wrap(domain.KindInternal, err, "verifying password")
	}
	switch {
	case u == nil:
		return nil, PasswordUnknownUser, nil, domain.ErrUnauthenticated
	case !ok:
		return nil, PasswordWrong, u, domain.ErrUnauthenticated
	}
	s.logins.succeeded(name, address)
	if s.cfg.PasswordsForAdminsOnly && !u.Admin {
		// The answer of a wrong password: a different one would tell
		// whoever guessed it that the guess was right. The trail and the
		// metrics tell the operator.
		return nil, PasswordSignInOff, u, domain.ErrUnauthenticated
	}
	return &domain.Principal{User: u, AllScopes: true}, PasswordOK, u, nil
}
