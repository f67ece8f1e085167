package api

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/federation"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// FederatedCredentialServer implements pb.FederatedCredentialServiceServer.
type FederatedCredentialServer struct {
	pb.UnimplementedFederatedCredentialServiceServer
	deps Deps
}

var _ pb.FederatedCredentialServiceServer = (*FederatedCredentialServer)(nil)

// NewFederatedCredentialServer returns a FederatedCredentialServer.
func NewFederatedCredentialServer(deps Deps) *FederatedCredentialServer {
	return &FederatedCredentialServer{deps: deps}
}

// CreateFederatedCredential implements pb.FederatedCredentialServiceServer.
func (s *FederatedCredentialServer) CreateFederatedCredential(ctx context.Context, req *pb.CreateFederatedCredentialRequest) (*pb.CreateFederatedCredentialResponse, error) {
	fc := req.GetFederatedCredential()
	var lifetime time.Duration
	if d := fc.GetMaxAccessTokenLifetime(); d != nil {
		lifetime = d.AsDuration()
	}
	c, err := s.deps.Federation.Create(ctx, domain.PrincipalFromContext(ctx), federation.CreateInput{
		UserID:      req.GetUserId(),
		Issuer:      fc.GetIssuer(),
		Subject:     fc.GetSubject(),
		Audiences:   fc.GetAudiences(),
		Condition:   fc.GetCondition(),
		Scopes:      fc.GetScopes(),
		MaxLifetime: lifetime,
		Description: fc.GetDescription(),
	})
	if err != nil {
		return nil, err
	}
	return &pb.CreateFederatedCredentialResponse{FederatedCredential: federatedCredentialToProto(c)}, nil
}

// GetFederatedCredential implements pb.FederatedCredentialServiceServer.
func (s *FederatedCredentialServer) GetFederatedCredential(ctx context.Context, req *pb.GetFederatedCredentialRequest) (*pb.GetFederatedCredentialResponse, error) {
	c, err := s.deps.Federation.Get(ctx, domain.PrincipalFromContext(ctx), req.GetUserId(), req.GetFederatedCredentialId())
	if err != nil {
		return nil, err
	}
	return &pb.GetFederatedCredentialResponse{FederatedCredential: federatedCredentialToProto(c)}, nil
}

// ListFederatedCredentials implements pb.FederatedCredentialServiceServer.
func (s *FederatedCredentialServer) ListFederatedCredentials(ctx context.Context, req *pb.ListFederatedCredentialsRequest) (*pb.ListFederatedCredentialsResponse, error) {
	cs, err := s.deps.Federation.List(ctx, domain.PrincipalFromContext(ctx), req.GetUserId())
	if err != nil {
		return nil, err
	}
	resp := &pb.ListFederatedCredentialsResponse{FederatedCredentials: make([]*pb.FederatedCredential, len(cs))}
	for i, c := range cs {
		resp.FederatedCredentials[i] = federatedCredentialToProto(c)
	}
	return resp, nil
}

// DeleteFederatedCredential implements pb.FederatedCredentialServiceServer.
func (s *FederatedCredentialServer) DeleteFederatedCredential(ctx context.Context, req *pb.DeleteFederatedCredentialRequest) (*pb.DeleteFederatedCredentialResponse, error) {
	if err := s.deps.Federation.Delete(ctx, domain.PrincipalFromContext(ctx), req.GetUserId(), req.GetFederatedCredentialId()); err != nil {
		return nil, err
	}
	return &pb.DeleteFederatedCredentialResponse{}, nil
}

func federatedCredentialToProto(c *domain.FederatedCredential) *pb.FederatedCredential {
	out := &pb.FederatedCredential{
		Id:          c.ID,
		UserId:      c.UserID,
		Issuer:      c.Issuer,
		Subject:     c.Subject,
		Audiences:   c.Audiences,
		Condition:   c.Condition,
		Scopes:      c.Scopes,
		Description: c.Description,
		CreateTime:  timeToProto(c.CreateTime),
	}
	if c.MaxLifetime > 0 {
		out.MaxAccessTokenLifetime = durationpb.New(c.MaxLifetime)
	}
	return out
}
