package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// shell is someone at a terminal with the tokenservice binary: an
// environment of their own (where the server is, where credentials go).
type shell struct {
	t   *testing.T
	env map[string]string
}

// newShell returns a shell pointed at s, with a fresh config directory.
func (s *service) newShell(t *testing.T) *shell {
	return &shell{t: t, env: map[string]string{
		"TOKENSERVICE_ADDR": s.grpcAddr,
		"XDG_CONFIG_HOME":   t.TempDir(),
		"HOME":              t.TempDir(),
	}}
}

// run runs a command line and returns its stdout, its stderr and the exit
// status the process would end with.
func (sh *shell) run(stdin string, args ...string) (stdout, stderr string, code int) {
	sh.t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"tokenservice"}, args...), func(k string) string { return sh.env[k] },
		strings.NewReader(stdin), &out, &errOut)
	if err != nil {
		errOut.WriteString("tokenservice: " + err.Error() + "\n" + usageHint(err))
	}
	return out.String(), errOut.String(), exitCode(err)
}

// must runs a command line that must succeed and returns its stdout.
func (sh *shell) must(stdin string, args ...string) string {
	sh.t.Helper()
	out, errOut, code := sh.run(stdin, args...)
	if code != 0 {
		sh.t.Fatalf("tokenservice %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// want runs a command line that must fail with exit status code and say so on stderr.
func (sh *shell) want(code int, says, stdin string, args ...string) {
	sh.t.Helper()
	out, errOut, got := sh.run(stdin, args...)
	if got != code || !strings.Contains(errOut, says) {
		sh.t.Errorf("tokenservice %s: exit %d, stderr %q; want exit %d saying %q (stdout %q)", strings.Join(args, " "), got, errOut, code, says, out)
	}
}

// A team's path through the client CLI: log in, make a machine user and a
// token for it, exchange that in a script, look around, clean up, log out.
func TestClientWorkflow(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		s.mustUser(t, "alice", "admin")
		sh := s.newShell(t)

		out := sh.must("alice\n"+password+"\n", "login")
		if !strings.Contains(out, "Logged in to "+s.grpcAddr+" as alice") {
			t.Errorf("login said %q", out)
		}
		path := filepath.Join(sh.env["XDG_CONFIG_HOME"], "tokenservice", "credentials.json")
		info, err := os.Stat(path)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("the credentials file: %v, %v; want mode 0600", info, err)
		}
		var saved savedCredentials
		b, _ := os.ReadFile(path)
		if err := json.Unmarshal(b, &saved); err != nil || !auth.LooksLikeAPIToken(saved.Token) || saved.Addr != s.grpcAddr {
			t.Fatalf("the credentials file holds %s", b)
		}

		var me pb.GetUserResponse
		if err := protojson.Unmarshal([]byte(sh.must("", "whoami", "--json")), &me); err != nil || me.GetUser().GetUsername() != "alice" || !me.GetUser().GetAdmin() {
			t.Errorf("whoami --json: %v, %v", &me, err)
		}
		if out := sh.must("", "user", "create-machine", "ci-bot"); !strings.Contains(out, "ci-bot") || !strings.Contains(out, "machine") {
			t.Errorf("user create-machine printed %q", out)
		}
		botToken := strings.TrimSpace(sh.must("", "token", "create", "--user", "ci-bot", "--note", "CI pipeline", "--expires-in", "14d"))
		if !auth.LooksLikeAPIToken(botToken) {
			t.Fatalf("token create printed %q on stdout, want only the token", botToken)
		}

		// The script: the machine user's token in TOKENSERVICE_TOKEN, no login.
		script := &shell{t: t, env: map[string]string{"TOKENSERVICE_ADDR": s.grpcAddr, "TOKENSERVICE_TOKEN": botToken, "HOME": t.TempDir()}}
		access := strings.TrimSpace(script.must("", "token", "exchange"))
		if strings.Count(access, ".") != 2 {
			t.Fatalf("token exchange printed %q, want only a JWT", access)
		}
		a := rpc{t, s.grpcCaller()}
		got, err := a.users().GetUser(as(access), &pb.GetUserRequest{UserId: "me"})
		if err != nil || got.GetUser().GetUsername() != "ci-bot" {
			t.Errorf("the exchanged access token is ci-bot's: %v, %s", got.GetUser(), describe(err))
		}
		if out := script.must("", "whoami"); !strings.Contains(out, "ci-bot") {
			t.Errorf("whoami with TOKENSERVICE_TOKEN: %q", out)
		}

		// Listing, showing and deleting.
		var listed pb.ListTokensResponse
		if err := protojson.Unmarshal([]byte(sh.must("", "token", "list", "--user", "ci-bot", "--json")), &listed); err != nil || len(listed.GetTokens()) != 1 {
			t.Fatalf("token list --user ci-bot --json: %v, %v", &listed, err)
		}
		if tok := listed.GetTokens()[0]; tok.Id != idOf(botToken) || tok.Note != "CI pipeline" || tok.ExpireTime == nil {
			t.Errorf("token list --user ci-bot --json: %v", tok)
		}
		if out := sh.must("", "token", "get", idOf(botToken)); !strings.Contains(out, "CI pipeline") || strings.Contains(out, botToken) {
			t.Errorf("token get printed %q", out)
		}
		if out := sh.must("", "user", "list"); !strings.Contains(out, "alice") || !strings.Contains(out, "ci-bot") {
			t.Errorf("user list printed %q", out)
		}
		sh.must("", "token", "delete", idOf(botToken))
		script.want(exitCredentials, "invalid or missing credentials", "", "token", "exchange")
		sh.must("", "user", "delete", "ci-bot")
		if out := sh.must("", "user", "list"); strings.Contains(out, "ci-bot") {
			t.Errorf("the deleted machine user is still listed:\n%s", out)
		}

		// Logging out deletes the token on the server and the file.
		sh.must("", "logout")
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("the credentials file after logout: %v", err)
		}
		_, err = a.list(saved.Token, &pb.ListTokensRequest{})
		wantCode(t, "the login's token after logout", err, codes.Unauthenticated)
		sh.want(exitCredentials, "not logged in", "", "whoami")
	})
}

