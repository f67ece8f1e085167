package api

import (
	"context"
	"path"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/tokenservice/tokenservice/pkg/bearer"
	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

// policy says what a method asks of the caller: how it sends its
// credential and the scope that credential must carry ("" for none).
type policy struct {
	bearer authPolicy
	scope  string
	// basic: the method also takes a password, as HTTP Basic credentials
	// (RFC 7617) in the Authorization header: a password may do what any
	// token of its user may, so an owner can act on a token that outlives
	// every token they hold (a leaked lasting one).
	basic bool
}

// authPolicy says what each method asks of the Authorization credential.
type authPolicy int

const (
	bearerRequired authPolicy = iota // the caller must present a bearer
	bearerOptional                   // a bearer, if present, must be valid (the method takes a password otherwise)
	bearerInBody                     // the handler reads the credential itself (GetAccessToken)
)

// authenticate implements the auth interceptor's per-service override
// (go-grpc-middleware calls it on both the gRPC and the in-process REST path):
// it applies the method's policy, checks the credential's scope, tells the
// client when its credential expires, and puts the caller in the context.
// A method without a policy is refused, never open.
func authenticate(ctx context.Context, deps Deps, fullMethod string, policies map[string]policy) (context.Context, error) {
	pol, ok := policies[fullMethod]
	if !ok {
		return nil, domain.ErrUnauthenticated
	}
	if pol.bearer == bearerInBody {
		return ctx, nil
	}
	if pol.bearer == bearerOptional && len(metadata.ValueFromIncomingContext(ctx, "authorization")) == 0 {
		return ctx, nil
	}
	// The methods that need a write scope are those that make or change
	// lasting credentials.
	p, err := caller(ctx, deps, pol.basic, tokens.WriteScopes.Has(pol.scope))
	if err != nil {
		return nil, err
	}
	setExpirationHeader(ctx, p.ExpireTime)
	if pol.scope != "" && !p.Allows(pol.scope) {
		return nil, insufficientScope(pol.scope, fullMethod)
	}
	return domain.NewContextWithPrincipal(ctx, p), nil
}

// TokenExpirationHeader carries, on every authenticated answer (gRPC
// response metadata; the gateway passes it on as the REST header
// Tokenservice-Token-Expiration), when the caller's credential expires (RFC
// 3339, UTC); absent for one that does not.
const TokenExpirationHeader = "tokenservice-token-expiration"

// setExpirationHeader tells the client when its credential expires, as
// GitHub's GitHub-Authentication-Token-Expiration does, so it learns of the
// end before it comes. A zero time (no expiry) sends nothing.
func setExpirationHeader(ctx context.Context, at time.Time) {
	if !at.IsZero() {
		_ = grpc.SetHeader(ctx, metadata.Pairs(TokenExpirationHeader, at.UTC().Format(time.RFC3339)))
	}
}

// insufficientScope is RFC 6750 §3.1's insufficient_scope, as a
// PERMISSION_DENIED naming the scope.
func insufficientScope(scope, fullMethod string) error {
	return domain.InsufficientScope(scope, "the credential lacks the scope %q, which %s needs: use a token that has it", scope, path.Base(fullMethod))
}

// bearerFromContext returns the credential of an "authorization: Bearer ..."
// header, or the one unauthenticated error.
func bearerFromContext(ctx context.Context) (string, error) {
	authorization := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(authorization) == 0 {
		return "", domain.ErrUnauthenticated
	}
	if isBearer, token := bearer.Parse(authorization[0]); isBearer && token != "" {
		return token, nil
	}
	// A credential without the Bearer scheme: saying how to send one
	// tells a prober nothing about any token.
	return "", errNoBearerScheme
}

// caller resolves the request's Authorization credential: a bearer, or, if
// basic, a username and password as HTTP Basic credentials (RFC 7617).
// changes: the call makes or changes lasting credentials, so an API token
// is checked against the database, not a cache.
func caller(ctx context.Context, deps Deps, basic, changes bool) (*domain.Principal, error) {
	authorization := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(authorization) != 1 {
		return nil, domain.ErrUnauthenticated
	}
	isBasic, username, password, ok := bearer.ParseBasic(authorization[0])
	switch {
	case isBasic && !basic:
		return nil, errBasicNotTaken
	case isBasic && (!ok || username == "" || len(username) > maxUsernameBytes || len(password) > domain.MaxPasswordBytes):
		// None of these can be anyone's: refused before any check or log
		// line (which would carry a username of any length).
		return nil, errBadBasic
	case isBasic:
		calllog.SetUsername(ctx, username)
		return deps.Users.AuthenticatePassword(ctx, username, password, calllog.ClientAddr(ctx))
	}
	token, err := bearerFromContext(ctx)
	if err != nil {
		return nil, err
	}
	if changes {
		return deps.Tokens.AuthenticateBearerToChange(ctx, token)
	}
	return deps.Tokens.AuthenticateBearer(ctx, token)
}

// maxUsernameBytes is the longest a username may be (domain.NormalizeUsername).
const maxUsernameBytes = 64

var (
	errBadBasic = &domain.Error{Kind: domain.KindUnauthenticated, Reason: domain.ReasonInvalidCredentials,
		Message: domain.ErrUnauthenticated.Message + `: send a password as "Authorization: Basic <base64 of username:password>"`}
	errBasicNotTaken = &domain.Error{Kind: domain.KindUnauthenticated, Reason: domain.ReasonInvalidCredentials,
		Message: domain.ErrUnauthenticated.Message + `: this method takes no password as HTTP Basic (CreateToken takes one in its body): send the token as "Authorization: Bearer <token>"`}
)

var errNoBearerScheme = &domain.Error{Kind: domain.KindUnauthenticated, Reason: domain.ReasonInvalidCredentials,
	Message: domain.ErrUnauthenticated.Message + `: send the token as "Authorization: Bearer <token>"`}
