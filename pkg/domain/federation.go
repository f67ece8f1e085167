package domain

import (
	"context"
	"strings"
	"time"
)

// FederatedCredential lets a machine user be a workload of another platform
// without a stored secret: a JWT that a trusted issuer signed for Subject,
// with one of Audiences, and whose claims satisfy Condition, is exchanged
// for the machine user's access token (RFC 8693). The shape is that of
// Azure's federated identity credentials.
type FederatedCredential struct {
	ID     string // FederatedCredentialPrefix and a random base62 ID
	UserID string // the machine user
	// Issuer is the exact iss, one of the operator's trusted issuers.
	Issuer string
	// Subject is the exact sub.
	Subject string
	// Audiences: the token's aud must contain one of them.
	Audiences []string
	// Condition, if set, is a CEL expression over the token's claims
	// (as `claims`) that must be true.
	Condition string
	// Scopes are the most an exchange may grant: never empty.
	Scopes Scopes
	// MaxLifetime, if positive, bounds the access tokens' lifetime below
	// the server's.
	MaxLifetime time.Duration
	Description string
	CreateTime  time.Time
}

// FederatedCredentialPrefix starts every federated credential's ID, which
// an access token minted through it carries as its client_id: it tells one
// from an API token's ID (base62, never an underscore).
const FederatedCredentialPrefix = "fc_"

// IsFederatedCredentialID reports whether id is shaped like a federated
// credential's ID.
func IsFederatedCredentialID(id string) bool { return strings.HasPrefix(id, FederatedCredentialPrefix) }

// FederatedCredentials keeps federated credentials. Every method returns a
// KindUnavailable error when the database cannot be reached; the events
// given to a change are written in its transaction, as for Tokens.
type FederatedCredentials interface {
	// CreateFederatedCredential stores c. It returns a KindNotFound error
	// if c's user does not exist, and ErrLimitReached if max > 0
	// credentials of that user exist already.
	CreateFederatedCredential(ctx context.Context, c *FederatedCredential, max int, events ...*AuditEvent) error
	// FederatedCredentialByID returns a KindNotFound error if there is no
	// such credential. It may answer from a cache.
	FederatedCredentialByID(ctx context.Context, id string) (*FederatedCredential, error)
	// ListFederatedCredentials returns the user's credentials, oldest first.
	ListFederatedCredentials(ctx context.Context, userID string) ([]*FederatedCredential, error)
	// FederatedCredentialsFor returns the credentials for issuer and
	// subject, of every user, oldest first. It may answer from a cache.
	FederatedCredentialsFor(ctx context.Context, issuer, subject string) ([]*FederatedCredential, error)
	// DeleteFederatedCredential deletes it. It returns a KindNotFound error
	// if there is no such credential.
	DeleteFederatedCredential(ctx context.Context, id string, events ...*AuditEvent) error
}