// Exit statuses tell usage errors, refused credentials and an unreachable
// server apart; errors go to stderr.
func TestClientExitCodes(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "bob", "human")
	sh := s.newShell(t)
	sh.want(exitCredentials, "not logged in", "", "token", "list")
	sh.want(exitCredentials, "wrong username or password", "bob\nwrong password\n", "login")
	sh.must(password+"\n", "login", "bob")
	sh.want(exitCredentials, "only an admin may create human users; for a machine user: tokenservice user create-machine carol", password+"\n", "user", "create", "carol")
	sh.want(exitUsage, "unknown command \"frobnicate\"", "", "token", "frobnicate")
	sh.want(exitUsage, "missing ID", "", "token", "get")
	sh.want(exitUsage, "unknown flag: --bogus", "", "token", "list", "--bogus")
	sh.want(exitUsage, "--expires-in", "", "token", "create", "--expires-in", "soon")
	sh.want(exitError, "no user \"nobody\"", "", "token", "create", "--user", "nobody")
	sh.want(exitError, "token not found", "", "token", "get", "nosuchtoken00000")
	// (With a token of its own: the login's goes only to its server.)
	script := &shell{t: t, env: map[string]string{"HOME": t.TempDir(), "TOKENSERVICE_TOKEN": "tks_AAAAAAAAAAAAAAAA_x"}}
	script.want(exitUnreachable, "did not answer: nothing listens there (connection refused)", "", "whoami", "--addr", "127.0.0.1:1")
	script.want(exitUnreachable, "is that the REST address?", "", "whoami", "--addr", strings.TrimPrefix(s.httpURL, "http://"))
	s.mustUser(t, "dave", "human")
	sh.want(exitError, "no user \"dave\" that you may see", "", "token", "list", "--user", "dave")
}

