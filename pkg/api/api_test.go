package api

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

func TestTokenToProto(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	for name, tc := range map[string]struct {
		in   domain.Token
		want *pb.Token
	}{
		"never used, no expiry": {
			in:   domain.Token{ID: "i", UserID: "u", Note: "n", CreateTime: at, SecretHash: []byte("never out")},
			want: &pb.Token{Id: "i", UserId: "u", Note: "n", CreateTime: timestamppb.New(at)},
		},
		"used, expiring": {
			in:   domain.Token{ID: "i", UserID: "u", CreateTime: at, ExpireTime: at.Add(time.Hour), LastUsedTime: at.Add(time.Minute)},
			want: &pb.Token{Id: "i", UserId: "u", CreateTime: timestamppb.New(at), ExpireTime: timestamppb.New(at.Add(time.Hour)), LastUsedTime: timestamppb.New(at.Add(time.Minute))},
		},
	} {
		if got := tokenToProto(&tc.in); !proto.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
}

func TestAuditEventToProto(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	actor := domain.AuditParty{Kind: domain.ActorUser, UserID: "u", Username: "bot", OwnerID: "o", TokenID: "t"}
	for name, tc := range map[string]struct {
		in   domain.AuditEvent
		want *pb.AuditEvent
	}{
		"every field": {
			in: domain.AuditEvent{Seq: 7, Time: at, Action: domain.ActionTokenDelete, Outcome: domain.OutcomeSuccess, Actor: actor,
				Subject: domain.AuditParty{UserID: "s", Username: "alice", OwnerID: "so", TokenID: "st"},
				Origin:  domain.Origin{ClientAddress: "192.0.2.1", UserAgent: "curl/8", RequestID: "r", TraceID: "tr"},
				Details: map[string]string{"cause": "user.delete"}, ChainHash: []byte{0xab, 0x01}},
			want: &pb.AuditEvent{Seq: 7, Time: timestamppb.New(at), Action: "token.delete", Outcome: "success",
				Actor:         &pb.AuditActor{Kind: "user", UserId: "u", Username: "bot", OwnerId: "o", TokenId: "t"},
				Subject:       &pb.AuditSubject{UserId: "s", Username: "alice", OwnerId: "so", TokenId: "st"},
				ClientAddress: "192.0.2.1", UserAgent: "curl/8", RequestId: "r", TraceId: "tr",
				Details: map[string]string{"cause": "user.delete"}, ChainHash: "ab01"},
		},
		"no subject: none is sent": {
			in: domain.AuditEvent{Seq: 1, Time: at, Action: domain.ActionKeysReseal, Outcome: domain.OutcomeSuccess, Actor: domain.AuditParty{Kind: domain.ActorOperator}},
			want: &pb.AuditEvent{Seq: 1, Time: timestamppb.New(at), Action: "keys.reseal", Outcome: "success",
				Actor: &pb.AuditActor{Kind: "operator"}},
		},
	} {
		if got := auditEventToProto(&tc.in); !proto.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
}

func TestListAuditEventsInput(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	got, err := listAuditEventsInput(&pb.ListAuditEventsRequest{PageSize: 1 << 31, PageToken: "p", ActorId: "a", SubjectUserId: "s", TokenId: "t",
		Action: "token.create", StartTime: timestamppb.New(at), EndTime: timestamppb.New(at.Add(time.Hour)), AfterSeq: 9})
	if err != nil {
		t.Fatal(err)
	}
	want := audit.ListInput{PageSize: 250, PageToken: "p", ActorID: "a", SubjectUserID: "s", TokenID: "t", Action: "token.create",
		StartTime: at, EndTime: at.Add(time.Hour), AfterSeq: 9}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got, _ := listAuditEventsInput(&pb.ListAuditEventsRequest{}); !got.StartTime.IsZero() || !got.EndTime.IsZero() {
		t.Errorf("unset times: %v, %v, want zero (no bound)", got.StartTime, got.EndTime)
	}
	// A timestamp out of its range is a 400 naming its field (attacker
	// probe: seconds past year 9999, negative nanos, answered 200).
	for field, req := range map[string]*pb.ListAuditEventsRequest{
		"start_time": {StartTime: &timestamppb.Timestamp{Seconds: 999999999999999}},
		"end_time":   {EndTime: &timestamppb.Timestamp{Nanos: -5}},
	} {
		_, err := listAuditEventsInput(req)
		if domain.KindOf(err) != domain.KindInvalid || !strings.Contains(err.Error(), field) {
			t.Errorf("%s out of range: %v, want invalid naming it", field, err)
		}
	}
}
