package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/internal/devidp"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// The people of the test's identity provider: username, email (all
// verified) and groups. The service lets in example.com's members of
// tokenservice-users; tokenservice-admins are its admins.
var opPeople = []devidp.Person{
	{ID: "u-alice", Username: "alice@example.com", Email: "alice@example.com", Password: opPassword,
		Groups: []string{"tokenservice-users", "tokenservice-admins"}},
	{ID: "u-bob", Username: "bob@example.com", Email: "bob@example.com", Password: opPassword, Groups: []string{"tokenservice-users"}},
	{ID: "u-carol", Username: "carol@example.com", Email: "carol@example.com", Password: opPassword, Groups: []string{"marketing"}},
	{ID: "u-eve", Username: "eve@other.org", Email: "eve@other.org", Password: opPassword, Groups: []string{"tokenservice-users"}},
}

// opPassword is every test person's password at the provider.
const opPassword = "verysecure"

// identityProvider is a real OpenID Provider of the Go ecosystem,
// zitadel/oidc's example OP with its login page (internal/devidp), on
// loopback.
type identityProvider struct {
	*devidp.Provider
	issuer string
}

func startIdentityProvider(t *testing.T) *identityProvider {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	p, handler := devidp.New(srv.URL, opPeople)
	h = handler
	return &identityProvider{Provider: p, issuer: srv.URL}
}

// startSSOService starts a service signing people in through idp (the
// issuer derived from its address, so that its callback is reachable),
// registered there; extraEnv adds to its settings.
func startSSOService(t *testing.T, driver string, idp *identityProvider, extraEnv ...string) *service {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append([]string{"TOKENSERVICE_ISSUER", "",
		"TOKENSERVICE_OIDC_ISSUER", idp.issuer, "TOKENSERVICE_OIDC_CLIENT_ID", "tokenservice",
		"TOKENSERVICE_OIDC_CLIENT_SECRET_FILE", secret, "TOKENSERVICE_OIDC_ALLOWED_DOMAINS", "example.com",
		"TOKENSERVICE_OIDC_REQUIRED_GROUP", "tokenservice-users", "TOKENSERVICE_OIDC_ADMIN_GROUP", "tokenservice-admins",
		"TOKENSERVICE_OIDC_PROVIDER_NAME", "Example SSO"}, extraEnv...)
	s := startService(t, storetest.MustConfig(t, driver), env...)
	idp.RegisterClient("tokenservice", "s3cret", s.httpURL+"/console/sso/callback")
	return s
}

