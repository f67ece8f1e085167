package domain

import (
	"context"
	"time"
)

// Users keeps users. Every method returns a KindUnavailable error when the
// database cannot be reached. The events given to a method that changes
// something are written in the change's transaction, when it changes
// something: the audit trail holds no change without its event, and no
// event of a change that did not happen. So for Tokens and Keys.
type Users interface {
	// CreateUser stores u. It returns a KindConflict error if the username
	// is taken; for a machine user, a KindNotFound error if its owner does
	// not exist, and ErrLimitReached if maxOwned > 0 machine users of its
	// owner exist already.
	CreateUser(ctx context.Context, u *User, maxOwned int, events ...*AuditEvent) error
	// UserByID returns a KindNotFound error if there is no such user.
	UserByID(ctx context.Context, id string) (*User, error)
	// UserByUsername returns a KindNotFound error if there is no such user.
	UserByUsername(ctx context.Context, username string) (*User, error)
	// ListUsers returns up to q.Limit users in (create time, id) order.
	ListUsers(ctx context.Context, q UserQuery) ([]*User, error)
	// SetPasswordHash sets the user's password and ends its console
	// sessions. It returns a KindNotFound error if there is no such user.
	SetPasswordHash(ctx context.Context, userID, hash string, events ...*AuditEvent) error
	// DeleteUser deletes, in one transaction, the user, the machine users it
	// owns, and the tokens of all of them, and returns the IDs of the users
	// deleted. It returns a KindNotFound error if there is no such user.
	DeleteUser(ctx context.Context, id string, events ...*AuditEvent) ([]string, error)
}

// Tokens keeps API tokens. Every method returns a KindUnavailable error when
// the database cannot be reached.
type Tokens interface {
	// CreateToken stores t. It returns a KindNotFound error if t's user does
	// not exist, a KindConflict error if the ID is taken, and ErrLimitReached
	// if maxLive > 0 tokens of t's user are live (neither deleted nor expired
	// at t.CreateTime) already.
	CreateToken(ctx context.Context, t *Token, maxLive int, events ...*AuditEvent) error
	// TokenByID returns the token, deleted or not, or a KindNotFound error.
	// It may answer from a cache.
	TokenByID(ctx context.Context, id string) (*Token, error)
	// FreshTokenByID is TokenByID read from the database, for when a cached
	// answer may be out of date (another replica rotated the token's
	// secret); a cache may answer with a read at most a second old, so that
	// wrong secrets sent for a known token cost at most one read a second.
	FreshTokenByID(ctx context.Context, id string) (*Token, error)
	// CurrentTokenByID is TokenByID read from the database every time,
	// with no reuse of a read however recent: for calls that make or
	// change lasting credentials, which must not act on a copy that
	// predates a rotation or deletion elsewhere.
	CurrentTokenByID(ctx context.Context, id string) (*Token, error)
	// ListTokens returns up to q.Limit active tokens in (create time, id) order.
	ListTokens(ctx context.Context, q TokenQuery) ([]*Token, error)
	// DeleteToken marks the token deleted at the given time; deleting a
	// deleted token keeps its first delete time. It returns a KindNotFound error
	// if there is no such token.
	DeleteToken(ctx context.Context, id string, at time.Time, events ...*AuditEvent) error
	// RotateSecret gives a live token whose secret is still of generation
	// fromGeneration a new secret hash (and the next generation), keeping
	// the old one as its previous secret until previousUntil (zero:
	// refused at once). It returns a KindNotFound error if there is no such
	// live token, ErrSecretChanged if another rotation came first.
	RotateSecret(ctx context.Context, id string, fromGeneration int, hash []byte, previousUntil, now time.Time, events ...*AuditEvent) error
	// EndGrace drops the previous secret of a token whose secret is of
	// generation generation: the replaced secret is refused from now on.
	// Nothing happens if the token has moved on or is gone.
	EndGrace(ctx context.Context, id string, generation int, events ...*AuditEvent) error
	// CountExpiring returns how many live tokens expire in [from, to).
	CountExpiring(ctx context.Context, from, to time.Time) (int64, error)
}

