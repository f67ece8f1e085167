package verifier_test

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// gatewayMain is a service outside this module protecting a handler with
// the package, as the README shows (its audience and a scope required; the
// service runs on loopback, in plaintext): it answers with the token's
// subject.
const gatewayMain = `package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/tokenservice/tokenservice/pkg/verifier"
)

func main() {
	issuer, audience := os.Args[1], os.Args[2]
	v, err := verifier.New(context.Background(), verifier.Config{Issuer: issuer, Audience: audience, AllowInsecureLoopback: true})
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(lis.Addr())
	log.Fatal(http.Serve(lis, v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := verifier.ClaimsFromContext(r.Context())
		fmt.Fprint(w, claims.Subject)
	}), verifier.RequireScopes("orders:read"))))
}
`

// A program in its own module, importing the package as any service would,
// accepts the live service's access tokens minted for it with its scope,
// refuses tampered and missing ones, those for another audience (401) and
// those without its scope (403), and keeps accepting them, old and new,
// after the service restarts signing with a new key.
func TestExternalProgramAcceptsTheServiceTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program and starts the service twice")
	}
	bin := buildGateway(t)

	// The issuer is the service's own URL: it is needed before app.New and
	// must not change on restart, so a free port is found and released
	// first (and the program finds the keys by discovery, as a gateway would).
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	issuer := "http://" + addr
	cfg := apptest.Config(t, store.DriverSQLite) // the database outlives both servers
	cfg.Server.HTTPAddr = addr
	cfg.Server.Issuer, cfg.Minter.Issuer, cfg.Minter.Audience = issuer, issuer, issuer
	const orders = "https://orders.example.test" // the program's audience
	cfg.Minter.Resources, cfg.Tokens.Scopes = []string{orders}, []string{"orders:read"}

	gw := &gateway{}
	t.Cleanup(gw.stop) // it outlives the first server's subtest
	var apiToken, oldToken, subject string
	// Each server runs in a subtest: MustStart stops it as the subtest ends.
	if !t.Run("first server", func(t *testing.T) {
		a := apptest.MustStart(t, cfg)
		alice, err := a.Users().Create(t.Context(), users.Operator(), users.CreateInput{Username: "alice", Password: "correct horse battery staple"})
		if err != nil {
			t.Fatal(err)
		}
		subject = alice.ID
		if apiToken, _, err = a.Tokens().Create(t.Context(), &domain.Principal{User: alice, AllScopes: true}, tokens.CreateInput{}); err != nil {
			t.Fatal(err)
		}
		oldToken = exchange(t, a, tokens.ExchangeInput{APIToken: apiToken, Resource: orders})
		gw.start(t, bin, issuer, orders)

		gw.expect(t, "the service's token for the program", "Bearer "+oldToken, http.StatusOK, "", subject)
		gw.expect(t, "a tampered token", "Bearer "+withSubject(t, oldToken, "someone-else"), http.StatusUnauthorized,
			`Bearer realm="`+orders+`", error="invalid_token"`, "Unauthorized\n")
		gw.expect(t, "no token", "", http.StatusUnauthorized, `Bearer realm="`+orders+`"`, "Unauthorized\n")
		gw.expect(t, "a token for the service's own audience", "Bearer "+exchange(t, a, tokens.ExchangeInput{APIToken: apiToken}),
			http.StatusUnauthorized, `Bearer realm="`+orders+`", error="invalid_token"`, "Unauthorized\n")
		gw.expect(t, "a token for the program without its scope",
			"Bearer "+exchange(t, a, tokens.ExchangeInput{APIToken: apiToken, Resource: orders, Scopes: []string{"tokens:read"}}),
			http.StatusForbidden, `Bearer realm="`+orders+`", error="insufficient_scope", scope="orders:read"`, "Forbidden\n")
	}) {
		t.FailNow()
	}

	// The newest key signs: the next server uses this one at once.
	st, err := store.Open(cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := auth.NewSigningKey(rand.Reader, time.Now())
	if err == nil {
		_, err = st.AddSigningKey(t.Context(), newKey, newKey.CreateTime)
	}
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("second server, new signing key", func(t *testing.T) {
		a := apptest.MustStart(t, cfg)
		at := exchange(t, a, tokens.ExchangeInput{APIToken: apiToken, Resource: orders})
		if kid := keyID(t, at); kid != newKey.ID {
			t.Fatalf("the new token's kid is %q, want the new key's %q", kid, newKey.ID)
		}
		gw.expect(t, "a token signed with the new key", "Bearer "+at, http.StatusOK, "", subject)
		gw.expect(t, "the token signed with the old key", "Bearer "+oldToken, http.StatusOK, "", subject)
	})
}

