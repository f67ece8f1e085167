package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

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

// TestTheClientsDeadlineIsNoDatabaseOutage: a database read that failed
// because the client's own deadline passed (or it went away) is answered
// Canceled, not logged as an error, and not Unavailable, whose count drives
// the error alerts; with the client still waiting it is the outage it is.
func TestTheClientsDeadlineIsNoDatabaseOutage(t *testing.T) {
	unavailable := domain.Wrap(domain.KindUnavailable, context.DeadlineExceeded, "the database is unavailable: retry shortly")
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		ctx    context.Context
		code   codes.Code
		logged bool
	}{
		{gone, codes.Canceled, false},
		{context.Background(), codes.Unavailable, true},
	} {
		var logs bytes.Buffer
		st := status.Convert(toStatus(tc.ctx, slog.New(slog.NewJSONHandler(&logs, nil)), "/m", unavailable))
		if st.Code() != tc.code || (logs.Len() > 0) != tc.logged {
			t.Errorf("client gone %v: %v, logged %v; want %v, logged %v", tc.ctx.Err() != nil, st.Code(), logs.Len() > 0, tc.code, tc.logged)
		}
	}
}

// Every UNAVAILABLE answer says when to retry, in a google.rpc.RetryInfo
// (and a retry-after header, which the gateway sends as Retry-After on the
// 503: the REST harness checks every 503 for it): one that names no time
// of its own, a database that dropped or a cluster node that failed over,
// says a second.
func TestUnavailableSaysWhenToRetry(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want time.Duration
	}{
		{domain.Wrap(domain.KindUnavailable, io.ErrUnexpectedEOF, "the database is unavailable: retry shortly"), time.Second},
		{&domain.Error{Kind: domain.KindUnavailable, Message: "busy", RetryAfter: 7 * time.Second}, 7 * time.Second},
		{domain.Errorf(domain.KindNotFound, "token not found"), 0},
	} {
		var got time.Duration
		for _, d := range status.Convert(toStatus(context.Background(), slog.New(slog.DiscardHandler), "/m", tc.err)).Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				got = ri.GetRetryDelay().AsDuration()
			}
		}
		if got != tc.want {
			t.Errorf("%v: RetryInfo %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestUnauthenticatedIsBuiltOnce checks that the status made once for
// every refused credential is the one toStatus would build for it, details
// included, and that toStatus hands out that one.
func TestUnauthenticatedIsBuiltOnce(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	built := status.Convert(newStatus(ctx, logger, "/m", domain.ErrUnauthenticated)).Proto()
	if diff := cmp.Diff(built, status.Convert(unauthenticated).Proto(), protocmp.Transform()); diff != "" {
		t.Errorf("the prebuilt status differs (-built +prebuilt):\n%s", diff)
	}
	if len(built.GetDetails()) == 0 {
		t.Error("no ErrorInfo in the status of a refused credential")
	}
	if err := toStatus(ctx, logger, "/m", domain.ErrUnauthenticated); err != unauthenticated {
		t.Errorf("toStatus built %v anew", err)
	}
}
