package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// slowService holds each GetToken until release is closed, counting how
// many run at once.
type slowService struct {
	pb.UnimplementedTokenServiceServer
	release       chan struct{}
	running, peak atomic.Int64
}

func (s *slowService) GetToken(ctx context.Context, _ *pb.GetTokenRequest) (*pb.GetTokenResponse, error) {
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	<-s.release
	return &pb.GetTokenResponse{}, nil
}

// testDeps serves impl as TokenService.
func testDeps(impl any) Deps {
	return Deps{
		Logger: slog.New(slog.DiscardHandler),
		Services: []Service{{Desc: &pb.TokenService_ServiceDesc, Impl: impl, Authenticate: NoAuthentication,
			RegisterGateway: Gateway(pb.RegisterTokenServiceHandlerClient, pb.NewTokenServiceClient)}},
		Started: func() bool { return true },
		Ready:   func(context.Context) error { return nil },
		JWKS:    func() []byte { return []byte("{}") },
	}
}

var testConfig = Config{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Issuer: "http://limits.test", ShutdownTimeout: time.Second}

// startLimited serves impl with limits and returns the server, stopped at the
// end of the test.
func startLimited(t *testing.T, impl pb.TokenServiceServer, limits Limits) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := testConfig
	cfg.Limits = limits
	srv, err := New(ctx, cfg, testDeps(impl))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return srv
}

// closedWithin reports whether the server closes conn within d, reading and
// discarding whatever it sends first.
func closedWithin(conn net.Conn, d time.Duration) bool {
	conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func TestHTTPTimeoutsCloseSlowAndIdleConnections(t *testing.T) {
	srv := startLimited(t, &pb.UnimplementedTokenServiceServer{}, Limits{
		ReadHeaderTimeout: 100 * time.Millisecond,
		ReadTimeout:       1500 * time.Millisecond,
		IdleTimeout:       100 * time.Millisecond,
	})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", srv.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// Headers that never end (slowloris).
	c := dial()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	if !closedWithin(c, time.Second) { // before the read timeout
		t.Error("a connection sending its headers slowly was kept past the read-header timeout")
	}

	// A body that never arrives in full.
	c = dial()
	io.WriteString(c, "POST /v1alpha1/access-tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"tok")
	if !closedWithin(c, 3*time.Second) {
		t.Error("a connection sending its body slowly was kept past the read timeout")
	}

	// An idle keep-alive connection.
	c = dial()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		t.Fatalf("GET /healthz: %q, %v", line, err)
	}
	if !closedWithin(c, time.Second) { // before the read timeout, which also bounds idling if unset
		t.Error("an idle keep-alive connection was kept past the idle timeout")
	}

	// Control: a connection within its limits is not closed early. (Well
	// within: the read-header timeout of 100ms runs from the accept, a
	// little before this deadline's start.)
	c = dial()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	if closedWithin(c, 30*time.Millisecond) {
		t.Error("the control connection was closed before any timeout")
	}
}

func TestGRPCLimits(t *testing.T) {
	impl := &slowService{release: make(chan struct{})}
	srv := startLimited(t, impl, Limits{MaxConcurrentStreams: 2, MaxRecvMsgBytes: 1024})
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewTokenServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err = client.GetToken(ctx, &pb.GetTokenRequest{TokenId: strings.Repeat("x", 2048)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a 2 KiB request with a 1 KiB limit: %v, want RESOURCE_EXHAUSTED", err)
	}

	// Five calls on one connection that allows two streams: two run, the
	// rest wait for a stream.
	errs := make(chan error, 5)
	for range 5 {
		go func() {
			_, err := client.GetToken(ctx, &pb.GetTokenRequest{TokenId: "tokAAAAAAAAAAAAA"})
			errs <- err
		}()
	}
	time.Sleep(500 * time.Millisecond)
	if got := impl.running.Load(); got != 2 {
		t.Errorf("%d calls running at once on one connection, want the stream limit, 2", got)
	}
	close(impl.release)
	for range 5 {
		if err := <-errs; err != nil {
			t.Errorf("a queued call failed: %v", err)
		}
	}
	if peak := impl.peak.Load(); peak > 2 {
		t.Errorf("peak of %d calls at once, over the stream limit of 2", peak)
	}
}

// A service that does not say how its calls are authenticated is refused:
// it would be open to anyone.
func TestEveryServiceSaysHowItAuthenticates(t *testing.T) {
	deps := testDeps(&pb.UnimplementedTokenServiceServer{})
	deps.Services[0].Authenticate = nil
	if _, err := New(context.Background(), testConfig, deps); err == nil || !strings.Contains(err.Error(), "Authenticate") {
		t.Errorf("New with a service without Authenticate: %v, want refused", err)
	}
}

// A unary call reaches its handler only through its service's
// Authenticate; of the services without one, only health is open.
func TestAuthenticationFailsClosed(t *testing.T) {
	refused := errors.New("refused")
	authn := authentication(map[string]func(context.Context, string) (context.Context, error){
		"p.Mapped": func(ctx context.Context, method string) (context.Context, error) {
			if method == "/p.Mapped/Refused" {
				return nil, refused
			}
			return ctx, nil
		},
	})
	handler := func(context.Context, any) (any, error) { return "reached", nil }
	for method, want := range map[string]error{
		"/p.Mapped/Allowed":                nil,
		"/p.Mapped/Refused":                refused,
		"/grpc.health.v1.Health/Check":     nil,
		"/p.Unmapped/Get":                  domain.ErrUnauthenticated,
		"/grpc.health.v1.Health.Other/Get": domain.ErrUnauthenticated,
	} {
		got, err := authn(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: method}, handler)
		if err != want || (err == nil && got != "reached") {
			t.Errorf("%s: %v, %v; want %v", method, got, err, want)
		}
	}
}
