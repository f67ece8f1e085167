package domain

import (
	"context"
	"crypto/sha256"
	"time"
)

// ExternalIdentity is who the operator's OpenID provider says a person is:
// its issuer and the subject it gives the person there, which (unlike an
// email or a username) it never gives anyone else (OpenID Connect Core
// §5.7: only iss and sub together identify an end-user).
type ExternalIdentity struct {
	Issuer  string
	Subject string
}

// Key is the identity's index key: the SHA-256 of issuer, a zero byte and
// subject (as federated credentials' match key), which fits an index where
// the two columns would not.
func (e ExternalIdentity) Key() []byte {
	h := sha256.New()
	h.Write([]byte(e.Issuer))
	h.Write([]byte{0})
	h.Write([]byte(e.Subject))
	return h.Sum(nil)
}

// SignIns keeps the people who sign in through an OpenID provider. Every
// method returns a KindUnavailable error when the database cannot be
// reached.
type SignIns interface {
	// UserByExternalIdentity returns the user linked to id, or a
	// KindNotFound error.
	UserByExternalIdentity(ctx context.Context, id ExternalIdentity) (*User, error)
	// CreateExternalUser stores the human user u linked to id, in one
	// transaction (replacing a link to a user deleted since). It returns a
	// KindConflict error if u's username is taken or id is linked to a
	// user already.
	CreateExternalUser(ctx context.Context, u *User, id ExternalIdentity, events ...*AuditEvent) error
	// SetAdmin sets whether the user is an admin (and records the change
	// in the feed: a demotion narrows what its credentials may do). It
	// returns a KindNotFound error if there is no such user.
	SetAdmin(ctx context.Context, userID string, admin bool, events ...*AuditEvent) error
}

// Session is a person's sign-in to the console: the browser holds a
// secret in a cookie, the database the secret's SHA-256 (ID) and whose it
// is. It ends at ExpireTime, or when unused for the idle time the console
// allows after LastSeenTime, or at sign-out.
type Session struct {
	ID           []byte // SHA-256 of the cookie's secret
	UserID       string
	CreateTime   time.Time
	ExpireTime   time.Time
	LastSeenTime time.Time
}

// Sessions keeps the console's sessions and its sign-ins under way. Every
// method returns a KindUnavailable error when the database cannot be
// reached.
type Sessions interface {
	// CreateSession stores s.
	CreateSession(ctx context.Context, s *Session) error
	// SessionByID returns the session, or a KindNotFound error.
	SessionByID(ctx context.Context, id []byte) (*Session, error)
	// TouchSession sets the session's last-seen time.
	TouchSession(ctx context.Context, id []byte, at time.Time) error
	// DeleteSession ends a session (none: no error).
	DeleteSession(ctx context.Context, id []byte) error
	// StartSignIn records a sign-in with the OpenID provider under way,
	// by the SHA-256 of the browser's secret for it (key), with the
	// console page to return to; it first forgets those started before
	// forgetBefore.
	StartSignIn(ctx context.Context, key []byte, returnTo string, at, forgetBefore time.Time) error
	// TakeSignIn ends the sign-in under way with key, started after
	// notBefore, and returns its page to return to: at most one call
	// gets it. None: a KindNotFound error.
	TakeSignIn(ctx context.Context, key []byte, notBefore time.Time) (string, error)
	// DeleteSessionsBefore forgets the sessions that expired before t.
	DeleteSessionsBefore(ctx context.Context, t time.Time) error
}

// CLIGrant is a sign-in of the command-line client under way, with this
// service as its authorization server: the authorization code grant for a
// native app on a loopback redirect (RFC 8252, with PKCE, RFC 7636), or the
// device authorization grant (RFC 8628). The database keeps the SHA-256 of
// its code (the device code, or the authorization code), never the code.
type CLIGrant struct {
	ID []byte // SHA-256 of the code
	// UserCode is the SHA-256 of the device grant's user code; nil for a
	// loopback grant.
	UserCode []byte
	// UserID is who approved it; "" while pending.
	UserID string
	Status CLIGrantStatus
	// Challenge and RedirectURI are a loopback grant's: the PKCE S256
	// challenge and the redirect URI the code was sent to.
	Challenge   string
	RedirectURI string
	// Host is the name the client gave of the machine it runs on.
	Host       string
	CreateTime time.Time
	ExpireTime time.Time
	// PollTime is when a device grant's client last asked for its token.
	PollTime time.Time
}

// CLIGrantStatus is where a CLI grant stands.
type CLIGrantStatus string

// The statuses.
const (
	CLIGrantPending  CLIGrantStatus = "pending"
	CLIGrantApproved CLIGrantStatus = "approved"
	CLIGrantDenied   CLIGrantStatus = "denied"
)

// CLIGrants keeps the CLI's sign-ins under way. Every method returns a
// KindUnavailable error when the database cannot be reached.
type CLIGrants interface {
	// CreateCLIGrant stores g, first forgetting the grants that expired.
	CreateCLIGrant(ctx context.Context, g *CLIGrant) error
	// CLIGrant returns the grant, or a KindNotFound error.
	CLIGrant(ctx context.Context, id []byte) (*CLIGrant, error)
	// CLIGrantByUserCode returns the device grant of a user code, or a
	// KindNotFound error.
	CLIGrantByUserCode(ctx context.Context, userCode []byte) (*CLIGrant, error)
	// DecideCLIGrant approves (for userID) or denies a pending grant; a
	// KindNotFound error if it is not pending.
	DecideCLIGrant(ctx context.Context, id []byte, userID string, status CLIGrantStatus) error
	// PollCLIGrant sets a device grant's poll time and returns the one
	// before.
	PollCLIGrant(ctx context.Context, id []byte, at time.Time) (time.Time, error)
	// TakeCLIGrant deletes the grant and reports whether this call did (at
	// most one does).
	TakeCLIGrant(ctx context.Context, id []byte) (bool, error)
}
