package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/internal/testlog"
	"github.com/tokenservice/tokenservice/pkg/bearer"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// Real gateways in front of the service (issue 23), each run from the
// example in deploy/gateways with its addresses substituted, each
// protecting an upstream that echoes the headers it receives.

// gatewayFixture is a service with a user and its credentials, and the
// upstream a gateway protects.
type gatewayFixture struct {
	svc      *service
	upstream string // host:port of the echoing upstream
	userID   string
	api      string // API token: orders:read tokens:read
	apiID    string
	access   string // access token of api: orders:read
	writer   string // API token with orders:write
	revoke   func(t *testing.T) (plaintext, access string)
}

func newGatewayFixture(t *testing.T, driver string) *gatewayFixture {
	t.Helper()
	return newGatewayFixtureWith(t, driver)
}

// newGatewayFixtureWith is newGatewayFixture with the service's settings
// extraEnv (pairs of variable and value) added.
func newGatewayFixtureWith(t *testing.T, driver string, extraEnv ...string) *gatewayFixture {
	t.Helper()
	s := startService(t, storetest.MustConfig(t, driver), append([]string{"TOKENSERVICE_SCOPES", "orders:read,orders:write"}, extraEnv...)...)
	ctx := context.Background()
	u, err := s.app.Users().Create(ctx, users.Operator(), users.CreateInput{Username: "gwen", Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	owner := &domain.Principal{User: u, AllScopes: true}
	create := func(scopes ...string) (string, string) {
		plain, tok, err := s.app.Tokens().Create(ctx, owner, tokens.CreateInput{Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return plain, tok.ID
	}
	exchange := func(plain string, scopes ...string) string {
		x, err := s.app.Tokens().Exchange(ctx, tokens.ExchangeInput{APIToken: plain, Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return x.AccessToken.JWT
	}
	f := &gatewayFixture{svc: s, userID: u.ID}
	f.api, f.apiID = create("orders:read", "tokens:read")
	f.access = exchange(f.api, "orders:read")
	f.writer, _ = create("orders:write")
	// A token used through the gateway, then revoked: returned with its
	// access token, the revocation done.
	f.revoke = func(t *testing.T) (string, string) {
		plain, id := create("orders:read")
		at := exchange(plain)
		return plain, at + "\x00" + id
	}
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.RequestURI(), "headers": r.Header})
	}))
	t.Cleanup(echo.Close)
	f.upstream = strings.TrimPrefix(echo.URL, "http://")
	return f
}

// delete revokes the token id.
func (f *gatewayFixture) delete(t *testing.T, id string) {
	t.Helper()
	u, err := f.svc.app.Users().Get(context.Background(), users.Operator(), f.userID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.app.Tokens().Delete(context.Background(), &domain.Principal{User: u, AllScopes: true}, id); err != nil {
		t.Fatal(err)
	}
}

// echoed is what the upstream received.
type echoed struct {
	Path    string
	Headers http.Header
}

// through sends a request through the gateway at base with the given
// headers; it returns the response and, if the upstream answered, what it
// received.
func through(t *testing.T, base, path string, header http.Header) (*http.Response, *echoed) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs // as given: lookalike spellings too
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	var e echoed
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("%s: the upstream's answer %q: %v", path, body, err)
	}
	return resp, &e
}

