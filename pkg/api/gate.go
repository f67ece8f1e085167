package api

import (
	"context"
	"sync/atomic"

	"github.com/tokenservice/tokenservice/pkg/domain"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// Gate is the TokenService a process registers when it must listen before
// its database answers: until Open hands it a Server, every call fails with
// UNAVAILABLE; after, it forwards to that Server.
type Gate struct {
	pb.UnimplementedTokenServiceServer
	srv atomic.Pointer[Server]
}

var _ pb.TokenServiceServer = (*Gate)(nil)

// ErrStarting answers calls (and readiness checks) before the service is ready.
var ErrStarting = domain.Errorf(domain.KindUnavailable, "the service is starting: its database is not reachable yet")

// Open starts forwarding calls to s.
func (g *Gate) Open(s *Server) { g.srv.Store(s) }

// IsOpen reports whether Open has been called.
func (g *Gate) IsOpen() bool { return g.srv.Load() != nil }

// forward calls method on the open Server, or fails with UNAVAILABLE.
func forward[Req, Resp any](ctx context.Context, g *Gate, req Req, method func(*Server, context.Context, Req) (Resp, error)) (Resp, error) {
	s := g.srv.Load()
	if s == nil {
		var zero Resp
		return zero, ErrStarting
	}
	return method(s, ctx, req)
}

// AuthFuncOverride implements the auth interceptor's per-service override.
func (g *Gate) AuthFuncOverride(ctx context.Context, fullMethod string) (context.Context, error) {
	return forward(ctx, g, fullMethod, (*Server).AuthFuncOverride)
}

// CreateToken implements pb.TokenServiceServer.
func (g *Gate) CreateToken(ctx context.Context, req *pb.CreateTokenRequest) (*pb.CreateTokenResponse, error) {
	return forward(ctx, g, req, (*Server).CreateToken)
}

// GetToken implements pb.TokenServiceServer.
func (g *Gate) GetToken(ctx context.Context, req *pb.GetTokenRequest) (*pb.GetTokenResponse, error) {
	return forward(ctx, g, req, (*Server).GetToken)
}

// ListTokens implements pb.TokenServiceServer.
func (g *Gate) ListTokens(ctx context.Context, req *pb.ListTokensRequest) (*pb.ListTokensResponse, error) {
	return forward(ctx, g, req, (*Server).ListTokens)
}

// DeleteToken implements pb.TokenServiceServer.
func (g *Gate) DeleteToken(ctx context.Context, req *pb.DeleteTokenRequest) (*pb.DeleteTokenResponse, error) {
	return forward(ctx, g, req, (*Server).DeleteToken)
}

// GetAccessToken implements pb.TokenServiceServer.
func (g *Gate) GetAccessToken(ctx context.Context, req *pb.GetAccessTokenRequest) (*pb.GetAccessTokenResponse, error) {
	return forward(ctx, g, req, (*Server).GetAccessToken)
}
