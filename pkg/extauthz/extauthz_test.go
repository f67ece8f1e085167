package extauthz_test

import (
	"context"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc/codes"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/extauthz"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"
)

const (
	ordersAPI  = "https://orders.example.com"
	billingAPI = "https://billing.example.com"
)

// fixture is a service on SQLite with one user and its credentials.
type fixture struct {
	userID string
	api    string // API token: orders:read orders:write tokens:read
	apiID  string
	// writeOnly is an API token with tokens:write alone: its access token
	// has no scope (write scopes are given only when asked for by name).
	writeOnly   string
	writeOnlyID string
	replaced    string // the API token's secret a rotation replaced, in its grace period
	replacedID  string
	revoked     string
	access      string // access token of api, for the service's own audience: orders:read
	accessOrder string // access token of api minted for ordersAPI: orders:read orders:write
	accessNone  string // access token of writeOnly: no scope
}

func newFixture(t *testing.T) (*extauthz.Server, fixture) {
	t.Helper()
	cfg := apptest.Config(t, "sqlite")
	cfg.Tokens.Scopes = []string{"orders:read", "orders:write"}
	cfg.Tokens.MaxRotationGracePeriod = time.Hour
	cfg.Minter.Resources = []string{ordersAPI, billingAPI}
	a := apptest.MustStart(t, cfg)
	ctx := context.Background()
	u, err := a.Users().Create(ctx, users.Operator(), users.CreateInput{Username: "wes", Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	owner := &domain.Principal{User: u, AllScopes: true}
	f := fixture{userID: u.ID}
	f.api, f.apiID = mustToken(t, a, owner, "orders:read", "orders:write", "tokens:read")
	f.writeOnly, f.writeOnlyID = mustToken(t, a, owner, "tokens:write")
	var revokedID string
	f.revoked, revokedID = mustToken(t, a, owner, "orders:read")
	if err := a.Tokens().Delete(ctx, owner, revokedID); err != nil {
		t.Fatal(err)
	}
	f.replaced, f.replacedID = mustToken(t, a, owner, "orders:read", "tokens:write")
	if _, _, err := a.Tokens().Rotate(ctx, owner, f.replacedID, time.Hour); err != nil {
		t.Fatal(err)
	}
	f.access = mustExchange(t, a, tokens.ExchangeInput{APIToken: f.api, Scopes: []string{"orders:read"}})
	f.accessOrder = mustExchange(t, a, tokens.ExchangeInput{APIToken: f.api, Resource: ordersAPI, Scopes: []string{"orders:read", "orders:write"}})
	f.accessNone = mustExchange(t, a, tokens.ExchangeInput{APIToken: f.writeOnly})
	return extauthz.New(a.Tokens()), f
}

func mustToken(t *testing.T, a *app.App, owner *domain.Principal, scopes ...string) (plaintext, id string) {
	t.Helper()
	plaintext, tok, err := a.Tokens().Create(context.Background(), owner, tokens.CreateInput{Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return plaintext, tok.ID
}

func mustExchange(t *testing.T, a *app.App, in tokens.ExchangeInput) string {
	t.Helper()
	x, err := a.Tokens().Exchange(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return x.AccessToken.JWT
}

// checkRequest is what Envoy's ext_authz filter sends: the request's
// headers (lower-case, as HTTP/2 has them; here with a client's own
// identity headers, in both spellings) and the route's context extensions.
func checkRequest(headers, extensions map[string]string) *authv3.CheckRequest {
	h := map[string]string{":method": "GET", ":path": "/orders/42",
		"x-tokenservice-user-id": "someone-else", "x_tokenservice_user_id": "someone-else", "x-tokenservice_scopes": "admin"}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/orders/42", Host: "api.example.com", Headers: h,
		}},
		ContextExtensions: extensions,
	}}
}

// answer is what a CheckResponse tells Envoy, in a form to compare.
type answer struct {
	Code      codes.Code
	HTTP      int32             // a denial's status
	Challenge string            // a denial's WWW-Authenticate
	Set       map[string]string // an OK's headers for the upstream
	Removed   []string          // an OK's headers removed from the request, sorted
}

func answerOf(t *testing.T, resp *authv3.CheckResponse) answer {
	t.Helper()
	a := answer{Code: codes.Code(resp.GetStatus().GetCode())}
	if d := resp.GetDeniedResponse(); d != nil {
		a.HTTP = int32(d.GetStatus().GetCode())
		for _, h := range d.GetHeaders() {
			if h.GetHeader().GetKey() == "www-authenticate" {
				a.Challenge = h.GetHeader().GetValue()
			}
		}
	}
	if ok := resp.GetOkResponse(); ok != nil {
		a.Set = map[string]string{}
		for _, h := range ok.GetHeaders() {
			a.Set[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			// A client's own header of the same name must be replaced,
			// not joined.
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("header %s is set with %v: a client's own would pass", h.GetHeader().GetKey(), h.GetAppendAction())
			}
		}
		a.Removed = slices.Sorted(slices.Values(ok.GetHeadersToRemove()))
	}
	return a
}

// lookalikes are the other spellings of the identity headers, with
// underscores for dashes: Envoy passes them on by default, and CGI-style
// upstreams (HTTP_X_TOKENSERVICE_USER_ID) read them as the real ones. An
// allowed request always has them removed, with the credential.
var lookalikes = []string{
	"x_tokenservice-user-id", "x-tokenservice_user-id", "x-tokenservice-user_id",
	"x_tokenservice_user-id", "x_tokenservice-user_id", "x-tokenservice_user_id", "x_tokenservice_user_id",
	"x_tokenservice-username", "x-tokenservice_username", "x_tokenservice_username",
	"x_tokenservice-scopes", "x-tokenservice_scopes", "x_tokenservice_scopes",
	"x_tokenservice-token-id", "x-tokenservice_token-id", "x-tokenservice-token_id",
	"x_tokenservice_token-id", "x_tokenservice-token_id", "x-tokenservice_token_id", "x_tokenservice_token_id",
}

// removed is what an allowed request has removed: the credential, the
// lookalikes, and the identity headers given without a value (Envoy
// drops a header set to "", so a client's own would pass).
func removed(empty ...string) []string {
	return slices.Sorted(slices.Values(append(append([]string{"authorization"}, lookalikes...), empty...)))
}

const (
	challengeMissing        = `Bearer realm="tokenservice"`
	challengeInvalidRequest = `Bearer realm="tokenservice", error="invalid_request", error_description="send the token as: Authorization: Bearer <token>"`
	challengeInvalidToken   = `Bearer realm="tokenservice", error="invalid_token"`
)

func unauthenticated(challenge string) answer {
	return answer{Code: codes.Unauthenticated, HTTP: 401, Challenge: challenge}
}

func insufficientScope(scope string) answer {
	return answer{Code: codes.PermissionDenied, HTTP: 403,
		Challenge: `Bearer realm="tokenservice", error="insufficient_scope", scope="` + scope + `"`}
}

// TestCheck is Check's rules as a table: how the Authorization header is
// read, which credentials pass (API tokens and access tokens, live and
// not), the route's audience and scopes, and what the upstream gets or the
// client is told.
func TestCheck(t *testing.T) {
	srv, f := newFixture(t)
	madeUp, err := auth.NewAPIToken(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret := auth.APIToken{ID: f.apiID, Secret: madeUp.Secret}.String() // a good checksum
	ok := func(scopes, tokenID string) answer {
		return answer{Code: codes.OK, Removed: removed(),
			Set: map[string]string{"x-tokenservice-user-id": f.userID, "x-tokenservice-username": "wes",
				"x-tokenservice-scopes": scopes, "x-tokenservice-token-id": tokenID}}
	}
	apiOK := ok("orders:read orders:write tokens:read", f.apiID)

	for _, tc := range []struct {
		name          string
		authorization string // "": no Authorization header
		headers       map[string]string
		scopes        string // the route's tokenservice_scopes; "": none
		audience      string // the route's tokenservice_audience; "": any
		want          answer
	}{
		// The Authorization header.
		{name: "no Authorization header", want: unauthenticated(challengeMissing)},
		{name: "another scheme", authorization: "Basic d2VzOnB3", want: unauthenticated(challengeInvalidRequest)},
		{name: "Bearer with no token", authorization: "Bearer", want: unauthenticated(challengeInvalidRequest)},
		{name: "Bearer with only spaces", authorization: "Bearer   ", want: unauthenticated(challengeInvalidRequest)},
		{name: "the scheme in lower case", authorization: "bearer " + f.api, want: apiOK},
		{name: "spaces around the token", authorization: "Bearer  " + f.api + " ", want: apiOK},
		{name: "the credential under another header name", headers: map[string]string{"x-authorization": "Bearer " + f.api},
			want: unauthenticated(challengeMissing)},

		// Which credentials pass.
		{name: "an API token", authorization: "Bearer " + f.api, want: apiOK},
		{name: "an access token, of the service's audience", authorization: "Bearer " + f.access, want: ok("orders:read", f.apiID)},
		{name: "an access token with no scope: the scopes header removed, not set", authorization: "Bearer " + f.accessNone,
			want: answer{Code: codes.OK, Removed: removed("x-tokenservice-scopes"),
				Set: map[string]string{"x-tokenservice-user-id": f.userID, "x-tokenservice-username": "wes", "x-tokenservice-token-id": f.writeOnlyID}}},
		{name: "a replaced secret in its grace period: its scopes less the write scopes", authorization: "Bearer " + f.replaced,
			want: ok("orders:read", f.replacedID)},
		{name: "a made-up API token", authorization: "Bearer " + madeUp.String(), want: unauthenticated(challengeInvalidToken)},
		{name: "a known token ID with the wrong secret", authorization: "Bearer " + wrongSecret, want: unauthenticated(challengeInvalidToken)},
		{name: "a deleted API token", authorization: "Bearer " + f.revoked, want: unauthenticated(challengeInvalidToken)},
		{name: "a forged JWT", authorization: "Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln", want: unauthenticated(challengeInvalidToken)},
		{name: "an access token altered", authorization: "Bearer " + f.access[:len(f.access)-4] + "AAAA", want: unauthenticated(challengeInvalidToken)},

		// The route's audience.
		{name: "no audience: an access token minted for another API", authorization: "Bearer " + f.accessOrder,
			want: ok("orders:read orders:write", f.apiID)},
		{name: "the route's audience: an access token minted for it", authorization: "Bearer " + f.accessOrder, audience: ordersAPI,
			want: ok("orders:read orders:write", f.apiID)},
		{name: "the route's audience: an access token minted for another API", authorization: "Bearer " + f.accessOrder, audience: billingAPI,
			want: unauthenticated(challengeInvalidToken)},
		{name: "the route's audience: an access token of the service's own", authorization: "Bearer " + f.access, audience: ordersAPI,
			want: unauthenticated(challengeInvalidToken)},
		{name: "the route's audience: an API token, which has none", authorization: "Bearer " + f.api, audience: ordersAPI,
			want: unauthenticated(challengeInvalidToken)},

		// The route's scopes.
		{name: "a scope held", authorization: "Bearer " + f.access, scopes: "orders:read", want: ok("orders:read", f.apiID)},
		{name: "scopes held, space-separated", authorization: "Bearer " + f.api, scopes: "orders:read orders:write", want: apiOK},
		{name: "scopes held, comma-separated", authorization: "Bearer " + f.api, scopes: "orders:read,orders:write", want: apiOK},
		{name: "scopes held, commas and spaces", authorization: "Bearer " + f.api, scopes: " orders:read, ,orders:write ", want: apiOK},
		{name: "a scope not held", authorization: "Bearer " + f.access, scopes: "orders:write", want: insufficientScope("orders:write")},
		{name: "the first scope not held is named", authorization: "Bearer " + f.access, scopes: "orders:read,tokens:read orders:write",
			want: insufficientScope("tokens:read")},
		{name: "the route's first scope not held", authorization: "Bearer " + f.access, scopes: "tokens:read,orders:read",
			want: insufficientScope("tokens:read")},
		{name: "a write scope of a replaced secret", authorization: "Bearer " + f.replaced, scopes: "tokens:write",
			want: insufficientScope("tokens:write")},
		{name: "a scope no token has", authorization: "Bearer " + f.api, scopes: "nosuch:scope", want: insufficientScope("nosuch:scope")},
		{name: "a bad credential is refused before the scopes", authorization: "Bearer " + f.revoked, scopes: "orders:write",
			want: unauthenticated(challengeInvalidToken)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			headers := map[string]string{}
			for k, v := range tc.headers {
				headers[k] = v
			}
			if tc.authorization != "" {
				headers["authorization"] = tc.authorization
			}
			ext := map[string]string{}
			if tc.scopes != "" {
				ext[extauthz.ScopeExtension] = tc.scopes
			}
			if tc.audience != "" {
				ext[extauthz.AudienceExtension] = tc.audience
			}
			resp, err := srv.Check(context.Background(), checkRequest(headers, ext))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if diff := cmp.Diff(tc.want, answerOf(t, resp), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}

// A database that does not answer is an error, not a denial: Envoy's
// failure_mode_allow decides, and no client is told its good token is bad.
func TestCheckWithoutTheDatabaseIsAnError(t *testing.T) {
	srv, f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the store's calls fail as unavailable
	for _, credential := range []string{f.api, f.access} {
		resp, err := srv.Check(ctx, checkRequest(map[string]string{"authorization": "Bearer " + credential}, nil))
		if domain.KindOf(err) != domain.KindUnavailable {
			t.Errorf("%.12s...: Check = %v, %v; want an unavailable error", credential, answerOf(t, resp), err)
		}
	}
}
