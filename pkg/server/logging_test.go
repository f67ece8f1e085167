package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tokenservice/tokenservice/pkg/calllog"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// TestLogCalls checks the line each call leaves: written at the level its
// code gets (info for success and the client's mistakes, warn for refusals
// and limits, error for the server's faults), dropped below the logger's
// level, with the fields log pipelines read.
func TestLogCalls(t *testing.T) {
	cases := []struct {
		err       error
		minLevel  slog.Level
		wantLevel string // "": no line
	}{
		{nil, slog.LevelInfo, "INFO"},
		{nil, slog.LevelWarn, ""},
		{status.Error(codes.Unauthenticated, "invalid or missing credentials"), slog.LevelInfo, "INFO"},
		{status.Error(codes.Unauthenticated, "invalid or missing credentials"), slog.LevelWarn, ""},
		{status.Error(codes.PermissionDenied, "no"), slog.LevelWarn, "WARN"},
		{status.Error(codes.ResourceExhausted, "slow down"), slog.LevelWarn, "WARN"},
		{status.Error(codes.Internal, "internal error"), slog.LevelWarn, "ERROR"},
		{status.Error(codes.Internal, "internal error"), slog.LevelError, "ERROR"},
		{status.Error(codes.PermissionDenied, "no"), slog.LevelError, ""},
	}
	for _, tc := range cases {
		var logs bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: tc.minLevel}))
		ctx := context.WithValue(context.Background(), requestIDKey{}, "req-123")
		ctx = peer.NewContext(ctx, inprocPeer)
		// A REST call: the client's own header, then the gateway's entry.
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("x-forwarded-for", "198.51.100.7, 203.0.113.9"))
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		info := &grpc.UnaryServerInfo{FullMethod: "/pkg.Service/Method"}
		_, err := logCalls(logger)(ctx, "req", info, func(context.Context, any) (any, error) { return "resp", tc.err })
		cancel()
		if err != tc.err {
			t.Errorf("%v: the call's error became %v", tc.err, err)
		}
		if tc.wantLevel == "" {
			if logs.Len() > 0 {
				t.Errorf("%v at level %v: logged %s", tc.err, tc.minLevel, logs.String())
			}
			continue
		}
		var line map[string]any
		if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
			t.Fatalf("%v at level %v: %q is not one JSON line: %v", tc.err, tc.minLevel, logs.String(), err)
		}
		want := map[string]any{
			"level": tc.wantLevel, "msg": "finished call", "request_id": "req-123",
			"protocol": "grpc", "grpc.component": "server", "grpc.service": "pkg.Service", "grpc.method": "Method",
			"grpc.method_type": "unary", "peer.address": "203.0.113.9", "client.address": "203.0.113.9", "grpc.code": status.Code(tc.err).String(),
		}
		if tc.err != nil {
			want["grpc.error"] = tc.err.Error()
		}
		for k, v := range want {
			if line[k] != v {
				t.Errorf("%v at level %v: %s = %v, want %v", tc.err, tc.minLevel, k, line[k], v)
			}
		}
		for _, k := range []string{"grpc.start_time", "grpc.request.deadline", "grpc.time_ms"} {
			if _, ok := line[k].(string); !ok {
				t.Errorf("%v at level %v: no %s in %v", tc.err, tc.minLevel, k, line)
			}
		}
		if _, ok := line["grpc.error"]; ok && tc.err == nil {
			t.Errorf("a successful call logged grpc.error: %v", line)
		}
	}
}

// TestLogCallsNamesTheUsernameTried checks that a password attempt's line
// names the username its handler says it tried, and never the password;
// a call without a password names none.
func TestLogCallsNamesTheUsernameTried(t *testing.T) {
	cases := []struct {
		req  any
		want string // user.name; "": none
	}{
		{&pb.CreateTokenRequest{Username: "mallory", Password: "hunter2hunter2"}, "mallory"},
		{&pb.ChangePasswordRequest{UserId: "me", OldPassword: "hunter2hunter2", NewPassword: "another one"}, "mallory"},
		{&pb.CreateTokenRequest{Note: "with a bearer"}, ""},
	}
	for _, tc := range cases {
		var logs bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&logs, nil))
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4242}})
		info := &grpc.UnaryServerInfo{FullMethod: "/pkg.Service/Method"}
		_, _ = logCalls(logger)(ctx, tc.req, info, func(ctx context.Context, _ any) (any, error) {
			calllog.SetUsername(ctx, "mallory")
			return nil, status.Error(codes.Unauthenticated, "invalid or missing credentials")
		})
		var line map[string]any
		if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
			t.Fatalf("%T: %q is not one JSON line: %v", tc.req, logs.String(), err)
		}
		if got, _ := line["user.name"].(string); got != tc.want {
			t.Errorf("%T: user.name %q, want %q", tc.req, got, tc.want)
		}
		if line["peer.address"] != "192.0.2.1:4242" || line["client.address"] != "192.0.2.1" {
			t.Errorf("%T: peer.address %v, client.address %v; want 192.0.2.1:4242 and 192.0.2.1", tc.req, line["peer.address"], line["client.address"])
		}
		if strings.Contains(logs.String(), "hunter2") {
			t.Errorf("%T: the line has the password: %s", tc.req, logs.String())
		}
	}
}

