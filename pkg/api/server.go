// Package api implements the generated TokenService gRPC server: proto in,
// domain calls, proto out. It knows nothing of HTTP; the server package runs
// it behind the same interceptors for gRPC and REST.
package api

import (
	"context"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/tokens"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// Server implements pb.TokenServiceServer.
type Server struct {
	pb.UnimplementedTokenServiceServer
	svc *tokens.Service
}

var _ pb.TokenServiceServer = (*Server)(nil)

// New returns a Server over the token service.
func New(svc *tokens.Service) *Server { return &Server{svc: svc} }

// CreateToken implements pb.TokenServiceServer.
func (s *Server) CreateToken(ctx context.Context, req *pb.CreateTokenRequest) (*pb.CreateTokenResponse, error) {
	caller := domain.PrincipalFromContext(ctx)
	switch {
	case caller != nil && req.GetUsername() != "":
		return nil, domain.Errorf(domain.KindInvalid, "authenticate with either a bearer credential or username and password, not both")
	case caller == nil && req.GetUsername() == "":
		return nil, domain.ErrUnauthenticated
	case caller == nil:
		var err error
		if caller, err = s.svc.AuthenticatePassword(ctx, req.GetUsername(), req.GetPassword(), clientAddr(ctx)); err != nil {
			return nil, err
		}
	}
	plaintext, t, err := s.svc.CreateToken(ctx, caller, createInput(req))
	if err != nil {
		return nil, err
	}
	return &pb.CreateTokenResponse{Token: plaintext, Metadata: tokenToProto(t)}, nil
}

// GetToken implements pb.TokenServiceServer.
func (s *Server) GetToken(ctx context.Context, req *pb.GetTokenRequest) (*pb.GetTokenResponse, error) {
	t, err := s.svc.GetToken(ctx, domain.PrincipalFromContext(ctx), req.GetTokenId())
	if err != nil {
		return nil, err
	}
	return &pb.GetTokenResponse{Token: tokenToProto(t)}, nil
}

// ListTokens implements pb.TokenServiceServer.
func (s *Server) ListTokens(ctx context.Context, req *pb.ListTokensRequest) (*pb.ListTokensResponse, error) {
	toks, next, err := s.svc.ListTokens(ctx, domain.PrincipalFromContext(ctx), listInput(req))
	if err != nil {
		return nil, err
	}
	resp := &pb.ListTokensResponse{Tokens: make([]*pb.Token, len(toks)), NextPageToken: next}
	for i, t := range toks {
		resp.Tokens[i] = tokenToProto(t)
	}
	return resp, nil
}

// DeleteToken implements pb.TokenServiceServer.
func (s *Server) DeleteToken(ctx context.Context, req *pb.DeleteTokenRequest) (*pb.DeleteTokenResponse, error) {
	if err := s.svc.DeleteToken(ctx, domain.PrincipalFromContext(ctx), req.GetTokenId()); err != nil {
		return nil, err
	}
	return &pb.DeleteTokenResponse{}, nil
}

// GetAccessToken implements pb.TokenServiceServer.
func (s *Server) GetAccessToken(ctx context.Context, req *pb.GetAccessTokenRequest) (*pb.GetAccessTokenResponse, error) {
	plaintext := req.GetToken()
	if plaintext == "" {
		var err error
		if plaintext, err = bearerFromContext(ctx); err != nil {
			return nil, err
		}
	}
	at, err := s.svc.Exchange(ctx, plaintext)
	if err != nil {
		return nil, err
	}
	return accessTokenToProto(at), nil
}
