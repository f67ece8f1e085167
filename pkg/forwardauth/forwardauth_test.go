package forwardauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/bearer"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/forwardauth"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"
)

const ordersAPI = "https://orders.example.com"

// fixture is a service with one user and its credentials, the endpoint
// served by the app's own HTTP handler (the route as serve mounts it).
type fixture struct {
	h            http.Handler
	user         *domain.User
	api, apiID   string // orders:read tokens:read
	revoked      string
	access       string // access token of api: orders:read
	accessOrders string // access token of api minted for ordersAPI
	accessNone   string // access token with no scope (of a tokens:write token)
	noneID       string
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	cfg := apptest.Config(t, "sqlite")
	cfg.Tokens.Scopes = []string{"orders:read", "orders:write"}
	cfg.Minter.Resources = []string{ordersAPI}
	a := apptest.MustStart(t, cfg)
	ctx := context.Background()
	u, err := a.Users().Create(ctx, users.Operator(), users.CreateInput{Username: "wes", Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	owner := &domain.Principal{User: u, AllScopes: true}
	f := fixture{h: a.Handler(), user: u}
	f.api, f.apiID = mustToken(t, a, owner, "orders:read", "tokens:read")
	var revokedID string
	f.revoked, revokedID = mustToken(t, a, owner, "orders:read")
	if err := a.Tokens().Delete(ctx, owner, revokedID); err != nil {
		t.Fatal(err)
	}
	f.access = mustExchange(t, a, tokens.ExchangeInput{APIToken: f.api, Scopes: []string{"orders:read"}})
	f.accessOrders = mustExchange(t, a, tokens.ExchangeInput{APIToken: f.api, Resource: ordersAPI, Scopes: []string{"orders:read"}})
	var writeOnly string
	writeOnly, f.noneID = mustToken(t, a, owner, "tokens:write")
	f.accessNone = mustExchange(t, a, tokens.ExchangeInput{APIToken: writeOnly}) // write scopes only when named
	return f
}

func mustToken(t testing.TB, a *app.App, owner *domain.Principal, scopes ...string) (plaintext, id string) {
	t.Helper()
	plaintext, tok, err := a.Tokens().Create(context.Background(), owner, tokens.CreateInput{Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return plaintext, tok.ID
}

func mustExchange(t testing.TB, a *app.App, in tokens.ExchangeInput) string {
	t.Helper()
	x, err := a.Tokens().Exchange(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return x.AccessToken.JWT
}

// ask sends the endpoint a gateway's subrequest: method and query as given,
// the headers as given (each value its own header line).
func (f fixture) ask(t *testing.T, method, query string, headers map[string][]string) *httptest.ResponseRecorder {
	t.Helper()
	target := forwardauth.Path
	if query != "" {
		target += "?" + query
	}
	r := httptest.NewRequest(method, target, nil)
	for k, vs := range headers {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func bearerOf(token string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + token}}
}

func TestAValidCredentialPassesWithWhoItIs(t *testing.T) {
	f := newFixture(t)
	for name, tc := range map[string]struct {
		token, query, scopes, tokenID string
	}{
		"API token":                        {f.api, "", "orders:read tokens:read", f.apiID},
		"access token":                     {f.access, "", "orders:read", f.apiID},
		"access token for the API's route": {f.accessOrders, "audience=" + ordersAPI, "orders:read", f.apiID},
		"the route's scope held":           {f.access, "scope=orders:read", "orders:read", f.apiID},
		// Sent empty, not left out: a gateway copying it replaces the
		// client's own.
		"access token with no scope": {f.accessNone, "", "", f.noneID},
	} {
		// nginx keeps the client's method; Caddy and Traefik send GET.
		for _, method := range []string{"GET", "POST", "DELETE", "HEAD"} {
			w := f.ask(t, method, tc.query, bearerOf(tc.token))
			if w.Code != http.StatusOK {
				t.Fatalf("%s, %s: %d %s", name, method, w.Code, w.Body)
			}
			for h, want := range map[string]string{
				"X-Tokenservice-User-Id": f.user.ID, "X-Tokenservice-Username": "wes",
				"X-Tokenservice-Scopes": tc.scopes, "X-Tokenservice-Token-Id": tc.tokenID,
				"Cache-Control": "private, max-age=1",
			} {
				if got := w.Header().Values(h); len(got) != 1 || got[0] != want {
					t.Errorf("%s, %s: %s = %q, want %q", name, method, h, got, want)
				}
			}
		}
	}
}

func TestWhatIsNotAcceptedIsRefusedWithAChallenge(t *testing.T) {
	f := newFixture(t)
	for name, tc := range map[string]struct {
		headers   map[string][]string
		query     string
		status    int
		challenge string
	}{
		"no credential":         {nil, "", 401, bearer.Missing},
		"not a bearer":          {map[string][]string{"Authorization": {"Basic d2VzOnB3"}}, "", 401, bearer.InvalidRequest},
		"an empty bearer":       {map[string][]string{"Authorization": {"Bearer "}}, "", 401, bearer.InvalidRequest},
		"a wrong token":         {bearerOf("tks_wrong"), "", 401, bearer.InvalidToken},
		"a wrong secret":        {bearerOf(f.api[:len(f.api)-4] + "AAAA"), "", 401, bearer.InvalidToken},
		"a revoked token":       {bearerOf(f.revoked), "", 401, bearer.InvalidToken},
		"a forged access token": {bearerOf(f.access[:len(f.access)-4] + "AAAA"), "", 401, bearer.InvalidToken},
		"another API's token":   {bearerOf(f.access), "audience=" + ordersAPI, 401, bearer.InvalidToken},
		"a scope not held":      {bearerOf(f.access), "scope=orders:write", 403, bearer.InsufficientScope(bearer.Realm, "orders:write")},
		"one of two not held":   {bearerOf(f.api), "scope=orders:read,orders:write", 403, bearer.InsufficientScope(bearer.Realm, "orders:write")},
	} {
		w := f.ask(t, "GET", tc.query, tc.headers)
		if w.Code != tc.status || w.Header().Get("WWW-Authenticate") != tc.challenge {
			t.Errorf("%s: %d %q, want %d %q", name, w.Code, w.Header().Get("WWW-Authenticate"), tc.status, tc.challenge)
		}
		checkRefusal(t, name, w)
	}
}

// checkRefusal checks what every refusal has: no identity, no caching, an
// RFC 6749 §5.2-shaped JSON body saying why.
func checkRefusal(t *testing.T, name string, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Header().Get("X-Tokenservice-User-Id") != "" || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("%s: headers %v", name, w.Header())
	}
	var body struct{ Error, ErrorDescription string }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
		t.Errorf("%s: body %q (%v)", name, w.Body, err)
	}
}

// What no gateway sends is a 400 in plain words, never a 5xx.
func TestBadRequestsAreRefusedInPlainWords(t *testing.T) {
	f := newFixture(t)
	long := "/" + strings.Repeat("a", 9000)
	for name, tc := range map[string]struct {
		headers map[string][]string
		query   string
		says    string
	}{
		"two Authorization headers":                   {map[string][]string{"Authorization": {"Bearer " + f.api, "Bearer " + f.access}}, "", "several Authorization headers"},
		"an unknown parameter":                        {bearerOf(f.api), "scopes=orders:read", "unknown query parameter"},
		"a scope with a quote":                        {bearerOf(f.api), `scope=a"b`, "is not a scope name"},
		"two audiences":                               {bearerOf(f.api), "audience=a&audience=b", "give audience once"},
		"a query that does not decode":                {bearerOf(f.api), "scope=%zz", "does not decode"},
		"two forwarded URIs":                          {map[string][]string{"Authorization": {"Bearer " + f.api}, "X-Forwarded-Uri": {"/a", "/b"}}, "", "several X-Forwarded-Uri"},
		"an oversized URI":                            {map[string][]string{"Authorization": {"Bearer " + f.api}, "X-Forwarded-Uri": {long}}, "", "too long"},
		"a forwarded method with a control character": {map[string][]string{"Authorization": {"Bearer " + f.api}, "X-Forwarded-Method": {"GET\x00"}}, "", "control characters"},
	} {
		w := f.ask(t, "GET", tc.query, tc.headers)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tc.says) {
			t.Errorf("%s: %d %s, want 400 saying %q", name, w.Code, w.Body, tc.says)
		}
		checkRefusal(t, name, w)
	}
	// A URI of any other shape is no concern of the endpoint's.
	for _, uri := range []string{"/", "/orders?id=1&x=%00", "*", "http://other.example/x", "/ünïcode", "//double//slashes/../x"} {
		w := f.ask(t, "GET", "", map[string][]string{"Authorization": {"Bearer " + f.api}, "X-Forwarded-Uri": {uri}, "X-Forwarded-Method": {"PATCH"}, "X-Forwarded-Host": {"orders.example.com"}})
		if w.Code != http.StatusOK {
			t.Errorf("X-Forwarded-Uri %q: %d %s", uri, w.Code, w.Body)
		}
	}
}

// Envoy's HTTP ext_authz asks at its path_prefix followed by the client's
// path and query: the query is the client's, not the endpoint's parameters.
func TestEnvoyStylePathsAreChecksToo(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		token  string
		status int
	}{{f.api, 200}, {f.access, 200}, {"", 401}, {f.revoked, 401}} {
		for _, path := range []string{"/orders/1?scopes=x&id=2", "/?page=2"} {
			r := httptest.NewRequest("GET", forwardauth.Path+path, nil)
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			w := httptest.NewRecorder()
			f.h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Errorf("%s with %.12s…: %d %s, want %d", path, tc.token, w.Code, w.Body, tc.status)
			}
		}
	}
	// An auth URL with a stray slash would drop the route's scope: 400.
	for _, query := range []string{"scope=orders:write", "audience=" + ordersAPI, "scope="} {
		r := httptest.NewRequest("GET", forwardauth.Path+"/?"+query, nil)
		r.Header.Set("Authorization", "Bearer "+f.api)
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "not /forward-auth/") {
			t.Errorf("/forward-auth/?%s: %d %s, want 400", query, w.Code, w.Body)
		}
	}
}

