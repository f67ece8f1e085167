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
var ErrUnauthenticated = Errorf(KindUnauthenticated, "invalid or missing credentials")

// ErrLimitReached is what a store returns when a create would pass a quota;
// the service that set the quota says which, to the client.
var ErrLimitReached = Errorf(KindResourceExhausted, "limit reached")