// The credentials file is private: a group- or world-readable one is refused.
func TestCredentialsFileMustBePrivate(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "bob", "human")
	sh := s.newShell(t)
	sh.must(password+"\n", "login", "bob")
	path := filepath.Join(sh.env["XDG_CONFIG_HOME"], "tokenservice", "credentials.json")
	for _, mode := range []os.FileMode{0o640, 0o604} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		sh.want(exitError, "readable or writable by others", "", "whoami")
	}
	// Logging in again replaces such a file with a private one, revoking its token.
	b, _ := os.ReadFile(path)
	var exposed savedCredentials
	json.Unmarshal(b, &exposed)
	sh.must(password+"\n", "login", "bob")
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("the credentials file after logging in again: %v, %v", info, err)
	}
	_, err := rpc{t, s.grpcCaller()}.list(exposed.Token, &pb.ListTokensRequest{})
	wantCode(t, "the exposed file's token after logging in again", err, codes.Unauthenticated)
	sh.must("", "whoami")
	// The login's token is sent only to the server it came from.
	other := startService(t, storetest.MustConfig(t, "sqlite"))
	sh.want(exitCredentials, "not logged in to "+other.grpcAddr, "", "whoami", "--addr", other.grpcAddr)
	// Without XDG_CONFIG_HOME, HOME/.config (XDG's default).
	home := &shell{t: t, env: map[string]string{"TOKENSERVICE_ADDR": s.grpcAddr, "HOME": t.TempDir()}}
	home.must(password+"\n", "login", "bob")
	if _, err := os.Stat(filepath.Join(home.env["HOME"], ".config", "tokenservice", "credentials.json")); err != nil {
		t.Errorf("login without XDG_CONFIG_HOME: %v", err)
	}
}

// --help is on stdout with exit status 0 for every command; a command line
// that is wrong gets a message on stderr and exit status 2; the client and
// server commands are apart; a flag that grants privilege is never read from
// the environment.
func TestHelpAndUsage(t *testing.T) {
	sh := &shell{t: t, env: map[string]string{"HOME": t.TempDir()}}
	var walk func(path []string, cmd *cobra.Command)
	walk = func(path []string, cmd *cobra.Command) {
		out, errOut, code := sh.run("", append(path, "--help")...)
		if code != 0 || errOut != "" || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", strings.Join(path, " "), code, out, errOut)
		}
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() {
				walk(append(append([]string{}, path...), sub.Name()), sub)
			}
		}
	}
	walk(nil, rootCommand(&env{getenv: func(string) string { return "" }}))

	// Shell completion, as cobra makes it.
	for _, shell := range []string{"bash", "zsh"} {
		out, errOut, code := sh.run("", "completion", shell)
		if code != 0 || !strings.Contains(out, "tokenservice") || errOut != "" {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, code, len(out), errOut)
		}
	}

	help, _, _ := sh.run("", "--help")
	client, server := strings.Index(help, "Client commands"), strings.Index(help, "Server commands")
	if client < 0 || server < 0 || !strings.Contains(help, "Exit status") {
		t.Fatalf("the top-level help does not set client and server commands apart, or lacks the exit statuses:\n%s", help)
	}
	for _, name := range []string{"login", "token", "user", "whoami"} {
		if i := strings.Index(help, "\n  "+name+" "); i < client || i > server {
			t.Errorf("%s is not among the client commands:\n%s", name, help)
		}
	}
	for _, name := range []string{"serve", "db"} {
		if i := strings.Index(help, "\n  "+name+" "); i < server {
			t.Errorf("%s is not among the server commands:\n%s", name, help)
		}
	}

	for _, args := range [][]string{{}, {"frobnicate"}, {"user"}, {"user", "frobnicate"}, {"db"}, {"db", "create-user"}, {"serve", "extra"}, {"serve", "--no-such-flag"}} {
		out, errOut, code := sh.run("", args...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errOut, "tokenservice: ") || !strings.Contains(errOut, "--help") {
			t.Errorf("tokenservice %s: exit %d, stdout %q, stderr %q; want exit 2 with an error line and a pointer to --help on stderr",
				strings.Join(args, " "), code, out, errOut)
		}
	}
}

