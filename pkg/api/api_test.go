package api

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

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
