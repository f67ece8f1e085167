package api

import (
	"context"

	"github.com/tokenservice/tokenservice/pkg/domain"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// AuditServer implements pb.AuditServiceServer.
type AuditServer struct {
	pb.UnimplementedAuditServiceServer
	deps Deps
}

var _ pb.AuditServiceServer = (*AuditServer)(nil)

// NewAuditServer returns an AuditServer.
func NewAuditServer(deps Deps) *AuditServer { return &AuditServer{deps: deps} }

// ListAuditEvents implements pb.AuditServiceServer.
func (s *AuditServer) ListAuditEvents(ctx context.Context, req *pb.ListAuditEventsRequest) (*pb.ListAuditEventsResponse, error) {
	in, err := listAuditEventsInput(req)
	if err != nil {
		return nil, err
	}
	events, next, err := s.deps.Audit.List(ctx, domain.PrincipalFromContext(ctx), in)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListAuditEventsResponse{AuditEvents: make([]*pb.AuditEvent, len(events)), NextPageToken: next}
	for i, e := range events {
		resp.AuditEvents[i] = auditEventToProto(e)
	}
	return resp, nil
}
