package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// TestNotesRefuseControlCharacters: free text that a terminal or a table
// would obey is refused with plain words naming the field.
func TestNotesRefuseControlCharacters(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		user := "nia-" + c.name
		s.mustUser(t, user, "human")
		a := rpc{t: t, c: c}
		login := a.login(user)
		for name, note := range map[string]string{
			"escape": "ci \x1b[31mred\x1b[0m", "bell": "ci\a", "newline": "ci\nfake row", "carriage return": "ci\rover",
			"nul": "ci\x00", "tab": "a\tb", "C1": "ci\u009b31m", "delete": "ci\x7f", "line separator": "ci\u2028fake row",
			"right-to-left override": "deploy\u202egpj.exe", "right-to-left isolate": "ci\u2067x\u2069",
		} {
			_, err := a.create(login, &pb.CreateTokenRequest{Note: note})
			wantCode(t, "a note with a "+name, err, codes.InvalidArgument)
			if msg := status.Convert(err).Message(); !strings.Contains(msg, "note") || !strings.Contains(msg, "control") {
				t.Errorf("a note with a %s: message %q, want one naming the note and the controls", name, msg)
			}
		}
		if _, err := a.create(login, &pb.CreateTokenRequest{Note: "CI: déploiement — prod ✓ 👩\u200d💻"}); err != nil {
			t.Errorf("a note of printable Unicode: %s", describe(err))
		}
	})
}

// TestUserCreationsAreLimited: each caller's CreateUser attempts, refused
// ones (a taken name) included, are bounded an hour, so its conflicts cannot
// enumerate usernames for free; other callers keep theirs; the refusals are
// counted.
func TestUserCreationsAreLimited(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_USER_CREATIONS_PER_HOUR", "3")
		s.mustUser(t, "pat", "human")
		s.mustUser(t, "admin", "admin") // a taken name to probe
		for _, c := range s.callers(t) {
			t.Run(c.name, func(t *testing.T) {
				a := rpc{t: t, c: c}
				s.mustUser(t, "olga-"+c.name, "human")
				olga := a.login("olga-" + c.name)
				_, err := a.users().CreateUser(as(olga), &pb.CreateUserRequest{Username: "admin", Machine: true})
				wantCode(t, "probing a taken name", err, codes.AlreadyExists)
				a.mustCreateUser(olga, &pb.CreateUserRequest{Username: "olga-bot-" + c.name, Machine: true})
				_, err = a.users().CreateUser(as(olga), &pb.CreateUserRequest{Username: "olga-ci-" + c.name, Machine: true})
				wantCode(t, "the third attempt", err, codes.OK)
				_, err = a.users().CreateUser(as(olga), &pb.CreateUserRequest{Username: "olga-bot2-" + c.name, Machine: true})
				wantCode(t, "the fourth attempt in the hour", err, codes.ResourceExhausted)
				if reason(err) != "TOO_MANY_USER_CREATIONS" || !strings.Contains(status.Convert(err).Message(), "--user-creations-per-hour") {
					t.Errorf("the refusal: %s, want TOO_MANY_USER_CREATIONS naming the flag", describe(err))
				}
				a.mustCreateUser(a.login("pat"), &pb.CreateUserRequest{Username: "pat-bot-" + c.name, Machine: true})
			})
		}
		got := scrape(t, "http://"+s.app.MetricsAddr()+"/metrics")[series("tokenservice_rate_limit_refusals_total", "limit", "user_creations")]
		if got < 1 {
			t.Errorf("rate_limit_refusals_total{limit=\"user_creations\"} = %v, want the refusals counted", got)
		}
	})
}

// TestPageTokensAreBoundToTheCaller: a page token continues the listing of
// the caller it was given to, not another's of the same user.
func TestPageTokensAreBoundToTheCaller(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		user, admin := "quin-"+c.name, "root-"+c.name
		userID := s.mustUser(t, user, "human")
		s.mustUser(t, admin, "admin")
		a := rpc{t: t, c: c}
		own := a.login(user)
		a.mustCreate(own, &pb.CreateTokenRequest{})
		adminTok := a.login(admin)
		page, err := a.list(adminTok, &pb.ListTokensRequest{UserId: userID, PageSize: 1})
		if err != nil || page.GetNextPageToken() == "" {
			t.Fatalf("the admin's first page: %v, %s", page, describe(err))
		}
		_, err = a.list(own, &pb.ListTokensRequest{UserId: userID, PageSize: 1, PageToken: page.GetNextPageToken()})
		wantCode(t, "the user continuing the admin's listing of its tokens", err, codes.InvalidArgument)
		if _, err := a.list(adminTok, &pb.ListTokensRequest{UserId: userID, PageSize: 1, PageToken: page.GetNextPageToken()}); err != nil {
			t.Errorf("the admin continuing its own listing: %s", describe(err))
		}
	})
}

// audClaim reads an access token's aud without verifying it.
func audClaim(t *testing.T, raw string) []string {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	return c.Audience
}