func authz(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// checkGateway runs what every per-request gateway must do, through the
// gateway at base: "/" needs any valid credential, "/admin/" orders:write.
func checkGateway(t *testing.T, f *gatewayFixture, base string) {
	t.Helper()
	// Valid credentials pass, with who the caller is and not the token;
	// what the client sent in the identity headers' names (and their
	// lookalike spellings) does not reach the upstream.
	for name, tc := range map[string]struct{ token, scopes string }{
		"API token":    {f.api, "orders:read tokens:read"},
		"access token": {f.access, "orders:read"},
	} {
		h := authz(tc.token)
		h["X-Tokenservice-User-Id"] = []string{"mallory"}
		h["X_tokenservice_user_id"] = []string{"mallory"}
		resp, e := through(t, base, "/orders?id=1", h)
		if e == nil {
			t.Fatalf("%s: %d, want 200", name, resp.StatusCode)
		}
		for k, want := range map[string]string{
			"X-Tokenservice-User-Id": f.userID, "X-Tokenservice-Username": "gwen",
			"X-Tokenservice-Scopes": tc.scopes, "X-Tokenservice-Token-Id": f.apiID,
		} {
			if got := e.Headers.Values(k); len(got) != 1 || got[0] != want {
				t.Errorf("%s: the upstream got %s %q, want %q", name, k, got, want)
			}
		}
		for k := range e.Headers {
			if strings.EqualFold(k, "Authorization") || strings.Contains(k, "_") {
				t.Errorf("%s: the upstream got %s: %q", name, k, e.Headers[k])
			}
		}
		if e.Path != "/orders?id=1" {
			t.Errorf("%s: the upstream got %q", name, e.Path)
		}
	}
	// Refused: the service's status and challenge reach the client.
	type refusal struct {
		path      string
		header    http.Header
		status    int
		challenge string
	}
	refusals := map[string]refusal{
		"no credential":         {"/orders", nil, 401, bearer.Missing},
		"not a bearer":          {"/orders", http.Header{"Authorization": {"Basic Z3dlbjpwdw=="}}, 401, bearer.InvalidRequest},
		"a wrong token":         {"/orders", authz(f.api[:len(f.api)-4] + "AAAA"), 401, bearer.InvalidToken},
		"a forged JWT":          {"/orders", authz(f.access[:len(f.access)-4] + "AAAA"), 401, bearer.InvalidToken},
		"a scope not held":      {"/admin/orders", authz(f.api), 403, bearer.InsufficientScope(bearer.Realm, "orders:write")},
		"an access token too":   {"/admin/orders", authz(f.access), 403, bearer.InsufficientScope(bearer.Realm, "orders:write")},
		"the route in capitals": {"/ADMIN/orders", authz(f.api), 403, bearer.InsufficientScope(bearer.Realm, "orders:write")},
		"the bare route":        {"/admin", authz(f.api), 403, bearer.InsufficientScope(bearer.Realm, "orders:write")},
	}
	plain, rest := f.revoke(t)
	access, id, _ := strings.Cut(rest, "\x00")
	for _, tok := range []string{plain, access} {
		if resp, _ := through(t, base, "/orders", authz(tok)); resp.StatusCode != http.StatusOK {
			t.Fatalf("a token to be revoked: %d before", resp.StatusCode)
		}
	}
	f.delete(t, id)
	// Revoked on the replica the gateway asks: refused at once.
	refusals["a revoked API token"] = refusal{"/orders", authz(plain), 401, bearer.InvalidToken}
	refusals["a revoked token's access token"] = refusal{"/orders", authz(access), 401, bearer.InvalidToken}
	for name, tc := range refusals {
		resp, _ := through(t, base, tc.path, tc.header)
		if got := resp.Header.Values("WWW-Authenticate"); resp.StatusCode != tc.status || len(got) != 1 || got[0] != tc.challenge {
			t.Errorf("%s: %d %q, want %d and one %q", name, resp.StatusCode, got, tc.status, tc.challenge)
		}
	}
	// The scope the route needs, held.
	h := authz(f.writer)
	if resp, e := through(t, base, "/admin/orders", h); e == nil {
		t.Errorf("a token with the route's scope: %d", resp.StatusCode)
	}
}

// freeAddr returns a 127.0.0.1 address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// exampleFile returns deploy/gateways/name with each of the pairs' old
// strings (which must be there) replaced by the new.
func exampleFile(t *testing.T, name string, pairs ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "gateways", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s has no %q to substitute", name, pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

// startGateway runs cmd until it listens on addr, and stops it when the
// test ends; its output goes to the test's log if the test fails.
func startGateway(t *testing.T, addr string, cmd *exec.Cmd) {
	t.Helper()
	var out testlog.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, all of which is killed at the end: nginx's
	// workers outlive a killed master, and hold its output open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s said:\n%s", filepath.Base(cmd.Path), out.String())
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after 20s:\n%s", cmd.Path, addr, out.String())
		}
	}
}

