package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// Password attempts are limited per username and per client address: past
// the limit RESOURCE_EXHAUSTED, HTTP 429 with Retry-After.
func TestPasswordAttemptsAreLimited(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"),
		"TOKENSERVICE_LOGIN_ATTEMPTS_PER_USER_AND_ADDRESS", "3", "TOKENSERVICE_LOGIN_ATTEMPTS_PER_ADDRESS", "8")
	s.mustUser(t, "judy", "human")
	s.mustUser(t, "kim", "human")

	// REST: three attempts for judy, then 429 with Retry-After, even with the
	// right password and whatever X-Forwarded-For the client makes up.
	for i := range 4 {
		pw := "wrong password"
		if i == 3 {
			pw = password
		}
		req, _ := http.NewRequest("POST", s.httpURL+"/v1alpha1/tokens",
			strings.NewReader(fmt.Sprintf(`{"username": "judy", "password": %q}`, pw)))
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusUnauthorized
		if i == 3 {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Fatalf("REST attempt %d: HTTP %d, want %d", i+1, resp.StatusCode, want)
		}
		if i == 3 {
			if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 20 {
				t.Errorf("Retry-After %q, want the seconds until the next attempt (20 at 3 a minute)", resp.Header.Get("Retry-After"))
			}
		}
	}

	// gRPC: judy is limited there too (the same service), with retry-after
	// metadata; kim still gets in from this address.
	a := rpc{t, s.grpcCaller()}
	var header metadata.MD
	err := s.grpcConn.Invoke(context.Background(), "/priv.tokenservice.v1alpha1.TokenService/CreateToken",
		&pb.CreateTokenRequest{Username: "judy", Password: password}, &pb.CreateTokenResponse{}, grpc.Header(&header))
	wantCode(t, "gRPC attempt past judy's limit", err, codes.ResourceExhausted)
	if len(header.Get("retry-after")) != 1 {
		t.Errorf("gRPC refusal without retry-after metadata: %v", header)
	}
	a.login("kim")

	// Per address: 8 attempts a minute from 127.0.0.1 in all (4 REST + 2
	// gRPC so far), whatever the username.
	a.login("kim")
	a.login("kim")
	_, err = a.create("", &pb.CreateTokenRequest{Username: "kim", Password: password})
	wantCode(t, "the 9th attempt from one address", err, codes.ResourceExhausted)
	if st := status.Convert(err); !strings.Contains(st.Message(), "too many") {
		t.Errorf("message %q does not say what is wrong", st.Message())
	}
}

// fromAddress returns a gRPC connection and an HTTP client whose connections
// come from ip (any of 127.0.0.0/8 reaches the loopback listeners), so a
// test can be two clients at two addresses.
func fromAddress(t *testing.T, s *service, ip string) (*grpc.ClientConn, *http.Client) {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", addr) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	t.Cleanup(client.CloseIdleConnections)
	return conn, client
}

// Someone who knows a username and floods it with wrong passwords from many
// addresses gets few guesses checked and cannot lock its owner out: the
// tight limits are per address; the per-username budget counts wrong
// passwords only, and once it is spent, an address the owner logged in from
// still gets through while new ones do not.
func TestOwnerGetsInDuringAPasswordFlood(t *testing.T) {
	// The default limits, but a per-username budget that refills slowly (one
	// every 6 s, not every 0.6 s), so that none comes back while the test runs.
	s := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_LOGIN_ATTEMPTS_PER_USER", "10")
	s.mustUser(t, "alice", "human")
	ownerConn, owner := fromAddress(t, s, "127.0.0.2")
	login := func(client *http.Client, pw string) int {
		resp, err := client.Post(s.httpURL+"/v1alpha1/tokens", "application/json",
			strings.NewReader(fmt.Sprintf(`{"username": "alice", "password": %q}`, pw)))
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := login(owner, password); code != http.StatusOK { // alice's usual address
		t.Fatalf("alice's first login: HTTP %d", code)
	}

	// 300 wrong passwords, 15 from each of 20 addresses, all at once.
	var wg sync.WaitGroup
	var checked, refused, other atomic.Int64
	for i := range 20 {
		_, attacker := fromAddress(t, s, fmt.Sprintf("127.0.1.%d", i+1))
		for range 15 {
			wg.Go(func() {
				switch login(attacker, "not her password") {
				case http.StatusUnauthorized:
					checked.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
				default:
					other.Add(1)
				}
			})
		}
	}
	wg.Wait()
	t.Logf("the flood: %d wrong passwords checked, %d refused for the limits, %d other", checked.Load(), refused.Load(), other.Load())
	if checked.Load() > 10 || other.Load() > 0 {
		t.Errorf("%d of the flood's passwords were checked (the budget is 10 a minute), %d failed otherwise", checked.Load(), other.Load())
	}

	// A new address is refused, even with the right password...
	_, stranger := fromAddress(t, s, "127.0.0.3")
	if code := login(stranger, password); code != http.StatusTooManyRequests {
		t.Errorf("the right password from a new address during the flood: HTTP %d, want 429", code)
	}
	// ...while alice, at her usual address, gets in, over REST and gRPC.
	if code := login(owner, password); code != http.StatusOK {
		t.Errorf("alice over REST at her usual address during the flood: HTTP %d", code)
	}
	if _, err := pb.NewTokenServiceClient(ownerConn).CreateToken(context.Background(), &pb.CreateTokenRequest{Username: "alice", Password: password}); err != nil {
		t.Errorf("alice over gRPC at her usual address during the flood: %s", describe(err))
	}
}

// ChangePassword's old password is a password attempt like a login: the
// same limits apply.
func TestChangePasswordIsLimitedLikeALogin(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_LOGIN_ATTEMPTS_PER_USER_AND_ADDRESS", "3")
	for _, c := range s.callers(t) {
		a := rpc{t, c}
		name := c.name + "-judy"
		s.mustUser(t, name, "human")
		tok := a.login(name) // attempt 1
		for i := range 3 {
			_, err := a.users().ChangePassword(as(tok), &pb.ChangePasswordRequest{UserId: "me", OldPassword: "wrong password", NewPassword: "a new password"})
			want := codes.PermissionDenied
			if i == 2 {
				want = codes.ResourceExhausted
			}
			wantCode(t, fmt.Sprintf("%s: wrong old password #%d", c.name, i+1), err, want)
		}
		_, err := a.users().ChangePassword(as(tok), &pb.ChangePasswordRequest{UserId: "me", OldPassword: password, NewPassword: "a new password"})
		wantCode(t, c.name+": the right old password past the limit", err, codes.ResourceExhausted)
		// Clients may branch on the reason, and learn when to retry.
		_, reason := errorDetails(err)
		var retry *errdetails.RetryInfo
		for _, d := range status.Convert(err).Details() {
			if r, ok := d.(*errdetails.RetryInfo); ok {
				retry = r
			}
		}
		if reason != "TOO_MANY_ATTEMPTS" || retry.GetRetryDelay().AsDuration() < time.Second {
			t.Errorf("%s: past the limit, reason %q and retry info %v; want TOO_MANY_ATTEMPTS and a delay", c.name, reason, retry)
		}
	}
}
