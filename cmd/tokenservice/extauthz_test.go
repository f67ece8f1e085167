package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// envoyCheck calls Check as Envoy's ext_authz filter does: the request's
// headers (lower-case, as HTTP/2 has them) and the route's context
// extensions.
func envoyCheck(t *testing.T, s *service, authorization, routeScopes string) *authv3.CheckResponse {
	t.Helper()
	headers := map[string]string{":method": "GET", ":path": "/orders/42", "x-tokenservice-user-id": "someone-else", "x_tokenservice_user_id": "someone-else"}
	if authorization != "" {
		headers["authorization"] = authorization
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/orders/42", Host: "api.example.com", Headers: headers,
		}},
	}}
	if routeScopes != "" {
		req.Attributes.ContextExtensions = map[string]string{"tokenservice_scopes": routeScopes}
	}
	resp, err := authv3.NewAuthorizationClient(s.grpcConn).Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check: %s", describe(err))
	}
	return resp
}

func okHeaders(resp *authv3.CheckResponse) map[string]*corev3.HeaderValueOption {
	out := map[string]*corev3.HeaderValueOption{}
	for _, h := range resp.GetOkResponse().GetHeaders() {
		out[h.GetHeader().GetKey()] = h
	}
	return out
}

func deniedWith(resp *authv3.CheckResponse) (int32, string) {
	d := resp.GetDeniedResponse()
	var challenge string
	for _, h := range d.GetHeaders() {
		if h.GetHeader().GetKey() == "www-authenticate" {
			challenge = h.GetHeader().GetValue()
		}
	}
	return int32(d.GetStatus().GetCode()), challenge
}

func TestEnvoyExternalAuthorization(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_SCOPES", operatorScopes)
		userID := s.mustUser(t, "wes", "human")
		a := rpc{t: t, c: s.grpcCaller()}
		login := a.login("wes")
		api := a.mustCreate(login, &pb.CreateTokenRequest{Scopes: []string{"orders:read", "orders:write"}}).GetToken()
		access := exchangeScopes(t, s.grpcCaller(), api, []string{"orders:read"}).GetAccessToken()

		for name, tc := range map[string]struct {
			credential, scopes string
		}{
			"an API token": {api, "orders:read orders:write"}, "an access token": {access, "orders:read"},
		} {
			resp := envoyCheck(t, s, "Bearer "+tc.credential, "orders:read")
			h := okHeaders(resp)
			if codes.Code(resp.GetStatus().GetCode()) != codes.OK || h["x-tokenservice-user-id"].GetHeader().GetValue() != userID ||
				h["x-tokenservice-username"].GetHeader().GetValue() != "wes" || h["x-tokenservice-scopes"].GetHeader().GetValue() != tc.scopes ||
				h["x-tokenservice-token-id"].GetHeader().GetValue() != idOf(api) {
				t.Errorf("%s: %v", name, resp)
			}
			// The client's own x-tokenservice-user-id (sent above) must not
			// reach the upstream, nor the credential.
			if h["x-tokenservice-user-id"].GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("%s: the identity headers do not replace a client's", name)
			}
			removed := resp.GetOkResponse().GetHeadersToRemove()
			if !slices.Contains(removed, "authorization") {
				t.Errorf("%s: the upstream would get the credential (headers to remove: %v)", name, removed)
			}
			// Nor its x_tokenservice_user_id, or any other spelling with
			// underscores of a header set here: an upstream that reads
			// headers CGI-style (HTTP_X_TOKENSERVICE_USER_ID) takes it for
			// the real one.
			if len(h) != 4 {
				t.Errorf("%s: identity headers %v, want 4", name, h)
			}
			for set := range h {
				for _, lookalike := range []string{strings.ReplaceAll(set, "-", "_"), strings.Replace(set, "-", "_", 1), "x-" + strings.ReplaceAll(set[2:], "-", "_")} {
					if !slices.Contains(removed, lookalike) {
						t.Errorf("%s: sets %s but leaves a client's %s (headers to remove: %v)", name, set, lookalike, removed)
					}
				}
				if slices.Contains(removed, set) {
					t.Errorf("%s: both sets and removes %s", name, set)
				}
			}
		}

		if resp := envoyCheck(t, s, "Bearer "+api, "orders:read,orders:write"); codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Errorf("a route needing orders:read and orders:write, comma-separated, an API token with both: %v", resp)
		}
		if resp := envoyCheck(t, s, "Bearer "+access, "orders:write"); codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied {
			t.Errorf("a route needing orders:write, an access token with orders:read: %v", resp)
		} else if st, ch := deniedWith(resp); st != 403 || ch != `Bearer realm="tokenservice", error="insufficient_scope", scope="orders:write"` {
			t.Errorf("insufficient scope: HTTP %d, challenge %q", st, ch)
		}
		for name, tc := range map[string]struct {
			authorization, challenge string
		}{
			"no credential":     {"", `Bearer realm="tokenservice"`},
			"another scheme":    {"Basic d2VzOnB3", `Bearer realm="tokenservice", error="invalid_request", error_description="send the token as: Authorization: Bearer <token>"`},
			"a made-up token":   {"Bearer tks_AAAAAAAAAAAAAAAA_" + api[len(api)-49:], `Bearer realm="tokenservice", error="invalid_token"`},
			"a forged JWT":      {"Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln", `Bearer realm="tokenservice", error="invalid_token"`},
			"a revoked API key": {"", ""},
		} {
			if name == "a revoked API key" {
				if err := a.del(login, idOf(api)); err != nil {
					t.Fatal(describe(err))
				}
				tc.authorization, tc.challenge = "Bearer "+api, `Bearer realm="tokenservice", error="invalid_token"`
			}
			resp := envoyCheck(t, s, tc.authorization, "")
			if st, ch := deniedWith(resp); codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated || st != 401 || ch != tc.challenge {
				t.Errorf("%s: code %d, HTTP %d, challenge %q; want 401 with %q", name, resp.GetStatus().GetCode(), st, ch, tc.challenge)
			}
		}
	})
}
