package api

import (
	"context"
	"encoding/base64"
	"path"
	"strings"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/domain"
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
	if pol.basic {
		if username, password, ok, err := basicFromContext(ctx); ok || err != nil {
			if err != nil {
				return nil, err
			}
			calllog.SetUsername(ctx, username)
			p, err := deps.Users.AuthenticatePassword(ctx, username, password, calllog.ClientAddr(ctx))
			if err != nil {
				return nil, err
			}
			return domain.NewContextWithPrincipal(ctx, p), nil
		}
	}
	bearer, err := bearerFromContext(ctx)
	if err != nil {
		return nil, err
	}
	p, err := deps.Tokens.AuthenticateBearer(ctx, bearer)
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
	bearer, err := auth.AuthFromMD(ctx, "bearer")
	if err == nil && bearer != "" {
		return bearer, nil
	}
	if len(metadata.ValueFromIncomingContext(ctx, "authorization")) > 0 {
		// A credential without the Bearer scheme: saying how to send one
		// tells a prober nothing about any token.
		return "", errNoBearerScheme
	}
	return "", domain.ErrUnauthenticated
}

// basicFromContext returns the username and password of an
// "authorization: Basic ..." header (RFC 7617 §2: base64 of
// "username:password"; the username has no colon), ok false if the
// header is not Basic, and an unauthenticated error if it is but does
// not decode.
func basicFromContext(ctx context.Context) (username, password string, ok bool, _ error) {
	encoded, err := auth.AuthFromMD(ctx, "basic")
	if err != nil {
		return "", "", false, nil
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return "", "", false, errBadBasic
	}
	username, password, found := strings.Cut(string(raw), ":")
	if !found || username == "" {
		return "", "", false, errBadBasic
	}
	return username, password, true, nil
}

var errBadBasic = &domain.Error{Kind: domain.KindUnauthenticated, Reason: domain.ReasonInvalidCredentials,
	Message: domain.ErrUnauthenticated.Message + `: send a password as "Authorization: Basic <base64 of username:password>"`}

var errNoBearerScheme = &domain.Error{Kind: domain.KindUnauthenticated, Reason: domain.ReasonInvalidCredentials,
	Message: domain.ErrUnauthenticated.Message + `: send the token as "Authorization: Bearer <token>"`}