// exchange returns the JWT of an access token the service mints for in.
func exchange(t *testing.T, a *app.App, in tokens.ExchangeInput) string {
	t.Helper()
	x, err := a.Tokens().Exchange(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	return x.AccessToken.JWT
}

// buildGateway writes gatewayMain as a module of its own that requires this
// one (replaced by this checkout) and builds it.
func buildGateway(t *testing.T) string {
	t.Helper()
	root, dir := moduleRoot(t), t.TempDir()
	gomod := "module example.test/gateway\n\ngo 1.26.0\n\n" +
		"require github.com/tokenservice/tokenservice v0.0.0\n\n" +
		"replace github.com/tokenservice/tokenservice => " + root + "\n"
	// This module's go.sum holds every checksum the program needs, so tidy
	// need not ask the checksum database.
	sums, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"go.mod": gomod, "go.sum": string(sums), "main.go": gatewayMain} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "gateway")
	for _, args := range [][]string{{"mod", "tidy"}, {"build", "-o", bin, "."}} {
		cmd := exec.Command("go", args...)
		// The test's own environment (GOPROXY, GOFLAGS, caches), in module
		// mode whatever it says, and outside any workspace.
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "GOFLAGS="+modFlags(os.Getenv("GOFLAGS")), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return bin
}

// modFlags returns GOFLAGS with -mod=mod in place of any -mod setting.
func modFlags(goflags string) string {
	flags := []string{"-mod=mod"}
	for _, f := range strings.Fields(goflags) {
		if !strings.HasPrefix(f, "-mod=") {
			flags = append(flags, f)
		}
	}
	return strings.Join(flags, " ")
}

// gateway is the running program.
type gateway struct {
	cmd *exec.Cmd
	url string
}

// start runs the program for issuer and audience and waits for the address
// it prints.
func (g *gateway) start(t *testing.T, bin, issuer, audience string) {
	t.Helper()
	g.cmd = exec.Command(bin, issuer, audience)
	g.cmd.Stderr = os.Stderr // log.Fatal's reason, if it fails
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case addr := <-line:
		if addr == "" {
			t.Fatal("the program exited before listening")
		}
		g.url = "http://" + addr + "/"
	case <-time.After(30 * time.Second):
		t.Fatal("the program printed no address within 30s")
	}
}

// expect sends a request with the Authorization header (none if empty) and
// checks the answer.
func (g *gateway) expect(t *testing.T, what, authorization string, wantCode int, wantChallenge, wantBody string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, g.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp.StatusCode != wantCode || resp.Header.Get("WWW-Authenticate") != wantChallenge || string(body) != wantBody {
		t.Errorf("%s: %s, WWW-Authenticate %q, body %q; want %d, %q, %q", what,
			resp.Status, resp.Header.Get("WWW-Authenticate"), body, wantCode, wantChallenge, wantBody)
	}
}

func (g *gateway) stop() {
	if g.cmd != nil && g.cmd.Process != nil {
		g.cmd.Process.Kill()
		g.cmd.Wait()
	}
}

// withSubject returns token with its payload's sub changed and the
// signature left as it was.
func withSubject(t *testing.T, token, sub string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	var claims map[string]any
	if err := json.Unmarshal(mustDecode(t, parts[1]), &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = sub
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// keyID returns the kid in a JWT's header.
func keyID(t *testing.T, token string) string {
	t.Helper()
	header, _, _ := strings.Cut(token, ".")
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(mustDecode(t, header), &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

func mustDecode(t *testing.T, segment string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(segment)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
