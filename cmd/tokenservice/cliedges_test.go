package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// restGet answers a GET on the REST API with bearer, as decoded JSON.
func restGet(t *testing.T, s *service, bearer, path string) any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.httpURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
	return v
}

// loginToken returns the token a shell's login keeps.
func (sh *shell) loginToken() string {
	sh.t.Helper()
	saved, err := loadCredentials(filepath.Join(sh.env["XDG_CONFIG_HOME"], "tokenservice", "credentials.json"))
	if err != nil || saved == nil {
		sh.t.Fatalf("the login's credentials: %v, %v", saved, err)
	}
	return saved.Token
}

// --json prints what the REST API answers for the same call: the same
// response message, encoded with the gateway's options.
func TestJSONIsWhatRESTAnswers(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "alice", "admin")
	botID := s.mustUser(t, "ci-bot", "machine:alice")
	sh := s.newShell(t)
	sh.must(password+"\n", "login", "alice")
	bearer := sh.loginToken()
	tok := strings.TrimSpace(sh.must("", "token", "create", "--user", "ci-bot", "--note", "CI", "--scope", "tokens:read"))
	for _, tc := range []struct {
		cli  []string
		rest string
	}{
		{[]string{"whoami"}, "/v1alpha1/users/me"},
		{[]string{"user", "get", "ci-bot"}, "/v1alpha1/users/" + botID},
		{[]string{"user", "list"}, "/v1alpha1/users"},
		{[]string{"token", "get", idOf(tok)}, "/v1alpha1/tokens/" + idOf(tok)},
		{[]string{"token", "list", "--user", "ci-bot"}, "/v1alpha1/tokens?userId=" + url.QueryEscape(botID)},
	} {
		var got any
		out := sh.must("", append(tc.cli, "--json")...)
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s --json: %v: %s", strings.Join(tc.cli, " "), err, out)
		}
		if diff := cmp.Diff(restGet(t, s, bearer, tc.rest), got); diff != "" {
			t.Errorf("%s --json differs from GET %s (-rest +cli):\n%s", strings.Join(tc.cli, " "), tc.rest, diff)
		}
	}
}

// A whole API token given where a token ID goes is refused before anything
// is sent, without the secret repeated.
func TestAWholeTokenIsNoTokenID(t *testing.T) {
	im := startImpostor(t)
	sh := &shell{t: t, env: map[string]string{"HOME": t.TempDir(), "TOKENSERVICE_ADDR": im.addr, "TOKENSERVICE_TOKEN": "tks_AAAAAAAAAAAAAAAA_x", "TOKENSERVICE_INSECURE": "1"}}
	whole := auth.APIToken{ID: "1VZZqwNuxHhj6QE7", Secret: strings.Repeat("s3cr3t", 7) + "x"}.String()
	for _, cmd := range []string{"get", "delete", "rotate"} {
		for _, arg := range []string{whole, whole[:30]} {
			out, errOut, code := sh.run("", "token", cmd, arg)
			if code != exitUsage || !strings.Contains(errOut, "whole API token") || strings.Contains(out+errOut, arg[20:]) {
				t.Errorf("token %s <a whole token>: exit %d, stdout %q, stderr %q; want exit 2, the token refused and not repeated", cmd, code, out, errOut)
			}
		}
		sh.want(exitUsage, "give the ID (characters 5-20 of the token: 1VZZqwNuxHhj6QE7)", "", "token", cmd, whole)
	}
	if got := im.received(); got != "" {
		t.Errorf("a refused command sent %q", got)
	}
}