// The server-side commands open the database directly: the first admin, a
// lost password, a user to remove. They apply the API's user rules.
func TestServerSideUserCommands(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		a := rpc{t, s.grpcCaller()}
		op := &shell{t: t, env: s.env}
		op.must(password+"\n", "db", "create-user", "--admin", "frank")
		op.must("", "db", "create-user", "--machine", "--owner", "frank", "frank-bot")
		if out := op.must("", "db", "list-users"); !strings.Contains(out, "frank-bot") || !strings.Contains(out, "machine") {
			t.Errorf("db list-users:\n%s", out)
		}
		for name, tc := range map[string]struct{ stdin, args string }{
			"short password":         {"short\n", "db create-user gina"},
			"duplicate username":     {password + "\n", "db create-user FRANK"},
			"bad username":           {password + "\n", "db create-user gina!"},
			"machine with no owner":  {"", "db create-user --machine --owner nobody bot2"},
			"machine owning machine": {"", "db create-user --machine --owner frank-bot bot3"},
			"password from a flag":   {"", "db create-user --password hunter22 gina"},
			"machine set-password":   {password + "\n", "db set-password frank-bot"},
		} {
			out, errOut, code := op.run(tc.stdin, strings.Fields(tc.args)...)
			if code == 0 {
				t.Errorf("%s: succeeded:\n%s%s", name, out, errOut)
			}
			if leak := internals(errOut); leak != "" {
				t.Errorf("%s: the error speaks of %s: %s", name, leak, errOut)
			}
		}
		// An exported TOKENSERVICE_ADMIN does not make new users admins.
		withAdminVar := &shell{t: t, env: map[string]string{"TOKENSERVICE_ADMIN": "true", "TOKENSERVICE_MACHINE": "true", "TOKENSERVICE_OWNER": "frank"}}
		for k, v := range s.env {
			withAdminVar.env[k] = v
		}
		withAdminVar.must(password+"\n", "db", "create-user", "ivy")
		if out := op.must("", "db", "list-users"); !regexp.MustCompile(`ivy\s+human\s+false`).MatchString(out) {
			t.Errorf("ivy, made with TOKENSERVICE_ADMIN=true exported, is not a plain human user:\n%s", out)
		}

		old := a.login("frank")
		op.must("a brand new password\n", "db", "set-password", "frank")
		_, err := a.create("", &pb.CreateTokenRequest{Username: "frank", Password: password})
		wantCode(t, "the old password after set-password", err, codes.Unauthenticated)
		if _, err := a.create("", &pb.CreateTokenRequest{Username: "frank", Password: "a brand new password"}); err != nil {
			t.Errorf("the new password: %s", describe(err))
		}
		op.must("", "db", "delete-user", "frank")
		_, err = a.list(old, &pb.ListTokensRequest{})
		wantCode(t, "a deleted user's token", err, codes.Unauthenticated)
		if out := op.must("", "db", "list-users"); strings.Contains(out, "frank") {
			t.Errorf("deleted users still listed:\n%s", out)
		}
		op.must("", "db", "migrate")
	})
}

// A db command pointed at an SQLite file that does not exist says so; it
// does not make an empty database (only db migrate does).
func TestDBCommandsRefuseAMissingDatabase(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "not-here.db")
	sh := &shell{t: t, env: map[string]string{"TOKENSERVICE_DB_DSN": missing}}
	sh.want(exitError, "no database at "+missing, "", "db", "list-users")
	sh.want(exitError, "no database at "+missing, password+"\n", "db", "create-user", "alice")
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a refused db command left a database file: %v", err)
	}
	sh.must("", "db", "migrate")
	sh.must(password+"\n", "db", "create-user", "alice")
}

func TestMaxTokenLifetime(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_MAX_TOKEN_LIFETIME", "1h")
	a := rpc{t, s.grpcCaller()}
	s.mustUser(t, "hank", "human")
	created := a.mustCreate("", &pb.CreateTokenRequest{Username: "hank", Password: password})
	if d := time.Until(created.GetMetadata().GetExpireTime().AsTime()); d < 59*time.Minute || d > time.Hour {
		t.Errorf("a token without expire_time expires in %v, want the 1h maximum", d)
	}
	_, err := a.create(created.GetToken(), &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(2 * time.Hour))})
	wantCode(t, "expire_time past the maximum", err, codes.InvalidArgument)
	if _, err := a.create(created.GetToken(), &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(30 * time.Minute))}); err != nil {
		t.Errorf("expire_time within the maximum: %s", describe(err))
	}
}