// startWithUser starts a service with one user, whose principal it returns.
func startWithUser(t *testing.T) (*app.App, *domain.Principal) {
	t.Helper()
	a := apptest.MustStart(t, apptest.Config(t, "sqlite"))
	u, err := a.Users().Create(context.Background(), users.Operator(), users.CreateInput{Username: "wes", Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	return a, &domain.Principal{User: u, AllScopes: true}
}

// A token deleted here is refused at once (the cache forgets it).
func TestARevocationIsSeenAtOnce(t *testing.T) {
	a, owner := startWithUser(t)
	ctx := context.Background()
	plain, id := mustToken(t, a, owner, "tokens:read")
	access := mustExchange(t, a, tokens.ExchangeInput{APIToken: plain})
	f := fixture{h: a.Handler()}
	for _, tok := range []string{plain, access} {
		if w := f.ask(t, "GET", "", bearerOf(tok)); w.Code != http.StatusOK {
			t.Fatalf("before the revocation: %d", w.Code)
		}
	}
	if err := a.Tokens().Delete(ctx, owner, id); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{plain, access} {
		if w := f.ask(t, "GET", "", bearerOf(tok)); w.Code != http.StatusUnauthorized {
			t.Errorf("after the revocation: %d", w.Code)
		}
	}
}

// A 200 for a credential about to expire is not to be cached past it.
func TestACredentialAboutToExpireIsNotCached(t *testing.T) {
	a, owner := startWithUser(t)
	ctx := context.Background()
	plain, _, err := a.Tokens().Create(ctx, owner, tokens.CreateInput{Scopes: []string{"tokens:read"}, ExpireTime: time.Now().Add(500 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{h: a.Handler()}
	w := f.ask(t, "GET", "", bearerOf(plain))
	if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("%d, Cache-Control %q, want 200 no-store", w.Code, w.Header().Get("Cache-Control"))
	}
}