// browserless is an HTTP client with a cookie jar: a browser without
// pages, for the flows' HTTP-level tests.
func browserless(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

// ssoToCallback starts a sign-in, signs in at the provider as username, and
// returns the callback URL the provider sends the browser to, unfollowed.
func ssoToCallback(t *testing.T, c *http.Client, s *service, username string) string {
	t.Helper()
	resp, err := c.Get(s.httpURL + "/console/sso/start")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	id := resp.Request.URL.Query().Get("authRequestID")
	if resp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("the sign-in did not reach the provider's login page: %d %s\n%.300s", resp.StatusCode, resp.Request.URL, body)
	}
	stop := *c
	stop.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if r.URL.Path == "/console/sso/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	login := resp.Request.URL.Scheme + "://" + resp.Request.URL.Host + "/login/username"
	resp, err = stop.PostForm(login, url.Values{"id": {id}, "username": {username}, "password": {opPassword}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	to := resp.Header.Get("Location")
	if !strings.HasPrefix(to, s.httpURL+"/console/sso/callback?") {
		t.Fatalf("the provider sent the browser to %q, not the callback", to)
	}
	return to
}

// ssoSignIn signs c in as username through the provider, and returns the
// answer of the callback (followed).
func ssoSignIn(t *testing.T, c *http.Client, s *service, username string) (int, string) {
	t.Helper()
	resp, err := c.Get(ssoToCallback(t, c, s, username))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, readAll(t, resp)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// signInEvents returns the user.sign_in events, sealed, as an admin lists them.
func signInEvents(t *testing.T, s *service) []*pb.AuditEvent {
	t.Helper()
	r := rpc{t: t, c: s.grpcCaller()}
	if _, err := s.app.Users().GetByUsername(context.Background(), users.Operator(), "auditor"); err != nil {
		s.mustUser(t, "auditor", "admin")
	}
	var out []*pb.AuditEvent
	for _, ev := range r.allAuditEvents(r.login("auditor"), &pb.ListAuditEventsRequest{}) {
		if ev.GetAction() == string(domain.ActionUserSignIn) {
			out = append(out, ev)
		}
	}
	return out
}

// People the provider vouches for are made users at their first sign-in,
// with no password, an admin if in the admin group; later sign-ins follow
// the group. Those outside the allowed domain or the required group are
// refused with a page saying why; every sign-in is in the audit trail.
func TestSignInThroughTheIdentityProvider(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		idp := startIdentityProvider(t)
		s := startSSOService(t, driver, idp)
		ctx, op := context.Background(), users.Operator()

		for _, p := range []struct {
			username string
			admin    bool
		}{{"alice@example.com", true}, {"bob@example.com", false}} {
			c := browserless(t)
			status, body := ssoSignIn(t, c, s, p.username)
			if status != http.StatusOK || !strings.Contains(body, `http-equiv="refresh"`) {
				t.Fatalf("%s: the callback answered %d:\n%.500s", p.username, status, body)
			}
			u, err := s.app.Users().GetByUsername(ctx, op, p.username)
			if err != nil {
				t.Fatalf("%s was not provisioned: %v", p.username, err)
			}
			if u.Admin != p.admin || u.PasswordHash != "" || u.IsMachine() {
				t.Errorf("%s provisioned as admin %v, password %v, machine %v; want admin %v, no password, a person",
					p.username, u.Admin, u.PasswordHash != "", u.IsMachine(), p.admin)
			}
			resp, err := c.Get(s.httpURL + "/console/")
			if err != nil {
				t.Fatal(err)
			}
			if page := readAll(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(page, "Signed in as <strong>"+p.username) {
				t.Errorf("%s's console: %d %.300s", p.username, resp.StatusCode, page)
			}
			// A second sign-in is the same user, not a new one.
			if status, _ := ssoSignIn(t, browserless(t), s, p.username); status != http.StatusOK {
				t.Errorf("%s's second sign-in: %d", p.username, status)
			}
			again, err := s.app.Users().GetByUsername(ctx, op, p.username)
			if err != nil || again.ID != u.ID {
				t.Errorf("%s's second sign-in: user %v (%v), want %s", p.username, again, err, u.ID)
			}
		}

		for _, p := range []struct{ username, why string }{
			{"carol@example.com", "not in the group this service requires (tokenservice-users)"},
			{"eve@other.org", "not in a domain this service lets in"},
		} {
			status, body := ssoSignIn(t, browserless(t), s, p.username)
			if status != http.StatusForbidden || !strings.Contains(body, p.why) {
				t.Errorf("%s: %d %.400s, want 403 saying %q", p.username, status, body, p.why)
			}
			if _, err := s.app.Users().GetByUsername(ctx, op, p.username); domain.KindOf(err) != domain.KindNotFound {
				t.Errorf("%s was made a user though refused: %v", p.username, err)
			}
		}

		var seen []string
		for _, ev := range signInEvents(t, s) {
			seen = append(seen, ev.GetOutcome()+" "+ev.GetSubject().GetUsername()+" "+ev.GetDetails()["reason"])
		}
		for _, want := range []string{"success alice@example.com ", "success bob@example.com ",
			"denied carol@example.com group", "denied eve@other.org email_domain"} {
			if !slices.Contains(seen, want) {
				t.Errorf("the audit trail has no sign-in %q: %q", want, seen)
			}
		}
	})
}

// Leaving the admin group takes the admin flag away at the next sign-in.
func TestTheAdminGroupSetsTheAdminFlag(t *testing.T) {
	idp := startIdentityProvider(t)
	s := startSSOService(t, "sqlite", idp)
	if status, body := ssoSignIn(t, browserless(t), s, "alice@example.com"); status != http.StatusOK {
		t.Fatalf("sign-in: %d %.300s", status, body)
	}
	ctx, op := context.Background(), users.Operator()
	if u, _ := s.app.Users().GetByUsername(ctx, op, "alice@example.com"); u == nil || !u.Admin {
		t.Fatalf("alice is not an admin: %+v", u)
	}
	idp.SetGroups("u-alice", []string{"tokenservice-users"})
	if status, body := ssoSignIn(t, browserless(t), s, "alice@example.com"); status != http.StatusOK {
		t.Fatalf("second sign-in: %d %.300s", status, body)
	}
	if u, _ := s.app.Users().GetByUsername(ctx, op, "alice@example.com"); u == nil || u.Admin {
		t.Errorf("alice left the admin group but is still an admin: %+v", u)
	}
}

// A callback is accepted once, in the browser that started its sign-in:
// replayed (in that browser or with its cookie), forged (another state),
// or sent without the sign-in's cookie, it is refused and nobody is signed in.
func TestAReplayedOrForgedCallbackIsRefused(t *testing.T) {
	idp := startIdentityProvider(t)
	s := startSSOService(t, "sqlite", idp)
	c := browserless(t)
	callback := ssoToCallback(t, c, s, "bob@example.com")
	u, _ := url.Parse(s.httpURL)
	var signInCookie *http.Cookie
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "tokenservice-sign-in" {
			signInCookie = ck
		}
	}
	if signInCookie == nil {
		t.Fatal("no sign-in cookie was set")
	}
	resp, err := c.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("the first callback: %d %.300s", resp.StatusCode, body)
	}

	refused := func(name string, c *http.Client, to string) {
		t.Helper()
		resp, err := c.Get(to)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Sign-in refused") {
			t.Errorf("%s: %d %.300s, want 403 and the refusal page", name, resp.StatusCode, body)
		}
		for _, ck := range resp.Cookies() {
			if strings.HasSuffix(ck.Name, "session") && ck.MaxAge >= 0 {
				t.Errorf("%s: a session cookie was set", name)
			}
		}
	}
	refused("replayed in the same browser", c, callback)
	withCookie := browserless(t)
	withCookie.Jar.SetCookies(u, []*http.Cookie{signInCookie})
	refused("replayed with the sign-in's cookie", withCookie, callback)
	refused("without the sign-in's cookie", browserless(t), callback)

	// A forged callback: a fresh sign-in's cookie, another sign-in's state.
	fresh := browserless(t)
	other := ssoToCallback(t, fresh, s, "bob@example.com")
	forged, _ := url.Parse(other)
	q := forged.Query()
	q.Set("state", "forged-"+q.Get("state"))
	forged.RawQuery = q.Encode()
	refused("with a forged state", fresh, forged.String())
	// ...which did not spend the browser's own sign-in: its callback works.
	resp, err = fresh.Get(other)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Errorf("the real callback after a forged one: %d %.300s", resp.StatusCode, body)
	}

	reasons := map[string]int{}
	for _, ev := range signInEvents(t, s) {
		reasons[ev.GetOutcome()+" "+ev.GetDetails()["reason"]]++
	}
	if reasons["denied state"] != 4 || reasons["success "] != 2 {
		t.Errorf("sign-in events: %v, want 2 successes and 4 denied for the state", reasons)
	}
}

// What an address may make the console write before it signs in (a
// sign-in row, a refusal's audit event, a device grant) is limited: past
// 30 a minute, 429 with Retry-After, and nothing written.
func TestAnonymousSignInsAreLimited(t *testing.T) {
	idp := startIdentityProvider(t)
	s := startSSOService(t, "sqlite", idp)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	codes := map[int]int{}
	for range 40 {
		resp, err := c.Get(s.httpURL + "/console/sso/start")
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if codes[http.StatusSeeOther] != 30 || codes[http.StatusTooManyRequests] != 10 {
		t.Errorf("40 sign-ins from one address: %v, want 30 sent to the provider and 10 refused", codes)
	}
	resp, err := c.PostForm(s.httpURL+"/console/cli/device", url.Values{"client_id": {"tokenservice-cli"}})
	if err != nil {
		t.Fatal(err)
	}
	if readAll(t, resp); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a device authorization past the limit: %d, want 429", resp.StatusCode)
	}
}