// Every serve flag is in the README's configuration table, with its variable.
func TestREADMEListsEveryServeFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	help, _, _ := (&shell{t: t, env: map[string]string{}}).run("", "serve", "--help")
	flags := regexp.MustCompile(`(?m)^\s+--([a-z-]+)\b.*\[\$([A-Z_]+)\]`).FindAllStringSubmatch(help, -1)
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in serve --help:\n%s", len(flags), help)
	}
	for _, f := range flags {
		if !bytes.Contains(readme, []byte("`--"+f[1]+"`")) || !bytes.Contains(readme, []byte("`"+f[2]+"`")) {
			t.Errorf("README.md's configuration table lacks --%s (%s)", f[1], f[2])
		}
	}
}

// healthcheck exits 0 while serve is ready and 1 when it is not or does not
// answer: what a container healthcheck needs from the only binary in the image.
func TestHealthcheck(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	sh := &shell{t: t, env: map[string]string{}}
	if out := sh.must("", "healthcheck", "--url", s.httpURL); !strings.Contains(out, "/readyz") {
		t.Errorf("healthcheck of a ready serve: %q", out)
	}
	sh.must("", "healthcheck", "--url", s.httpURL, "--live")

	// Not ready: the database is not reachable yet.
	cfg, proxy := storetest.MustMySQLViaProxy(t)
	proxy.Cut()
	unready := startServiceUnready(t, cfg)
	sh.want(1, "503", "", "healthcheck", "--url", unready.httpURL)
	sh.must("", "healthcheck", "--url", unready.httpURL, "--live")

	// Without --url: where serve's own variables say.
	addr := &shell{t: t, env: map[string]string{"TOKENSERVICE_HTTP_ADDR": strings.TrimPrefix(s.httpURL, "http://")}}
	addr.must("", "healthcheck")

	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}
	sh.want(1, "did not answer", "", "healthcheck", "--url", s.httpURL)
}

func TestHealthcheckURLFromServesVariables(t *testing.T) {
	for env, want := range map[[2]string]string{
		{"", ""}:                  "http://127.0.0.1:8080",
		{":9000", ""}:             "http://127.0.0.1:9000",
		{"0.0.0.0:9000", ""}:      "http://127.0.0.1:9000",
		{"10.0.0.5:8443", "cert"}: "https://10.0.0.5:8443",
		{"[::]:8080", ""}:         "http://127.0.0.1:8080",
	} {
		got := localURL(func(k string) string {
			return map[string]string{"TOKENSERVICE_HTTP_ADDR": env[0], "TOKENSERVICE_TLS_CERT": env[1]}[k]
		})
		if got != want {
			t.Errorf("HTTP_ADDR %q, TLS_CERT %q: %s, want %s", env[0], env[1], got, want)
		}
	}
}

