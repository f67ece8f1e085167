package verifier_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenservice/tokenservice/pkg/verifier"
)

// subjects records the subject each call's handler found in its context.
type subjects struct {
	mu  sync.Mutex
	got []string
}

func (s *subjects) record(ctx context.Context) {
	subject := "<none>"
	if c, ok := verifier.ClaimsFromContext(ctx); ok {
		subject = c.Subject
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, subject)
}

func (s *subjects) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *subjects) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		return ""
	}
	return s.got[len(s.got)-1]
}

// startHealthServer serves the gRPC health service behind v's
// interceptors (with opts), and returns a client of it and what its
// handlers saw.
func startHealthServer(t *testing.T, v *verifier.Verifier, opts ...verifier.Option) (healthpb.HealthClient, *subjects) {
	t.Helper()
	seen := &subjects{}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(v.UnaryServerInterceptor(opts...), func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			seen.record(ctx)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(v.StreamServerInterceptor(opts...), func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			seen.record(ss.Context())
			return h(srv, ss)
		}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn), seen
}

func TestInterceptors(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a)
	client, seen := startHealthServer(t, ti.newVerifier(t, verifier.Config{}))
	valid := ti.token(t, a, nil)
	for _, c := range []struct {
		name     string
		md       []string
		wantCode codes.Code
	}{
		{"valid", []string{"authorization", "Bearer " + valid}, codes.OK},
		{"scheme in lower case", []string{"authorization", "bearer " + valid}, codes.OK},
		{"no metadata", nil, codes.Unauthenticated},
		{"another scheme", []string{"authorization", "Basic dXNlcjpwYXNz"}, codes.Unauthenticated},
		{"garbage", []string{"authorization", "Bearer garbage"}, codes.Unauthenticated},
		{"signed by another key", []string{"authorization", "Bearer " + ti.token(t, newTestKey(t), nil)}, codes.Unauthenticated},
		{"two tokens", []string{"authorization", "Bearer " + valid, "authorization", "Bearer " + valid}, codes.Unauthenticated},
	} {
		ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), c.md...))
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		checkCall(t, c.name+", unary", err, c.wantCode, seen)

		stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		checkCall(t, c.name+", stream", err, c.wantCode, seen)
		cancel()
	}
}

// checkCall checks a call's outcome and, if it was served, that its handler
// found the token's claims in its context.
func checkCall(t *testing.T, name string, err error, wantCode codes.Code, seen *subjects) {
	t.Helper()
	if got := status.Code(err); got != wantCode {
		t.Errorf("%s: %v, want %v", name, err, wantCode)
		return
	}
	switch msg := status.Convert(err).Message(); {
	case wantCode == codes.OK && seen.last() != "user1":
		t.Errorf("%s: the handler's context had subject %q, want user1", name, seen.last())
	case wantCode != codes.OK && msg != "invalid access token" && msg != "a bearer token is required":
		t.Errorf("%s: message %q says more than that the token was refused", name, msg)
	}
}

// RequireScopes on the interceptors: a token without the scope fails with
// PermissionDenied naming it, unary and streaming.
func TestInterceptorsRequireScopes(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a)
	v := ti.newVerifier(t, verifier.Config{})
	client, seen := startHealthServer(t, v, verifier.RequireScopes("health:read"))

	for _, c := range []struct {
		name     string
		token    string
		wantCode codes.Code
	}{
		{"the scope", ti.token(t, a, map[string]any{"scope": "other health:read"}), codes.OK},
		{"another scope", ti.token(t, a, map[string]any{"scope": "health:write"}), codes.PermissionDenied},
		{"no scope claim", ti.token(t, a, nil), codes.PermissionDenied},
		{"an invalid token", "garbage", codes.Unauthenticated},
	} {
		ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+c.token))
		before := seen.count()
		_, unaryErr := client.Check(ctx, &healthpb.HealthCheckRequest{})
		var streamErr error
		stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		streamErr = err
		cancel()
		for kind, err := range map[string]error{"unary": unaryErr, "stream": streamErr} {
			if got := status.Code(err); got != c.wantCode {
				t.Errorf("%s, %s: %v, want %v", c.name, kind, err, c.wantCode)
			}
			if c.wantCode == codes.PermissionDenied && !strings.Contains(status.Convert(err).Message(), "health:read") {
				t.Errorf("%s, %s: message %q does not name the scope required", c.name, kind, status.Convert(err).Message())
			}
		}
		served := seen.count() - before
		if want := map[bool]int{true: 2, false: 0}[c.wantCode == codes.OK]; served != want {
			t.Errorf("%s: %d calls reached the handler, want %d", c.name, served, want)
		}
	}
}