// LastUsedWriter writes when tokens were last used.
type LastUsedWriter interface {
	// WriteLastUsed sets each token's last-used time to the given time,
	// unless it already has a later one. Unknown ids are ignored.
	WriteLastUsed(ctx context.Context, uses map[string]time.Time) error
}

// Keys keeps the service's signing keys and server secrets, shared by every
// replica on one database.
type Keys interface {
	// SigningKeys returns every signing key, oldest first.
	SigningKeys(ctx context.Context) ([]*SigningKey, error)
	// AddSigningKey stores k unless a key created after ifNoneSince exists
	// (zero: unless any key exists), and reports whether it did: replicas
	// adding a key at the same moment add one between them. Like every
	// method here, it fails with KindUnavailable when the database does
	// not answer.
	AddSigningKey(ctx context.Context, k *SigningKey, ifNoneSince time.Time, events ...*AuditEvent) (bool, error)
	// DeleteSigningKeys deletes the keys with these IDs; unknown ones are ignored.
	DeleteSigningKeys(ctx context.Context, ids []string, events ...*AuditEvent) error
	// Secret returns the named server secret, storing value as it first if the
	// name has none yet, so every replica ends up with the same one.
	Secret(ctx context.Context, name string, value []byte) ([]byte, error)
}

// Resealer rewrites the values a key-encryption key seals, for sealing
// values stored in the clear and for changing the key-encryption key.
type Resealer interface {
	// RewriteSealed replaces each sealed value (every signing key's
	// private key and every server secret) with rewrite's result, all in
	// one transaction: if rewrite fails for one, none changes. It returns
	// how many values it rewrote; events, written in that transaction, get
	// the detail "values" saying how many.
	RewriteSealed(ctx context.Context, rewrite func(v SealedValue) ([]byte, error), events ...*AuditEvent) (int, error)
}

// SealedValueKind says what a SealedValue is.
type SealedValueKind string

// The values a key-encryption key seals.
const (
	SealedSigningKey SealedValueKind = "signing_key" // Name is the kid
	SealedSecret     SealedValueKind = "secret"      // Name is the secret's name
)

// SealedValue is a stored value a key-encryption key seals, as stored.
type SealedValue struct {
	Kind  SealedValueKind
	Name  string
	Value []byte
}

// ChangeKind names what a change ended or narrowed.
type ChangeKind string

// The kinds of change.
const (
	// ChangedToken: a token deleted, or its secret rotated (or its grace
	// ended); the change's ID is the token's.
	ChangedToken ChangeKind = "token"
	// ChangedUser: a user deleted (and with it its tokens and federated
	// credentials), or its password changed; the ID is the user's.
	ChangedUser ChangeKind = "user"
	// ChangedFederatedCredential: a federated credential deleted, or
	// created (which can make an exchange's match ambiguous); the ID is
	// the credential's.
	ChangedFederatedCredential ChangeKind = "federated_credential"
)

// Change is a record, written in the same transaction as a change that
// ends or narrows a credential, that every replica reads to drop what it
// cached of it.
type Change struct {
	// Seq orders the changes as they committed, without gaps: a change
	// missing from a run of them was pruned.
	Seq  int64
	Kind ChangeKind
	ID   string
}

// Changes is the feed of changes. Every method returns a KindUnavailable
// error when the database cannot be reached.
type Changes interface {
	// LastChange returns the sequence number of the latest change (0: none
	// yet), whether or not it was pruned.
	LastChange(ctx context.Context) (int64, error)
	// ChangesAfter returns up to limit changes with a Seq after seq, in
	// order.
	ChangesAfter(ctx context.Context, seq int64, limit int) ([]Change, error)
	// PruneChanges deletes the changes recorded before cutoff and returns
	// how many.
	PruneChanges(ctx context.Context, cutoff time.Time) (int64, error)
}