// BenchmarkLogCalls measures what logging costs a successful call at the
// level the benchmarks and quiet deployments run (warn: the line is
// dropped) and at info (the line is written, to io.Discard here).
func BenchmarkLogCalls(b *testing.B) {
	for _, level := range []slog.Level{slog.LevelWarn, slog.LevelInfo} {
		b.Run(level.String(), func(b *testing.B) {
			logger := slog.New(slog.NewJSONHandler(discard{}, &slog.HandlerOptions{Level: level}))
			ctx := peer.NewContext(context.WithValue(context.Background(), requestIDKey{}, "req-123"), inprocPeer)
			info := &grpc.UnaryServerInfo{FullMethod: "/pkg.Service/Method"}
			handler := func(context.Context, any) (any, error) { return "resp", nil }
			interceptor := logCalls(logger)
			b.ReportAllocs()
			for b.Loop() {
				_, _ = interceptor(ctx, "req", info, handler)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestValidRequestID(t *testing.T) {
	for id, want := range map[string]bool{
		"abc": true, "A-b_c.9": true, "0123456789012345678901234567890123456789012345678901234567890123": true,
		"": false, "01234567890123456789012345678901234567890123456789012345678901234": false,
		"a b": false, "a\nb": false, `a"b`: false, "é": false, "a/b": false, "a\x00": false,
	} {
		if got := validRequestID(id); got != want {
			t.Errorf("validRequestID(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestLogCallsWritesTheLibrarysLine checks logCalls against the
// go-grpc-middleware interceptor it replaced, configured as it was: the
// same keys and values (but the times, and client.address, which is ours),
// the same level, for success and for each kind of failure.
func TestLogCallsWritesTheLibrarysLine(t *testing.T) {
	lineOf := func(interceptor func(*slog.Logger) grpc.UnaryServerInterceptor, err error) map[string]any {
		t.Helper()
		var logs bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		ctx := peer.NewContext(context.WithValue(context.Background(), requestIDKey{}, "req-123"),
			&peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4242}})
		ctx, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		info := &grpc.UnaryServerInfo{FullMethod: "/priv.tokenservice.v1alpha1.TokenService/GetToken"}
		_, _ = interceptor(logger)(ctx, "req", info, func(context.Context, any) (any, error) { return "resp", err })
		var line map[string]any
		if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
			t.Fatalf("%q: %v", logs.String(), err)
		}
		delete(line, "time")
		delete(line, "grpc.time_ms")
		delete(line, "grpc.start_time") // whole seconds: equal but for a tick
		if _, ok := line["grpc.request.deadline"]; ok {
			line["grpc.request.deadline"] = "(whole seconds: equal but for a tick)" // present in both is what is compared
		}
		return line
	}
	library := func(l *slog.Logger) grpc.UnaryServerInterceptor {
		return logging.UnaryServerInterceptor(
			logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
				l.Log(ctx, slog.Level(lvl), msg, fields...)
			}),
			logging.WithLogOnEvents(logging.FinishCall),
			logging.WithFieldsFromContext(func(ctx context.Context) logging.Fields {
				return logging.Fields{"request_id", requestIDFrom(ctx)}
			}))
	}
	for _, err := range []error{nil, status.Error(codes.Unauthenticated, "invalid or missing credentials"),
		status.Error(codes.PermissionDenied, "no"), status.Error(codes.Internal, "internal error")} {
		want, got := lineOf(library, err), lineOf(logCalls, err)
		if got["client.address"] != "192.0.2.1" {
			t.Errorf("%v: client.address %v, want 192.0.2.1", err, got["client.address"])
		}
		delete(got, "client.address")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%v: the line differs from go-grpc-middleware's (-library +ours):\n%s", err, diff)
		}
	}
}