// TestNginxAuthRequest runs deploy/gateways/nginx.conf in Debian's nginx
// (make nginx installs it), on SQLite and MySQL.
func TestNginxAuthRequest(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/nginx"); statErr != nil {
			t.Fatalf("no nginx (make nginx installs Debian's): %v", err)
		}
		nginx = "/usr/sbin/nginx"
	}
	for _, driver := range []string{"sqlite", "mysql"} {
		t.Run(driver, func(t *testing.T) {
			f := newGatewayFixture(t, driver)
			dir := t.TempDir()
			listen := freeAddr(t)
			site := exampleFile(t, "nginx.conf",
				"server 127.0.0.1:8080;", "server "+strings.TrimPrefix(f.svc.httpURL, "http://")+";",
				"server 127.0.0.1:9000;", "server "+f.upstream+";",
				"listen 127.0.0.1:8000;", "listen "+listen+";")
			user := ""
			if os.Geteuid() == 0 {
				user = "user root root;" // workers would be nobody, who cannot enter the test's directory
			}
			main := fmt.Sprintf(`%s
worker_processes 1;
daemon off;
pid nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    include site.conf;
}
`, user)
			for name, content := range map[string]string{
				"nginx.conf": main, "site.conf": site,
				"tokenservice-identity.conf": exampleFile(t, "tokenservice-identity.conf"),
			} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
				t.Fatal(err)
			}
			startGateway(t, listen, exec.Command(nginx, "-p", dir+"/", "-e", filepath.Join(dir, "error.log"), "-c", "nginx.conf"))
			checkGateway(t, f, "http://"+listen)
		})
	}
}

// The forward-auth endpoint's real answers are what the OpenAPI 3
// document says (200, 400, 401, 403).
func TestForwardAuthMatchesTheSpec(t *testing.T) {
	f := newGatewayFixture(t, "sqlite")
	router := specRouter(t, f.svc.httpURL)
	for _, tc := range []struct {
		query  string
		header http.Header
		status int
	}{
		{"", authz(f.api), 200},
		{"scope=orders:read", authz(f.access), 200},
		{"", nil, 401},
		{"", authz("tks_not_one"), 401},
		{"scope=orders:write", authz(f.api), 403},
		{"scopes=x", authz(f.api), 400},
	} {
		req, err := http.NewRequest("GET", f.svc.httpURL+"/forward-auth?"+tc.query, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = tc.header.Clone()
		if req.Header == nil {
			req.Header = http.Header{}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("?%s: %d %s, want %d", tc.query, resp.StatusCode, body, tc.status)
		}
		validate(t, router, req, resp, body)
	}
}

// gatewayBinary returns bin/name, which `make gateways` (and make test)
// installs, failing the test when it is not there.
func gatewayBinary(t *testing.T, name string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", "bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no %s (make gateways installs it): %v", path, err)
	}
	return path
}

// TestCaddyForwardAuth runs deploy/gateways/Caddyfile in Caddy (from its Go
// module, pinned: make gateways), on SQLite and MySQL.
func TestCaddyForwardAuth(t *testing.T) {
	caddy := gatewayBinary(t, "caddy")
	for _, driver := range []string{"sqlite", "mysql"} {
		t.Run(driver, func(t *testing.T) {
			f := newGatewayFixture(t, driver)
			dir := t.TempDir()
			listen := freeAddr(t)
			conf := exampleFile(t, "Caddyfile",
				"forward_auth 127.0.0.1:8080", "forward_auth "+strings.TrimPrefix(f.svc.httpURL, "http://"),
				"reverse_proxy 127.0.0.1:9000", "reverse_proxy "+f.upstream,
				"http://127.0.0.1:8000", "http://"+listen)
			path := filepath.Join(dir, "Caddyfile")
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(caddy, "run", "--config", path, "--adapter", "caddyfile")
			// Caddy keeps its state under XDG's directories: the test's own.
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
			startGateway(t, listen, cmd)
			checkGateway(t, f, "http://"+listen)
		})
	}
}

