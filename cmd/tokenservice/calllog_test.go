package main

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// Every request's log line names its source: the client's address over
// REST, gRPC and the OAuth endpoints alike (the TCP peer: a forged
// X-Forwarded-For is not believed), and for a password attempt the username
// tried, never the password.
func TestRequestLinesNameTheClient(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		s.mustUser(t, "lena", "human")
		tok := rpc{t, s.grpcCaller()}.login("lena")
		const forged, wrongPassword = "198.51.100.66", "not-lenas-password-42"

		rest := func(id, method, path, contentType, body string) {
			t.Helper()
			req, _ := http.NewRequest(method, s.httpURL+path, strings.NewReader(body))
			req.Header.Set("X-Request-Id", id)
			req.Header.Set("X-Forwarded-For", forged)
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			if strings.HasPrefix(path, "/v1alpha1/tokens") && body == "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		grpcCtx := func(id string) context.Context {
			return metadata.AppendToOutgoingContext(context.Background(), "x-request-id", id, "x-forwarded-for", forged)
		}

		rest("rest-call", "GET", "/v1alpha1/tokens", "", "")
		rest("rest-refused", "GET", "/v1alpha1/tokens?pageSiz=1", "", "")
		rest("rest-password", "POST", "/v1alpha1/tokens", "application/json", `{"username": "lena", "password": "`+wrongPassword+`"}`)
		rest("oauth", "POST", "/oauth2/token", "application/x-www-form-urlencoded",
			url.Values{"grant_type": {"client_credentials"}, "client_secret": {"tks_AAAAAAAAAAAAAAAA_nope"}}.Encode())
		users := pb.NewUserServiceClient(s.grpcConn)
		tokens := pb.NewTokenServiceClient(s.grpcConn)
		if _, err := users.GetUser(metadata.AppendToOutgoingContext(grpcCtx("grpc-call"), "authorization", "Bearer "+tok), &pb.GetUserRequest{UserId: "me"}); err != nil {
			t.Fatalf("GetUser: %s", describe(err))
		}
		_, err := tokens.CreateToken(grpcCtx("grpc-password"), &pb.CreateTokenRequest{Username: "lena", Password: wrongPassword})
		wantCode(t, "a wrong password", err, codes.Unauthenticated)
		_, err = users.ChangePassword(metadata.AppendToOutgoingContext(grpcCtx("grpc-old-password"), "authorization", "Bearer "+tok),
			&pb.ChangePasswordRequest{UserId: "me", OldPassword: wrongPassword, NewPassword: "a new password of lena's"})
		wantCode(t, "a wrong old password", err, codes.PermissionDenied)
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("lena:"+wrongPassword))
		_, err = tokens.DeleteToken(metadata.AppendToOutgoingContext(grpcCtx("grpc-basic"), "authorization", basic), &pb.DeleteTokenRequest{TokenId: idOf(tok)})
		wantCode(t, "a wrong password as HTTP Basic", err, codes.Unauthenticated)
		req, _ := http.NewRequest("DELETE", s.httpURL+"/v1alpha1/tokens/"+idOf(tok), nil)
		req.Header.Set("X-Request-Id", "rest-basic")
		req.Header.Set("Authorization", basic)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a wrong password as HTTP Basic over REST: %v %v", resp, err)
		}

		for _, tc := range []struct {
			id, msg, user string
			peerPort      bool // peer.address has the TCP port (gRPC)
		}{
			{"rest-call", "finished call", "", false},
			{"rest-refused", "finished request", "", false},
			{"rest-password", "finished call", "lena", false},
			{"oauth", "finished request", "", false},
			{"grpc-call", "finished call", "", true},
			{"grpc-password", "finished call", "lena", true},
			{"grpc-old-password", "finished call", "lena", true},
			{"grpc-basic", "finished call", "lena", true},
			{"rest-basic", "finished call", "lena", false},
		} {
			line := logLine(t, s, tc.id, tc.msg)
			if line == nil {
				continue
			}
			if got := line["client.address"]; got != "127.0.0.1" {
				t.Errorf("%s: client.address %v, want 127.0.0.1 (the TCP peer, not the forged %s): %v", tc.id, got, forged, line)
			}
			if peerAddr, ok := line["peer.address"].(string); ok && strings.HasPrefix(peerAddr, "127.0.0.1:") != tc.peerPort {
				t.Errorf("%s: peer.address %q", tc.id, peerAddr)
			}
			if got, _ := line["user.name"].(string); got != tc.user {
				t.Errorf("%s: user.name %q, want %q", tc.id, got, tc.user)
			}
		}
		if logs := s.logs.String(); strings.Contains(logs, wrongPassword) || strings.Contains(logs, forged) {
			t.Errorf("the log has the password tried or the forged address:\n%s", logs)
		}
	})
}

// logLine returns the log line msg with request_id id, waiting a little for
// it: a plain HTTP endpoint's line is written once its answer is.
func logLine(t *testing.T, s *service, id, msg string) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, line := range s.logs.JSONLines() {
			if line["request_id"] == id && line["msg"] == msg {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("no %q line with request_id %s in the log:\n%s", msg, id, s.logs)
			return nil
		}
	}
}