// The server's refusals name the CLI's flags, not the API's fields.
func TestErrorsNameTheFlags(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_MAX_TOKEN_LIFETIME", "1h", "TOKENSERVICE_MAX_ROTATION_GRACE_PERIOD", "1h")
	s.mustUser(t, "bob", "human")
	sh := s.newShell(t)
	sh.must(password+"\n", "login", "bob", "--expires-in", "1h")
	tok := strings.TrimSpace(sh.must("", "token", "create", "--expires-in", "30m"))
	for _, tc := range []struct {
		flag string
		args []string
	}{
		{"--expires-in", []string{"token", "create", "--expires-in", "3h"}},
		{"--scope", []string{"token", "create", "--scope", "orders:nope"}},
		{"--note", []string{"token", "create", "--note", strings.Repeat("n", 300)}},
		{"--grace-period", []string{"token", "rotate", idOf(tok), "--grace-period", "2h"}},
		{"--expires-in", []string{"login", "bob", "--expires-in", "3h"}},
	} {
		out, errOut, code := sh.run(password+"\n", tc.args...)
		if code == 0 || !strings.Contains(errOut, "tokenservice: "+tc.flag+": ") || regexp.MustCompile(`[a-z]_[a-z]|scopes:| note:`).MatchString(errOut) {
			t.Errorf("tokenservice %s: exit %d, stderr %q (stdout %q); want a refusal naming %s and no field of the API", strings.Join(tc.args, " "), code, errOut, out, tc.flag)
		}
	}
	sh.want(exitUsage, `--grace-period "soon": want a duration`, "", "token", "rotate", idOf(tok), "--grace-period", "soon")
	sh.want(exitUsage, `--expiring-within "soon"`, "", "token", "list", "--expiring-within", "soon")
}

// A typo gets the commands it may have meant.
func TestTyposGetSuggestions(t *testing.T) {
	sh := &shell{t: t, env: map[string]string{"HOME": t.TempDir()}}
	for typo, want := range map[string]string{"tokn": "did you mean token?", "token lst": "list", "user crate": "did you mean create?", "db migrat": "did you mean migrate?", "keys rotat": "did you mean rotate?"} {
		sh.want(exitUsage, want, "", strings.Fields(typo)...)
	}
}

// An unknown --db-driver is a usage error (exit 2) wherever the flag is.
func TestAnUnknownDBDriverIsAUsageError(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "x.db")
	sh := &shell{t: t, env: map[string]string{"HOME": t.TempDir(), "TOKENSERVICE_DB_DSN": dsn}}
	for _, args := range [][]string{{"db", "migrate"}, {"db", "list-users"}, {"keys", "list"}, {"serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "off"}} {
		sh.want(exitUsage, `--db-driver "postgres": want sqlite or mysql`, "", append(args, "--db-driver", "postgres")...)
	}
	sh.env["TOKENSERVICE_DB_DRIVER"] = "postgres"
	sh.want(exitUsage, `--db-driver "postgres"`, "", "db", "list-users")
	if _, err := os.Stat(dsn); !os.IsNotExist(err) {
		t.Errorf("a refused command made a database: %v", err)
	}
}

// A password is asked only once the command may succeed: not for a human
// user a non-admin may not create, nor for a machine user (which has none),
// nor for a username that is taken.
func TestNoPasswordIsAskedForACommandBoundToFail(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "bob", "human")
	s.mustUser(t, "bob-bot", "machine:bob")
	sh := s.newShell(t)
	sh.must(password+"\n", "login", "bob")
	// Empty stdin: a prompt would fail with "nothing on stdin".
	sh.want(exitCredentials, "only an admin may create human users", "", "user", "create", "carol")
	sh.want(exitError, "bob-bot is a machine user", "", "user", "set-password", "bob-bot")
	op := &shell{t: t, env: s.env}
	op.want(exitError, `a user "bob" exists already`, "", "db", "create-user", "bob")
}

// logout does not warn that the token it deletes expires soon.
func TestLogoutDoesNotWarnOfExpiry(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "bob", "human")
	sh := s.newShell(t)
	sh.must(password+"\n", "login", "bob", "--expires-in", "1h")
	if _, errOut, _ := sh.run("", "whoami"); !strings.Contains(errOut, "warning: the token this command uses expires") {
		t.Fatalf("whoami with a token expiring in an hour does not warn: %q", errOut)
	}
	out, errOut, code := sh.run("", "logout")
	if code != 0 || errOut != "" {
		t.Errorf("logout: exit %d, stdout %q, stderr %q; want nothing on stderr", code, out, errOut)
	}
}
