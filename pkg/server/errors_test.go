package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

func TestToStatus(t *testing.T) {
	driverErr := errors.New("Error 1064: You have an error in your SQL syntax near 'SELECT secret_hash'")
	cases := []struct {
		err     error
		code    codes.Code
		message string
		logged  bool
	}{
		{domain.Errorf(domain.KindInvalid, "note too long"), codes.InvalidArgument, "note too long", false},
		{domain.ErrUnauthenticated, codes.Unauthenticated, "invalid or missing credentials", false},
		{domain.Errorf(domain.KindPermissionDenied, "no"), codes.PermissionDenied, "no", false},
		{domain.Errorf(domain.KindNotFound, "token not found"), codes.NotFound, "token not found", false},
		{domain.Wrap(domain.KindConflict, driverErr, "user already exists"), codes.AlreadyExists, "user already exists", false},
		{domain.Wrap(domain.KindUnavailable, driverErr, "database unavailable"), codes.Unavailable, "database unavailable", true},
		{domain.Wrap(domain.KindResourceExhausted, nil, "slow down"), codes.ResourceExhausted, "slow down", false},
		{domain.Wrap(domain.KindInternal, driverErr, "database error"), codes.Internal, "internal error", true},
		{driverErr, codes.Internal, "internal error", true},
		{status.Error(codes.InvalidArgument, "validation error: x"), codes.InvalidArgument, "validation error: x", false},
	}
	for _, tc := range cases {
		var logs bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&logs, nil))
		ctx := context.WithValue(context.Background(), requestIDKey{}, "req-123")
		st := status.Convert(toStatus(ctx, logger, "/m", tc.err))
		if st.Code() != tc.code || st.Message() != tc.message {
			t.Errorf("%v: got %v %q, want %v %q", tc.err, st.Code(), st.Message(), tc.code, tc.message)
		}
		if strings.Contains(st.Message(), "SQL") {
			t.Errorf("%v: the client sees the driver's words: %q", tc.err, st.Message())
		}
		if got := strings.Contains(logs.String(), `"request_id":"req-123"`) && strings.Contains(logs.String(), "SQL syntax"); got != tc.logged {
			t.Errorf("%v: logged with request id and detail = %v, want %v: %s", tc.err, got, tc.logged, logs.String())
		}
	}
}