// TestClientScopesRotationAndExpiry: the token commands' scopes, rotation
// and expiring filter, and the warning of a credential about to expire.
func TestClientScopesRotationAndExpiry(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_SCOPES", operatorScopes)
	s.mustUser(t, "uma", "human")
	sh := s.newShell(t)
	sh.must(password+"\n", "login", "uma", "--expires-in", "3d")

	tok := strings.TrimSpace(sh.must("", "token", "create", "--scope", "orders:read,tokens:read", "--scope", "tokens:write"))
	if !auth.LooksLikeAPIToken(tok) {
		t.Fatalf("token create printed %q", tok)
	}
	if out := sh.must("", "token", "get", idOf(tok)); !strings.Contains(out, "orders:read,tokens:read,tokens:write") {
		t.Errorf("token get does not show the scopes: %s", out)
	}
	script := &shell{t: t, env: map[string]string{"TOKENSERVICE_ADDR": s.grpcAddr, "TOKENSERVICE_TOKEN": tok, "HOME": t.TempDir()}}
	script.want(exitCredentials, `lacks the scope "users:read"`, "", "whoami")
	access := strings.TrimSpace(script.must("", "token", "exchange", "--scope", "orders:read"))
	if got := scopeClaim(t, access); got != "orders:read" {
		t.Errorf("token exchange --scope orders:read: claim %q", got)
	}

	// The login expires in 3 days: every command using it says so, once.
	stdout, stderr, code := sh.run("", "token", "list", "--expiring-within", "7d")
	if code != 0 || !strings.Contains(stderr, "warning: the token this command uses expires") || strings.Count(stderr, "warning") != 1 {
		t.Errorf("a command with a login expiring in 3 days: exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stdout, idOf(tok)) { // made with the login: it expires with it
		t.Errorf("token list --expiring-within 7d: %s", stdout)
	}
	lasting := rpc{t, s.grpcCaller()}.login("uma")
	noExpiry := &shell{t: t, env: map[string]string{"TOKENSERVICE_ADDR": s.grpcAddr, "TOKENSERVICE_TOKEN": lasting, "HOME": t.TempDir()}}
	if stdout, stderr, _ := noExpiry.run("", "token", "list", "--expiring-within", "7d"); strings.Contains(stderr, "warning") || strings.Contains(stdout, idOf(lasting)) {
		t.Errorf("a token without expiry: stderr %q, listed as expiring: %s", stderr, stdout)
	}

	rotated := strings.TrimSpace(sh.must("", "token", "rotate", idOf(tok), "--grace-period", "1h"))
	if idOf(rotated) != idOf(tok) || rotated == tok {
		t.Fatalf("token rotate printed %q for %s", rotated, tok)
	}
	script.must("", "token", "exchange") // the old secret, within its grace period
	sh.want(exitUsage, "--grace-period", "", "token", "rotate", idOf(tok), "--grace-period", "soon")
	sh.want(exitUsage, "--scope is empty", "", "token", "create", "--scope", "")
	if _, stderr, code := script.run("", "token", "exchange"); code != 0 || !strings.Contains(stderr, "warning: the token this command uses expires") {
		t.Errorf("token exchange with a token expiring in 3 days: exit %d, stderr %q", code, stderr)
	}

	// Rotating the login's own token keeps the login working.
	var saved savedCredentials
	b, _ := os.ReadFile(filepath.Join(sh.env["XDG_CONFIG_HOME"], "tokenservice", "credentials.json"))
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = sh.run("", "token", "rotate", idOf(saved.Token))
	if code != 0 || !strings.Contains(stderr, "the login now uses the new secret") {
		t.Errorf("rotating the login's token: exit %d, %q", code, stderr)
	}
	sh.must("", "whoami")

	// The 3-day login cannot rotate or delete the lasting token; the
	// password (asked for: username, then password) can.
	sh.want(exitCredentials, "--password", "", "token", "delete", idOf(lasting))
	sh.want(exitCredentials, "wrong username or password", "wrong password\n", "token", "delete", "--password", idOf(lasting))
	if out := sh.must(password+"\n", "token", "rotate", "--password", idOf(lasting)); !auth.LooksLikeAPIToken(strings.TrimSpace(out)) { // the login's username
		t.Errorf("token rotate --password printed %q", out)
	}
	script.must("uma\n"+password+"\n", "token", "delete", "--password", idOf(lasting)) // no login: the username is asked for too
	noExpiry.want(exitCredentials, "", "", "whoami")
}

// TestCLISaysWhenToRetryAPassword: past the password limits the CLI says
// how long to wait (the server's RetryInfo), not to read a Retry-After
// header its user never sees; a wrong --password is a wrong password, not
// a stale login.
func TestCLISaysWhenToRetryAPassword(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_LOGIN_ATTEMPTS_PER_USER_AND_ADDRESS", "1")
	s.mustUser(t, "vic", "human")
	sh := s.newShell(t)
	sh.want(exitCredentials, "wrong username or password", "vic\nnot the password\n", "token", "delete", "--password", "AAAAAAAAAAAAAAAA")
	_, stderr, code := sh.run("vic\n"+password+"\n", "token", "delete", "--password", "AAAAAAAAAAAAAAAA")
	if code != exitError || !strings.Contains(stderr, "too many password attempts: retry in ") || strings.Contains(stderr, "Retry-After") {
		t.Errorf("past the limit: exit %d, %q; want exit %d saying when to retry", code, stderr, exitError)
	}
}
