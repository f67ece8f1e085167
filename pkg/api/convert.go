package api

import (
	"encoding/hex"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// The one place protos and domain types meet.

func tokenToProto(t *domain.Token) *pb.Token {
	return &pb.Token{
		Id:           t.ID,
		UserId:       t.UserID,
		Note:         t.Note,
		CreateTime:   timeToProto(t.CreateTime),
		ExpireTime:   timeToProto(t.ExpireTime),
		LastUsedTime: timeToProto(t.LastUsedTime),
		Scopes:       t.Scopes,
	}
}

func createTokenInput(req *pb.CreateTokenRequest) tokens.CreateInput {
	return tokens.CreateInput{UserID: req.GetUserId(), Note: req.GetNote(), ExpireTime: timeFromProto(req.GetExpireTime()),
		Scopes: req.GetScopes()}
}

func listTokensInput(req *pb.ListTokensRequest) tokens.ListInput {
	return tokens.ListInput{UserID: req.GetUserId(), PageSize: pageSize(req.GetPageSize()), PageToken: req.GetPageToken(), Reverse: req.GetReverse(),
		ExpireBefore: timeFromProto(req.GetExpireBefore())}
}

func accessTokenToProto(x tokens.Exchanged) *pb.GetAccessTokenResponse {
	return &pb.GetAccessTokenResponse{AccessToken: x.AccessToken.JWT, ExpireTime: timeToProto(x.AccessToken.ExpireTime), TokenType: "Bearer", Scopes: x.Scopes}
}

func userToProto(u *domain.User) *pb.User {
	return &pb.User{
		Id:         u.ID,
		Username:   u.Username,
		Admin:      u.Admin,
		Machine:    u.IsMachine(),
		OwnerId:    u.OwnerID,
		CreateTime: timeToProto(u.CreateTime),
	}
}

func createUserInput(req *pb.CreateUserRequest) users.CreateInput {
	return users.CreateInput{Username: req.GetUsername(), Password: req.GetPassword(), Admin: req.GetAdmin(),
		Machine: req.GetMachine(), OwnerID: req.GetOwnerId()}
}

func listUsersInput(req *pb.ListUsersRequest) users.ListInput {
	return users.ListInput{Username: req.GetUsername(), PageSize: pageSize(req.GetPageSize()), PageToken: req.GetPageToken()}
}

func auditEventToProto(e *domain.AuditEvent) *pb.AuditEvent {
	out := &pb.AuditEvent{
		Seq:           e.Seq,
		Time:          timeToProto(e.Time),
		Action:        string(e.Action),
		Outcome:       string(e.Outcome),
		Actor:         &pb.AuditActor{Kind: e.Actor.Kind, UserId: e.Actor.UserID, Username: e.Actor.Username, OwnerId: e.Actor.OwnerID, TokenId: e.Actor.TokenID},
		ClientAddress: e.Origin.ClientAddress,
		UserAgent:     e.Origin.UserAgent,
		RequestId:     e.Origin.RequestID,
		TraceId:       e.Origin.TraceID,
		Details:       e.Details,
		ChainHash:     hex.EncodeToString(e.ChainHash),
	}
	if s := e.Subject; s != (domain.AuditParty{}) {
		out.Subject = &pb.AuditSubject{UserId: s.UserID, Username: s.Username, OwnerId: s.OwnerID, TokenId: s.TokenID}
	}
	return out
}

func listAuditEventsInput(req *pb.ListAuditEventsRequest) (audit.ListInput, error) {
	for field, ts := range map[string]*timestamppb.Timestamp{"start_time": req.GetStartTime(), "end_time": req.GetEndTime()} {
		if ts != nil {
			if err := ts.CheckValid(); err != nil {
				return audit.ListInput{}, domain.InvalidField(field, "is not a time from year 1 to 9999")
			}
		}
	}
	return audit.ListInput{ActorID: req.GetActorId(), SubjectUserID: req.GetSubjectUserId(), TokenID: req.GetTokenId(), Action: req.GetAction(),
		StartTime: timeFromProto(req.GetStartTime()), EndTime: timeFromProto(req.GetEndTime()), AfterSeq: req.GetAfterSeq(),
		PageSize: pageSize(req.GetPageSize()), PageToken: req.GetPageToken()}, nil
}

// pageSize converts a requested page size to an int that cannot overflow
// (a uint32 may not fit a 32-bit int); pagetoken.List clamps it further.
func pageSize(n uint32) int { return int(min(n, pagetoken.MaxPageSize)) }

// timeToProto maps the zero time (no expiry) to an unset timestamp.
func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// durationFromProto maps an unset duration to 0.
func durationFromProto(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func timeFromProto(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
