package domain

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error by what the caller can do about it. The server maps
// each kind to one gRPC status code (and the gateway that to one HTTP status).
type Kind int

// The error kinds. The zero value, KindInternal, is what an unclassified error is.
const (
	KindInternal          Kind = iota // a bug or an unexpected failure: the client sees "internal error"
	KindInvalid                       // the request is malformed
	KindNotFound                      // the resource does not exist, or the caller may not know it does
	KindConflict                      // the resource already exists
	KindUnauthenticated               // no valid credential
	KindPermissionDenied              // a valid credential that may not do this
	KindUnavailable                   // a dependency (the database) is down: retry later
	KindResourceExhausted             // too many attempts: retry later
	KindAborted                       // a concurrent change came first: read again and retry
)

// Error is an error whose message is safe to show to the client. Its Kind says
// which status to answer with; Err, if set, carries detail for the operator's
// log and is never shown to the client.
type Error struct {
	Kind    Kind
	Message string
	Err     error
	// RetryAfter, if set, tells the client when to try again (Retry-After).
	RetryAfter time.Duration
	// Fields, if set, names the request fields at fault (by their proto
	// names; the REST gateway shows the JSON names), each with what is
	// wrong: the client gets them as google.rpc.BadRequest.
	Fields []FieldViolation
	// Reason, if set, is a stable UPPER_SNAKE_CASE code a client may branch
	// on (google.rpc.ErrorInfo), where the status code alone is not enough;
	// Metadata, its ErrorInfo's metadata (INSUFFICIENT_SCOPE's "scope").
	Reason   string
	Metadata map[string]string
}

// FieldViolation is one request field at fault.
type FieldViolation struct {
	Field       string // proto name, dotted for nested fields
	Description string // what is wrong, a phrase: "must be in the future"
}

// Reasons a client may branch on.
const (
	ReasonInvalidCredentials   = "INVALID_CREDENTIALS" // every 401, whatever was wrong
	ReasonTooManyAttempts      = "TOO_MANY_ATTEMPTS"   // password attempts limited; see Retry-After
	ReasonQuotaExceeded        = "QUOTA_EXCEEDED"      // a per-account quota; metadata names it
	ReasonUsernameTaken        = "USERNAME_TAKEN"
	ReasonStarting             = "SERVICE_STARTING" // the database has not answered yet
	ReasonUnavailable          = "DATABASE_UNAVAILABLE"
	ReasonInsufficientScope    = "INSUFFICIENT_SCOPE"     // the credential lacks a scope the call needs (RFC 6750 §3.1)
	ReasonInvalidScope         = "INVALID_SCOPE"          // a scope asked for is unknown or more than the token holds (RFC 6749 §5.2)
	ReasonInvalidTarget        = "INVALID_TARGET"         // a resource asked for is not one the server mints for (RFC 8707 §2)
	ReasonUnsupportedTokenType = "UNSUPPORTED_TOKEN_TYPE" // a token this server does not revoke (RFC 7009 §2.2.1)
	// ReasonLastingCredentialRequired: the call makes or changes a lasting
	// credential, which takes an API token's current secret or a password.
	ReasonLastingCredentialRequired = "LASTING_CREDENTIAL_REQUIRED"
	ReasonTooManyUserCreations      = "TOO_MANY_USER_CREATIONS" // user creations limited; see Retry-After
	ReasonSecretChanged             = "SECRET_CHANGED"          // another rotation of the token came first
	ReasonAdminRequired             = "ADMIN_REQUIRED"          // a method only an admin may call
	ReasonPersonRequired            = "PERSON_REQUIRED"         // a change only a person (an owner, an admin) may make
)

// ErrSecretChanged refuses a rotation that another rotation of the same
// token came before (the caller read the token before it, as a replica's
// cache may have): AIP-193's ABORTED for a concurrency conflict.
var ErrSecretChanged = &Error{Kind: KindAborted, Reason: ReasonSecretChanged,
	Message: "the token's secret was rotated meanwhile: authenticate with its current secret and try again"}

// ErrAccessTokenCannotChange refuses an access token a call that makes or
// changes a lasting credential (Principal.MayChangeCredentials).
var ErrAccessTokenCannotChange = &Error{Kind: KindPermissionDenied, Reason: ReasonLastingCredentialRequired,
	Message: "an access token cannot create, rotate or delete other tokens, or create, delete or change users: use an API token or a password"}

// ErrReplacedSecret refuses a secret a rotation replaced (still within its
// grace period), and the access tokens minted from it, a call that makes or
// changes a lasting credential: during the grace period they may only read.
var ErrReplacedSecret = &Error{Kind: KindPermissionDenied, Reason: ReasonLastingCredentialRequired,
	Message: "this credential comes from a secret a rotation replaced: until its grace period ends it may only read; use the token's current secret or a password"}

// InvalidField returns a KindInvalid error about one request field: its
// message reads "field: description".
func InvalidField(field, format string, args ...any) *Error {
	d := fmt.Sprintf(format, args...)
	return &Error{Kind: KindInvalid, Message: field + ": " + d, Fields: []FieldViolation{{Field: field, Description: d}}}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error of the given kind with a client-safe message.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error of the given kind with a client-safe message that
// carries err for the operator's log.
func Wrap(kind Kind, err error, message string) *Error {
	return &Error{Kind: kind, Message: message, Err: err}
}

// RetryAfterOf returns the RetryAfter of the first Error in err's chain.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// KindOf returns the kind of the first Error in err's chain, or KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// MessageOf returns the client-safe message of the first Error in err's chain,
// or "internal error" when there is none, so no internal detail can leak.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != KindInternal {
		return e.Message
	}
	return "internal error"
}

// ErrUnauthenticated is the one answer to every bad credential: missing,
// malformed, wrong, expired or deleted alike, so nothing is learned from it.
var ErrUnauthenticated = &Error{Kind: KindUnauthenticated, Message: "invalid or missing credentials", Reason: ReasonInvalidCredentials}

// ErrLimitReached is what a store returns when a create would pass a quota;
// the service that set the quota says which, to the client.
var ErrLimitReached = &Error{Kind: KindResourceExhausted, Message: "limit reached", Reason: ReasonQuotaExceeded}

// ReasonOf returns the Reason of the first Error in err's chain.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// MetadataOf returns the Metadata of the first Error in err's chain.
func MetadataOf(err error) map[string]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Metadata
	}
	return nil
}

// InsufficientScope returns a KindPermissionDenied error of
// ReasonInsufficientScope naming the scope missing.
func InsufficientScope(scope, format string, args ...any) *Error {
	return &Error{Kind: KindPermissionDenied, Reason: ReasonInsufficientScope, Message: fmt.Sprintf(format, args...),
		Metadata: map[string]string{"scope": scope}}
}

// FieldsOf returns the Fields of the first Error in err's chain.
func FieldsOf(err error) []FieldViolation {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
