package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// errorDetails returns an error's BadRequest fields and ErrorInfo reason.
func errorDetails(err error) (fields []string, reason string) {
	for _, d := range status.Convert(err).Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		}
	}
	return fields, reason
}

// Errors carry machine-readable details on both transports: the fields at
// fault as the client spells them (proto names over gRPC, JSON names over
// REST), in the message and in a google.rpc.BadRequest, and a reason a client
// may branch on in a google.rpc.ErrorInfo.
func TestErrorsNameTheFieldAndTheReason(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		a := rpc{t, c}
		p := c.name + "-"
		s.mustUser(t, p+"admin", "admin")
		tok := a.login(p + "admin")
		// name picks the spelling of the transport: proto over gRPC, JSON over REST.
		name := func(proto, json string) string {
			if c.name == "rest" {
				return json
			}
			return proto
		}
		_, errPast := a.create(tok, &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(-time.Hour))})
		_, errNote := a.create(tok, &pb.CreateTokenRequest{Note: strings.Repeat("n", 257)})
		_, errPage := a.list(tok, &pb.ListTokensRequest{PageToken: "forged"})
		_, errOld := a.users().ChangePassword(as(tok), &pb.ChangePasswordRequest{UserId: "me", NewPassword: "a new password"})
		_, errPw := a.users().CreateUser(as(tok), &pb.CreateUserRequest{Username: p + "x", Password: "short"})
		_, errOwner := a.users().CreateUser(as(tok), &pb.CreateUserRequest{Username: p + "y", OwnerId: "someone"})
		_, errCreds := a.list("tks_not_a_token", &pb.ListTokensRequest{})
		a.mustCreateUser(tok, &pb.CreateUserRequest{Username: p + "z", Machine: true})
		_, errTaken := a.users().CreateUser(as(tok), &pb.CreateUserRequest{Username: p + "Z", Machine: true})

		for _, tc := range []struct {
			what   string
			err    error
			code   codes.Code
			field  string
			reason string
		}{
			{"an expiry in the past", errPast, codes.InvalidArgument, name("expire_time", "expireTime"), ""},
			{"a note too long (a proto rule)", errNote, codes.InvalidArgument, "note", ""},
			{"a forged page token", errPage, codes.InvalidArgument, name("page_token", "pageToken"), ""},
			{"no old password", errOld, codes.InvalidArgument, name("old_password", "oldPassword"), ""},
			{"a short new user's password", errPw, codes.InvalidArgument, "password", ""},
			{"an owner for a human user", errOwner, codes.InvalidArgument, name("owner_id", "ownerId"), ""},
			{"a bad bearer", errCreds, codes.Unauthenticated, "", "INVALID_CREDENTIALS"},
			{"a taken username", errTaken, codes.AlreadyExists, "", "USERNAME_TAKEN"},
		} {
			fields, reason := errorDetails(tc.err)
			switch {
			case status.Code(tc.err) != tc.code:
				t.Errorf("%s: %s, want %v", tc.what, describe(tc.err), tc.code)
			case tc.field != "" && (len(fields) != 1 || fields[0] != tc.field || !strings.HasPrefix(status.Convert(tc.err).Message(), tc.field+": ")):
				t.Errorf("%s: BadRequest fields %v and message %q, want %q named", tc.what, fields, status.Convert(tc.err).Message(), tc.field)
			case reason != tc.reason:
				t.Errorf("%s: reason %q, want %q", tc.what, reason, tc.reason)
			}
		}
	})
}

// A credential sent without the Bearer scheme gets the one unauthenticated
// answer plus how to send a token, over gRPC as over REST (TestHostileRESTInput).
func TestAMissingBearerSchemeSaysHowToSendATokenOverGRPC(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "ivan", "human")
	tok := rpc{t, s.grpcCaller()}.login("ivan")
	for name, value := range map[string]string{"no scheme": tok, "another scheme": "Basic YTpi"} {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", value)
		_, err := pb.NewTokenServiceClient(s.grpcConn).ListTokens(ctx, &pb.ListTokensRequest{})
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), `send the token as "Authorization: Bearer <token>"`) {
			t.Errorf("%s: %s, want UNAUTHENTICATED saying how to send a token", name, describe(err))
		}
	}
	// A bearer that is merely wrong gets no such hint: nothing about tokens.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer nonsense")
	_, err := pb.NewTokenServiceClient(s.grpcConn).ListTokens(ctx, &pb.ListTokensRequest{})
	if status.Convert(err).Message() != "invalid or missing credentials" {
		t.Errorf("a wrong bearer: %s", describe(err))
	}
}
