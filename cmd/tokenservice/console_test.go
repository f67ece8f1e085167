package main

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// consoleClient is a browser without pages, signed in to s's console with
// a password (the sign-in form's CSRF token taken from its page).
func consoleClient(t *testing.T, s *service, username, pw string) (*http.Client, *http.Response) {
	t.Helper()
	c := browserless(t)
	token := formToken(t, c, s.httpURL+"/console/sign-in?break-glass=1") // the form's link where passwords are for admins only
	resp := consolePost(t, c, s, "/console/sign-in", url.Values{"csrf": {token}, "username": {username}, "password": {pw}})
	return c, resp
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formToken reads the CSRF token of the first form on page.
func formToken(t *testing.T, c *http.Client, page string) string {
	t.Helper()
	resp, err := c.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%s (%d) has no CSRF field:\n%.400s", page, resp.StatusCode, body)
	}
	return m[1]
}

// consolePost posts a form as the console's own page does: Origin this host.
func consolePost(t *testing.T, c *http.Client, s *service, path string, form url.Values) *http.Response {
	t.Helper()
	return consolePostFrom(t, c, s, s.httpURL, path, form)
}

func consolePostFrom(t *testing.T, c *http.Client, s *service, origin, path string, form url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.httpURL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// sessionCookie returns the Set-Cookie of the session in resp's chain.
func sessionSetCookie(resp *http.Response) string {
	for r := resp; r != nil; r = r.Request.Response {
		for _, v := range r.Header.Values("Set-Cookie") {
			if strings.Contains(v, "tokenservice-session=") && !strings.Contains(v, "Max-Age=0") {
				return v
			}
		}
		if r.Request == nil {
			break
		}
	}
	return ""
}

// The session cookie is HttpOnly, SameSite=Strict, for the whole host;
// over TLS (an https issuer: here or at a proxy in front) it is Secure with
// the __Host- prefix. Every page carries a CSP with no inline script, and
// no page has an inline script or handler.
func TestConsoleCookiesAndHeaders(t *testing.T) {
	for _, tc := range []struct {
		issuer, name string
		secure       bool
	}{{"http://tokenservice.test", "tokenservice-session", false}, {"https://tokens.example.com", "__Host-tokenservice-session", true}} {
		s := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_ISSUER", tc.issuer)
		s.mustUser(t, "alice", "human")
		c := browserless(t)
		token := formToken(t, c, s.httpURL+"/console/sign-in")
		// The client's jar would not send a Secure cookie over http: read the header.
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		origin := s.httpURL // behind a proxy that ends TLS, the browser's Origin is https
		if tc.secure {
			origin = strings.Replace(origin, "http://", "https://", 1)
		}
		resp := consolePostFrom(t, c, s, origin, "/console/sign-in", url.Values{"csrf": {token}, "username": {"alice"}, "password": {password}})
		readAll(t, resp)
		set := sessionSetCookie(resp)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(set, tc.name+"=") {
			t.Fatalf("%s: sign-in answered %d with %q, want 303 setting %s", tc.issuer, resp.StatusCode, set, tc.name)
		}
		for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
			if !strings.Contains(set, want) {
				t.Errorf("%s: the session cookie %q lacks %s", tc.issuer, set, want)
			}
		}
		if strings.Contains(set, "Secure") != tc.secure || strings.Contains(set, "Domain=") {
			t.Errorf("%s: the session cookie %q: Secure should be %v, and no Domain", tc.issuer, set, tc.secure)
		}
	}

	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "alice", "human")
	c, resp := consoleClient(t, s, "alice", password)
	readAll(t, resp)
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|\son[a-z]+\s*=|javascript:|style=`)
	for _, path := range []string{"/console/sign-in", "/console/", "/console/tokens/new", "/console/session-expired", "/console/nope"} {
		resp, err := c.Get(s.httpURL + path)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %s", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP %q allows inline code", path, csp)
		}
		if m := inline.FindString(body); m != "" {
			t.Errorf("%s: the page has inline code or style: %q", path, m)
		}
		if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: Cache-Control %q, X-Frame-Options %q", path, resp.Header.Get("Cache-Control"), resp.Header.Get("X-Frame-Options"))
		}
	}
}

// Every state change needs the session's CSRF token and, when the browser
// says, this origin: a form from another page changes nothing.
func TestConsoleRefusesCrossSiteForms(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		aliceID := s.mustUser(t, "alice", "human")
		c, resp := consoleClient(t, s, "alice", password)
		readAll(t, resp)
		token := formToken(t, c, s.httpURL+"/console/tokens/new")
		create := url.Values{"note": {"x"}, "expires": {"7d"}, "scope": {"tokens:read"}}
		with := func(csrf string) url.Values {
			v := url.Values{"csrf": {csrf}}
			for k, vs := range create {
				v[k] = vs
			}
			return v
		}
		for name, resp := range map[string]*http.Response{
			"no token":       consolePost(t, c, s, "/console/tokens", create),
			"a wrong token":  consolePost(t, c, s, "/console/tokens", with(token[:len(token)-2]+"xx")),
			"another origin": consolePostFrom(t, c, s, "https://evil.example", "/console/tokens", with(token)),
			"origin null":    consolePostFrom(t, c, s, "null", "/console/tokens", with(token)),
			"another scheme": consolePostFrom(t, c, s, strings.Replace(s.httpURL, "http://", "https://", 1), "/console/tokens", with(token)),
		} {
			if body := readAll(t, resp); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: %d, want 403\n%.300s", name, resp.StatusCode, body)
			}
		}
		// Sign-out too: a cross-site form does not end the session.
		readAll(t, consolePostFrom(t, c, s, "https://evil.example", "/console/sign-out", url.Values{"csrf": {token}}))
		list, _, err := s.app.Tokens().List(context.Background(), users.Operator(), tokens.ListInput{UserID: aliceID})
		if err != nil || len(list) != 0 {
			t.Fatalf("alice's tokens after the refused forms: %d (%v), want none", len(list), err)
		}
		resp = consolePost(t, c, s, "/console/tokens", with(token))
		if body := readAll(t, resp); resp.StatusCode != http.StatusCreated || !strings.Contains(body, "tks_") {
			t.Errorf("the console's own form: %d %.300s", resp.StatusCode, body)
		}
		// The password form before sign-in: the double-submitted token.
		fresh := browserless(t)
		formToken(t, fresh, s.httpURL+"/console/sign-in")
		resp = consolePost(t, fresh, s, "/console/sign-in", url.Values{"csrf": {"guess"}, "username": {"alice"}, "password": {password}})
		if body := readAll(t, resp); resp.StatusCode != http.StatusForbidden {
			t.Errorf("sign-in with a wrong CSRF token: %d %.200s", resp.StatusCode, body)
		}
	})
}

// The API takes bearer tokens only: the console's cookie, sent to it by a
// browser, authenticates nothing.
func TestTheAPIRefusesTheConsoleCookie(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "alice", "human")
	c, resp := consoleClient(t, s, "alice", password)
	readAll(t, resp)
	u, _ := url.Parse(s.httpURL)
	if len(c.Jar.Cookies(u)) == 0 {
		t.Fatal("no session cookie")
	}
	for _, path := range []string{"/v1alpha1/tokens", "/v1alpha1/users/me"} {
		resp, err := c.Get(s.httpURL + path)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with the console's cookie: %d %.200s, want 401", path, resp.StatusCode, body)
		}
	}
}

// Sign-out ends the session on the server: its cookie, kept, no longer
// works. So does a change of password; and a session ends unused past the
// idle timeout.
func TestConsoleSessionsEnd(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "mysql"), "TOKENSERVICE_CONSOLE_IDLE_TIMEOUT", "2s")
	aliceID := s.mustUser(t, "alice", "human")
	c, resp := consoleClient(t, s, "alice", password)
	readAll(t, resp)
	u, _ := url.Parse(s.httpURL)
	kept := c.Jar.Cookies(u)
	signedIn := func(c *http.Client) bool {
		resp, err := c.Get(s.httpURL + "/console/")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(readAll(t, resp), "Signed in as") && resp.Request.URL.Path == "/console/"
	}
	if !signedIn(c) {
		t.Fatal("not signed in")
	}
	token := formToken(t, c, s.httpURL+"/console/")
	resp = consolePost(t, c, s, "/console/sign-out", url.Values{"csrf": {token}})
	if readAll(t, resp); resp.Request.URL.Path != "/console/sign-in" {
		t.Errorf("sign-out ended at %s", resp.Request.URL)
	}
	replay := browserless(t)
	replay.Jar.SetCookies(u, kept)
	if signedIn(replay) {
		t.Error("the session's cookie still works after sign-out")
	}

	// A new password ends the sessions: whoever held the old one may hold them.
	c, resp = consoleClient(t, s, "alice", password)
	readAll(t, resp)
	if !signedIn(c) {
		t.Fatal("not signed in again")
	}
	r := rpc{t: t, c: s.grpcCaller()}
	if err := r.c.call(context.Background(), pb.UserService_ChangePassword_FullMethodName, r.login("alice"),
		&pb.ChangePasswordRequest{UserId: aliceID, OldPassword: password, NewPassword: "a brand new passphrase"},
		&pb.ChangePasswordResponse{}); err != nil {
		t.Fatalf("changing the password: %v", err)
	}
	if signedIn(c) {
		t.Error("the session outlived a change of password")
	}

	c, resp = consoleClient(t, s, "alice", "a brand new passphrase")
	readAll(t, resp)
	if !signedIn(c) {
		t.Fatal("not signed in with the new password")
	}
	time.Sleep(2500 * time.Millisecond)
	if signedIn(c) {
		t.Error("the session outlived the idle timeout")
	}
}

// With passwords for admins only (break-glass), a person's right password
// is refused, in the console and the API alike, with a word on why; an
// admin's works.
func TestPasswordsForAdminsOnly(t *testing.T) {
	idp := startIdentityProvider(t)
	s := startSSOService(t, "sqlite", idp, "TOKENSERVICE_PASSWORD_SIGN_IN", "admins")
	s.mustUser(t, "bob", "human")
	s.mustUser(t, "root", "admin")

	// The right password and a wrong one get one answer: a guess is not told it was right.
	for _, pw := range []string{password, "wrong password"} {
		_, resp := consoleClient(t, s, "bob", pw)
		if body := readAll(t, resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Passwords are for administrators only") {
			t.Errorf("bob's password (%s) in the console: %d %.300s, want 401 saying passwords are for admins", pw, resp.StatusCode, body)
		}
		r := rpc{t: t, c: s.grpcCaller()}
		if _, err := r.create("", &pb.CreateTokenRequest{Username: "bob", Password: pw}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("bob's password (%s) through the API: %v, want unauthenticated", pw, err)
		}
	}
	c, resp := consoleClient(t, s, "root", password)
	readAll(t, resp)
	if resp.Request.URL.Path != "/console/" {
		t.Errorf("the break-glass admin's sign-in ended at %s", resp.Request.URL)
	}
	resp, err := c.Get(s.httpURL + "/console/sign-in")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	page := browserless(t)
	resp, _ = page.Get(s.httpURL + "/console/sign-in")
	if body := readAll(t, resp); strings.Contains(body, `id="password"`) || !strings.Contains(body, "break-glass") {
		t.Errorf("the sign-in page shows the password form to everyone, or hides the break-glass link:\n%.600s", body)
	}
}

// A person may try 10 device codes a minute (RFC 8628 §5.1: the code is
// short); a wrong one says so, past the limit 429.
func TestDeviceCodesTriedAreLimited(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "alice", "human")
	c, resp := consoleClient(t, s, "alice", password)
	readAll(t, resp)
	token := formToken(t, c, s.httpURL+"/console/device")
	codes := map[int]int{}
	for range 12 {
		resp := consolePost(t, c, s, "/console/device", url.Values{"csrf": {token}, "user_code": {"BCDF-GHJK"}})
		body := readAll(t, resp)
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusBadRequest && !strings.Contains(body, "No device is waiting for that code") {
			t.Errorf("a wrong code: %.300s", body)
		}
	}
	if codes[http.StatusBadRequest] != 10 || codes[http.StatusTooManyRequests] != 2 {
		t.Errorf("12 wrong codes: %v, want 10 answered and 2 refused", codes)
	}
}