// TestOfflineJWTGateway puts oauth2-proxy (pinned, from its Go module: make
// gateways) in front of the upstream as a gateway that verifies access
// tokens offline, through the service's OpenID discovery and JWKS, with no
// call to the service per request, across a signing-key rotation. (Caddy's
// JWT modules and KrakenD are not served by the module proxy here;
// oauth2-proxy is the maintained reverse proxy that verifies bearer JWTs
// this way.) Its trade-off, which the test shows: a revoked token's access
// tokens pass until their exp.
func TestOfflineJWTGateway(t *testing.T) {
	proxy := gatewayBinary(t, "oauth2-proxy")
	addr := freeAddr(t)
	issuer := "http://" + addr
	const propagation = 1200 * time.Millisecond // the JWKS max-age and the key reload interval, and some
	f := newGatewayFixtureWith(t, "sqlite",
		"TOKENSERVICE_HTTP_ADDR", addr, "TOKENSERVICE_ISSUER", issuer,
		"TOKENSERVICE_KEY_PROPAGATION_DELAY", propagation.String(), "TOKENSERVICE_KEY_RELOAD_INTERVAL", "100ms",
		"TOKENSERVICE_JWKS_MAX_AGE", "1s",
		"TOKENSERVICE_ACCESS_TOKEN_REUSE", "0")
	listen := freeAddr(t)
	startGateway(t, listen, exec.Command(proxy,
		"--http-address="+listen, "--upstream=http://"+f.upstream+"/",
		"--provider=oidc", "--oidc-issuer-url="+issuer,
		// The access tokens' aud: the service's --audience (its issuer
		// by default), or the API's own resource.
		"--client-id="+issuer, "--client-secret=unused",
		"--cookie-secret=0123456789abcdef0123456789abcdef", "--cookie-secure=false", "--email-domain=*",
		"--skip-jwt-bearer-tokens=true", "--bearer-token-login-fallback=false", "--api-route=^/",
		"--pass-user-headers=true", "--skip-provider-button=true"))
	base := "http://" + listen
	passes := func(what, token string) {
		t.Helper()
		resp, e := through(t, base, "/orders", authz(token))
		if e == nil {
			t.Fatalf("%s: %d, want 200", what, resp.StatusCode)
		}
		if got := e.Headers.Get("X-Forwarded-User"); got != f.userID {
			t.Errorf("%s: the upstream got X-Forwarded-User %q, want the sub %q", what, got, f.userID)
		}
	}
	refused := func(what string, header http.Header) {
		t.Helper()
		if resp, _ := through(t, base, "/orders", header); resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 401 or 403", what, resp.StatusCode)
		}
	}
	passes("an access token", f.access)
	refused("no credential", nil)
	refused("an API token (not a JWT: only the service checks those)", authz(f.api))
	refused("a forged access token", authz(f.access[:len(f.access)-4]+"AAAA"))

	// A new signing key: the gateway fetches the JWKS again for its kid.
	oldKID := kidOf(t, f.access)
	op := &shell{t: t, env: f.svc.env}
	op.must("", "keys", "rotate", "--key-propagation-delay", propagation.String())
	var fresh string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		x, err := f.svc.app.Tokens().Exchange(context.Background(), tokens.ExchangeInput{APIToken: f.api})
		if err != nil {
			t.Fatal(err)
		}
		if fresh = x.AccessToken.JWT; kidOf(t, fresh) != oldKID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no access token signed by the new key within 10s of the rotation")
		}
	}
	passes("an access token of the new key", fresh)
	passes("an access token of the old key, still published", f.access)

	// Offline, a revocation waits for the access token's exp.
	plain, rest := f.revoke(t)
	access, id, _ := strings.Cut(rest, "\x00")
	_ = plain
	f.delete(t, id)
	passes("a revoked token's access token, before its exp (the offline trade-off)", access)
}

// Envoy's HTTP ext_authz asks at /forward-auth/ followed by the client's
// path, which may carry what a log must not (a reset link's secret): the
// log line names the route, not the path.
func TestForwardAuthLogsNoClientPath(t *testing.T) {
	f := newGatewayFixture(t, "sqlite")
	const secret = "SECRETPATHPART123"
	req, err := http.NewRequest("GET", f.svc.httpURL+"/forward-auth/reset/"+secret+"?x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = authz(f.api)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d", resp.StatusCode)
	}
	var logged bool
	for deadline := time.Now().Add(5 * time.Second); !logged && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, line := range f.svc.logs.JSONLines() {
			logged = logged || line["http.path"] == "/forward-auth/…"
		}
	}
	if !logged {
		t.Error("no log line for the check under /forward-auth/")
	}
	if strings.Contains(f.svc.logs.String(), secret) {
		t.Error("the log has the client's path")
	}
}

// With the database cut (MySQL through the fault proxy, no token cache), the
// endpoint answers 503 with Retry-After, which every gateway turns into a
// refusal, never a pass; and 200 again once the database is back.
func TestForwardAuthFailsClosedWithoutTheDatabase(t *testing.T) {
	db, proxy := storetest.MustMySQLViaProxy(t)
	s := startService(t, db, "TOKENSERVICE_DB_QUERY_TIMEOUT", faultQueryTimeout.String(), "TOKENSERVICE_CACHE_TTL", "0")
	s.mustUser(t, "alice", "human")
	tok := rpc{t: t, c: s.grpcCaller()}.login("alice")
	check := func() *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", s.httpURL+"/forward-auth", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = authz(tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := check(); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the cut: %d", resp.StatusCode)
	}
	proxy.Cut()
	if resp := check(); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("database cut: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	proxy.Restore()
	for deadline := time.Now().Add(10 * time.Second); check().StatusCode != http.StatusOK; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("still refused 10s after the database came back")
		}
	}
}
