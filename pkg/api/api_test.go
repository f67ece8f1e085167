package api

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/tokens"

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

func TestGateAnswersUnavailableUntilOpen(t *testing.T) {
	ctx := context.Background()
	g := &Gate{}
	calls := map[string]func() error{
		"auth":           func() error { _, err := g.AuthFuncOverride(ctx, pb.TokenService_GetToken_FullMethodName); return err },
		"CreateToken":    func() error { _, err := g.CreateToken(ctx, &pb.CreateTokenRequest{}); return err },
		"GetToken":       func() error { _, err := g.GetToken(ctx, &pb.GetTokenRequest{}); return err },
		"ListTokens":     func() error { _, err := g.ListTokens(ctx, &pb.ListTokensRequest{}); return err },
		"DeleteToken":    func() error { _, err := g.DeleteToken(ctx, &pb.DeleteTokenRequest{}); return err },
		"GetAccessToken": func() error { _, err := g.GetAccessToken(ctx, &pb.GetAccessTokenRequest{}); return err },
	}
	for name, call := range calls {
		if err := call(); domain.KindOf(err) != domain.KindUnavailable {
			t.Errorf("%s before Open: %v, want UNAVAILABLE", name, err)
		}
	}
	g.Open(New(tokens.New(tokens.Config{}, nil, nil, nil, nil, nil, nil, time.Now, nil)))
	if !g.IsOpen() {
		t.Fatal("not open after Open")
	}
	// Forwarded: an unknown method is refused by the Server's policy, and a
	// malformed API token before any store is touched (there is none).
	if _, err := g.AuthFuncOverride(ctx, "/no.Such/Method"); err != domain.ErrUnauthenticated {
		t.Errorf("auth of an unknown method after Open: %v", err)
	}
	if _, err := g.GetAccessToken(ctx, &pb.GetAccessTokenRequest{Token: "tks_nope"}); domain.KindOf(err) != domain.KindUnauthenticated {
		t.Errorf("GetAccessToken after Open: %v, want UNAUTHENTICATED from the service", err)
	}
}
