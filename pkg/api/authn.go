package api

import (
	"context"
	"path"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

// policy says what a method asks of the caller: how it sends its
// credential and the scope that credential must carry ("" for none).
type policy struct {
	bearer authPolicy
	scope  string
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
func authenticate(ctx context.Context, svc *tokens.Service, fullMethod string, policies map[string]policy) (context.Context, error) {
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
	bearer, err := bearerFromContext(ctx)
	if err != nil {
		return nil, err
	}
	p, err := svc.AuthenticateBearer(ctx, bearer)
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

var errNoBearerScheme = &domain.Error{Kind: domain.KindUnauthenticated, Reason: domain.ReasonInvalidCredentials,
	Message: domain.ErrUnauthenticated.Message + `: send the token as "Authorization: Bearer <token>"`}
