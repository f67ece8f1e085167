package domain

import "time"

// User is a person (with a password) or a machine user (without one, owned by a person).
type User struct {
	ID           string
	Username     string
	PasswordHash string // argon2id PHC string; empty for machine users
	OwnerID      string // the owning human user's ID; empty for human users
	Admin        bool
	CreateTime   time.Time
}

// IsMachine reports whether u is a machine user.
func (u *User) IsMachine() bool { return u.OwnerID != "" }

// Token is a stored API token: its metadata and the hash of its secret.
type Token struct {
	ID         string
	UserID     string
	SecretHash []byte // SHA-256 of the secret; the secret itself is never stored
	Note       string
	CreateTime time.Time
	ExpireTime time.Time // zero: no expiry
	DeleteTime time.Time // zero: not deleted
	// LastUsedTime is when the token was last exchanged or used as a bearer,
	// as last recorded (recording is batched); zero: never.
	LastUsedTime time.Time
	// Scopes are what the token may do: never empty, never changed.
	Scopes Scopes
	// PreviousSecretHash is the hash of the secret a rotation replaced,
	// accepted until PreviousSecretExpireTime (a grace period); nil: none.
	PreviousSecretHash       []byte
	PreviousSecretExpireTime time.Time
	// SecretGeneration counts the rotations of the token's secret: 0 for
	// the secret it was created with. Access tokens carry the generation
	// of the secret they were minted from, so a rotation can shut out
	// those of the secret it replaced.
	SecretGeneration int
}

// ActiveAt reports whether t can be used at now: not deleted and not expired.
func (t *Token) ActiveAt(now time.Time) bool {
	return t.DeleteTime.IsZero() && (t.ExpireTime.IsZero() || now.Before(t.ExpireTime))
}

// Principal is the authenticated caller of a request.
type Principal struct {
	User *User
	// TokenID is the API token the caller used, directly or as the access
	// token's client_id; empty when the caller used a password.
	TokenID string
	// TokenGeneration is the generation of TokenID's secret the caller's
	// credential proved, as read when it authenticated.
	TokenGeneration int
	// Scopes are what the credential may do: an API token's, or the access
	// token's scope claim. AllScopes: a password (or the operator's
	// server-side command), which may do everything.
	Scopes    Scopes
	AllScopes bool
	// TokenExpireTime is the expiry of the API token the caller used
	// (zero: none); ExpireTime is the credential's own: the access token's
	// exp when the caller sent one, else TokenExpireTime.
	TokenExpireTime time.Time
	ExpireTime      time.Time
	// PreviousSecret: the caller used its API token's previous secret, or
	// an access token minted from it, within the grace period a rotation
	// gave it.
	PreviousSecret bool
	// AccessToken: the caller sent an access token (not an API token or a
	// password).
	AccessToken bool
}

// Allows reports whether the caller's credential carries scope.
func (p *Principal) Allows(scope string) bool { return p.AllScopes || p.Scopes.Has(scope) }

// MayChangeCredentials returns nil if the caller's credential may make or
// change lasting credentials: create, rotate or delete (another) API token,
// create or delete users, change a password. A password or an API token's
// current secret may; an access token may not (it is handed to every API
// behind the gateways, which must not be able to turn it into a lasting
// credential), nor may a secret a rotation replaced, nor an access token
// minted from one (the rotation must shut out whoever leaked it).
func (p *Principal) MayChangeCredentials() error {
	switch {
	case p.PreviousSecret:
		return ErrReplacedSecret
	case p.AccessToken:
		return ErrAccessTokenCannotChange
	}
	return nil
}

// Cursor is a position in a listing: the last token of the previous page.
type Cursor struct {
	CreateTime time.Time
	ID         string
}

// TokenQuery selects one page of a user's active tokens.
type TokenQuery struct {
	UserID  string
	Now     time.Time // tokens expired at Now are left out
	Limit   int
	Reverse bool    // newest first
	After   *Cursor // nil: the first page
	// ExpireBefore, if set, keeps only tokens that expire before it.
	ExpireBefore time.Time
}

// SigningKey is a key the service signs access tokens with. It is
// published (in the JWKS) from CreateTime and signs from ActivateTime.
type SigningKey struct {
	ID         string // the JWS kid
	Algorithm  string // "ES256"
	PrivateDER []byte // PKCS #8
	CreateTime time.Time
	// ActivateTime is when the key starts signing; zero: at CreateTime.
	ActivateTime time.Time
}

// Activation returns when k starts signing.
func (k *SigningKey) Activation() time.Time {
	if k.ActivateTime.IsZero() {
		return k.CreateTime
	}
	return k.ActivateTime
}

// UserQuery selects one page of users.
type UserQuery struct {
	// VisibleTo, if set, keeps only the user with this ID and the machine
	// users it owns; empty: every user.
	VisibleTo string
	// Username, if set, keeps only the user with this username.
	Username string
	Limit    int
	After    *Cursor // nil: the first page
}
