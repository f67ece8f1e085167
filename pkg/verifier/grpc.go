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
// codes.Unauthenticated and no detail.
func (v *Verifier) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := v.authenticate(ctx)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming calls.
func (v *Verifier) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := v.authenticate(ss.Context())
		if err != nil {
			return err
		}
		return handler(srv, contextStream{ServerStream: ss, ctx: ctx})
	}
}

// authenticate returns ctx with the claims of the call's bearer token, or
// an Unauthenticated status.
func (v *Verifier) authenticate(ctx context.Context) (context.Context, error) {
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
	return ContextWithClaims(ctx, claims), nil
}

// contextStream is a ServerStream whose Context carries the claims.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s contextStream) Context() context.Context { return s.ctx }