// TestAccessTokensForOneAPI: an exchange naming one of the operator's
// resources (RFC 8707) gets a token whose only aud is that API's; it is no
// credential here, introspection says whom it is for, and an unknown
// resource is refused, over the API and the token endpoint.
func TestAccessTokensForOneAPI(t *testing.T) {
	const orders = "https://orders.example.com"
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_RESOURCES", orders+",https://billing.example.com")
		s.mustUser(t, "rae", "human")
		for _, c := range s.callers(t) {
			t.Run(c.name, func(t *testing.T) {
				a := rpc{t: t, c: c}
				api := a.login("rae")
				resp := &pb.GetAccessTokenResponse{}
				if err := c.call(context.Background(), pb.TokenService_GetAccessToken_FullMethodName, "",
					&pb.GetAccessTokenRequest{Token: api, Resource: orders}, resp); err != nil {
					t.Fatalf("an exchange for %s: %s", orders, describe(err))
				}
				if aud := audClaim(t, resp.GetAccessToken()); len(aud) != 1 || aud[0] != orders {
					t.Errorf("aud %v, want [%s]", aud, orders)
				}
				if got := audClaim(t, exchangeScopes(t, c, api, nil).GetAccessToken()); len(got) != 1 || got[0] != "http://tokenservice.test" {
					t.Errorf("an exchange without a resource: aud %v, want the service's own", got)
				}
				_, err := a.list(resp.GetAccessToken(), &pb.ListTokensRequest{})
				wantCode(t, "the orders API's token used here", err, codes.Unauthenticated)
				for route, want := range map[string]codes.Code{"": codes.OK, orders: codes.OK, "https://billing.example.com": codes.Unauthenticated} {
					if got := envoyCheckAudience(t, s, resp.GetAccessToken(), route); got != want {
						t.Errorf("Envoy's Check of the orders token on a route for %q: %v, want %v", route, got, want)
					}
				}
				// A route for one API takes that API's access tokens, not the
				// lasting API token they come from; a route naming none takes it.
				for route, want := range map[string]codes.Code{"": codes.OK, orders: codes.Unauthenticated} {
					if got := envoyCheckAudience(t, s, api, route); got != want {
						t.Errorf("Envoy's Check of the API token on a route for %q: %v, want %v", route, got, want)
					}
				}
				_, body := postForm(t, s, "/oauth2/introspect", "Bearer "+api, url.Values{"token": {resp.GetAccessToken()}})
				if body["active"] != true || body["aud"] != orders {
					t.Errorf("introspection: %v, want active with aud %s", body, orders)
				}
				err = c.call(context.Background(), pb.TokenService_GetAccessToken_FullMethodName, "",
					&pb.GetAccessTokenRequest{Token: api, Resource: "https://elsewhere.example.com"}, resp)
				wantCode(t, "an unknown resource", err, codes.InvalidArgument)
				if reason(err) != "INVALID_TARGET" {
					t.Errorf("an unknown resource: %s, want INVALID_TARGET", describe(err))
				}

				form := url.Values{"grant_type": {"client_credentials"}, "resource": {orders}}
				r, body := postForm(t, s, "/oauth2/token", "Basic "+basicAuth(idOf(api), api), form)
				if r.StatusCode != http.StatusOK {
					t.Fatalf("the token endpoint with a resource: %d %v", r.StatusCode, body)
				}
				if aud := audClaim(t, body["access_token"].(string)); len(aud) != 1 || aud[0] != orders {
					t.Errorf("the token endpoint's aud %v, want [%s]", aud, orders)
				}
				form.Set("resource", "https://elsewhere.example.com")
				if r, body := postForm(t, s, "/oauth2/token", "Basic "+basicAuth(idOf(api), api), form); r.StatusCode != http.StatusBadRequest || body["error"] != "invalid_target" {
					t.Errorf("the token endpoint with an unknown resource: %d %v, want 400 invalid_target", r.StatusCode, body)
				}
				form["resource"] = []string{orders, "https://billing.example.com"}
				if r, body := postForm(t, s, "/oauth2/token", "Basic "+basicAuth(idOf(api), api), form); r.StatusCode != http.StatusBadRequest || body["error"] != "invalid_target" {
					t.Errorf("the token endpoint with two resources: %d %v, want 400 invalid_target", r.StatusCode, body)
				}
			})
		}
	})
}

// envoyCheckAudience asks Check about an access token on a route whose
// tokenservice_audience is aud ("": none), and returns its code.
func envoyCheckAudience(t *testing.T, s *service, token, aud string) codes.Code {
	t.Helper()
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/orders/42", Host: "api.example.com", Headers: map[string]string{"authorization": "Bearer " + token},
		}},
	}}
	if aud != "" {
		req.Attributes.ContextExtensions = map[string]string{"tokenservice_audience": aud}
	}
	resp, err := authv3.NewAuthorizationClient(s.grpcConn).Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check: %s", describe(err))
	}
	return codes.Code(resp.GetStatus().GetCode())
}
