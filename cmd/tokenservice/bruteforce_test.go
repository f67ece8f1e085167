package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// Password attempts are limited per username and per client address: past
// the limit RESOURCE_EXHAUSTED, HTTP 429 with Retry-After.
func TestPasswordAttemptsAreLimited(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"),
		"TOKENSERVICE_LOGIN_ATTEMPTS_PER_USER", "3", "TOKENSERVICE_LOGIN_ATTEMPTS_PER_ADDRESS", "8")
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
