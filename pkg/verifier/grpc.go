package verifier

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor serves only calls whose "authorization" metadata
// is "Bearer <token>" with a token Verify accepts, with its Claims in the
// handler's context (ClaimsFromContext); others fail with
// codes.Unauthenticated and no detail. Options add requirements: a token
// that passes Verify but not them fails with codes.PermissionDenied naming
// what it lacks (RequireScopes).
func (v *Verifier) UnaryServerInterceptor(opts ...Option) grpc.UnaryServerInterceptor {
	r := newRequirements(opts)
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := v.authenticate(ctx, r)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming calls.
func (v *Verifier) StreamServerInterceptor(opts ...Option) grpc.StreamServerInterceptor {
	r := newRequirements(opts)
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := v.authenticate(ss.Context(), r)
		if err != nil {
			return err
		}
		return handler(srv, contextStream{ServerStream: ss, ctx: ctx})
	}
}

// authenticate returns ctx with the claims of the call's bearer token, or
// an Unauthenticated status, or a PermissionDenied one if the token does
// not meet r.
func (v *Verifier) authenticate(ctx context.Context, r requirements) (context.Context, error) {
	values := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(values) != 1 {
		return nil, status.Error(codes.Unauthenticated, "a bearer token is required")
	}
	token, ok := bearerToken(values[0])
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "a bearer token is required")
	}
	claims, err := v.Verify(ctx, token)
	if err != nil {
		v.cfg.Logger.DebugContext(ctx, "verifier: access token refused", "error", err)
		return nil, status.Error(codes.Unauthenticated, "invalid access token")
	}
	if missing := r.missingScopes(claims); len(missing) > 0 {
		v.cfg.Logger.DebugContext(ctx, "verifier: access token lacks a required scope", "missing", scopeList(missing))
		return nil, status.Errorf(codes.PermissionDenied, "the access token does not have the scopes this call requires: %s", scopeList(r.scopes))
	}
	return ContextWithClaims(ctx, claims), nil
}

// contextStream is a ServerStream whose Context carries the claims.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s contextStream) Context() context.Context { return s.ctx }
