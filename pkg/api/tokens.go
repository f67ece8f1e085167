// Package api implements the generated gRPC services: proto in, domain
// calls, proto out. It knows nothing of HTTP; the server package runs it
// behind the same interceptors for gRPC and REST.
package api

import (
	"context"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/federation"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// Deps are the services the API calls.
type Deps struct {
	Tokens *tokens.Service
	Users  *users.Service
	Audit  *audit.Service
	// Federation serves the federated credentials; nil: FederatedCredentialService is not served.
	Federation *federation.Service
	// Recorder records the calls Guard refuses a valid credential
	// (request.deny); nil: not recorded.
	Recorder tokens.Audit
}

// TokenServer implements pb.TokenServiceServer.
type TokenServer struct {
	pb.UnimplementedTokenServiceServer
	deps Deps
}

var _ pb.TokenServiceServer = (*TokenServer)(nil)

// NewTokenServer returns a TokenServer.
func NewTokenServer(deps Deps) *TokenServer { return &TokenServer{deps: deps} }

// CreateToken implements pb.TokenServiceServer.
func (s *TokenServer) CreateToken(ctx context.Context, req *pb.CreateTokenRequest) (*pb.CreateTokenResponse, error) {
	caller := domain.PrincipalFromContext(ctx)
	switch {
	case caller != nil && req.GetUsername() != "":
		return nil, domain.Errorf(domain.KindInvalid, "authenticate with either a bearer credential or username and password, not both")
	case caller == nil && req.GetUsername() == "":
		return nil, domain.ErrUnauthenticated
	case caller == nil:
		calllog.SetUsername(ctx, req.GetUsername())
		var err error
		if caller, err = s.deps.Users.AuthenticatePassword(ctx, req.GetUsername(), req.GetPassword(), calllog.ClientAddr(ctx)); err != nil {
			return nil, err
		}
	}
	plaintext, t, err := s.deps.Tokens.Create(ctx, caller, createTokenInput(req))
	if err != nil {
		return nil, err
	}
	return &pb.CreateTokenResponse{Token: plaintext, Metadata: tokenToProto(t)}, nil
}

// GetToken implements pb.TokenServiceServer.
func (s *TokenServer) GetToken(ctx context.Context, req *pb.GetTokenRequest) (*pb.GetTokenResponse, error) {
	t, err := s.deps.Tokens.Get(ctx, domain.PrincipalFromContext(ctx), req.GetTokenId())
	if err != nil {
		return nil, err
	}
	return &pb.GetTokenResponse{Token: tokenToProto(t)}, nil
}

// ListTokens implements pb.TokenServiceServer.
func (s *TokenServer) ListTokens(ctx context.Context, req *pb.ListTokensRequest) (*pb.ListTokensResponse, error) {
	toks, next, err := s.deps.Tokens.List(ctx, domain.PrincipalFromContext(ctx), listTokensInput(req))
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
func (s *TokenServer) DeleteToken(ctx context.Context, req *pb.DeleteTokenRequest) (*pb.DeleteTokenResponse, error) {
	if err := s.deps.Tokens.Delete(ctx, domain.PrincipalFromContext(ctx), req.GetTokenId()); err != nil {
		return nil, err
	}
	return &pb.DeleteTokenResponse{}, nil
}

// GetAccessToken implements pb.TokenServiceServer.
func (s *TokenServer) GetAccessToken(ctx context.Context, req *pb.GetAccessTokenRequest) (*pb.GetAccessTokenResponse, error) {
	plaintext := req.GetToken()
	if plaintext == "" {
		var err error
		if plaintext, err = bearerFromContext(ctx); err != nil {
			return nil, err
		}
	}
	x, err := s.deps.Tokens.Exchange(ctx, tokens.ExchangeInput{APIToken: plaintext, Scopes: req.GetScopes(), Resource: req.GetResource()})
	if err != nil {
		return nil, err
	}
	setExpirationHeader(ctx, x.APITokenExpireTime) // the API token is the credential here
	return accessTokenToProto(x), nil
}

// RotateToken implements pb.TokenServiceServer.
func (s *TokenServer) RotateToken(ctx context.Context, req *pb.RotateTokenRequest) (*pb.RotateTokenResponse, error) {
	plaintext, t, err := s.deps.Tokens.Rotate(ctx, domain.PrincipalFromContext(ctx), req.GetTokenId(), durationFromProto(req.GetGracePeriod()))
	if err != nil {
		return nil, err
	}
	return &pb.RotateTokenResponse{Token: plaintext, Metadata: tokenToProto(t)}, nil
}
