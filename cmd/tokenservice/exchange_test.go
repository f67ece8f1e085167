package main

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenservice/tokenservice/pkg/oauth"
)

// Platform tokens and an access token, shaped as JWTs; the stand-ins never
// verify them.
const (
	platformJWT  = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvYXBwIn0.c2lnbmF0dXJl"
	platformJWT2 = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNvbmQifQ.c2Vjb25k"
	accessJWT    = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtYWNoaW5lIn0.YWNjZXNz"
)

// tokenEndpoint is a stand-in of the server's token endpoint: it keeps each
// form posted to <URL>/oauth2/token and answers with answer (by default, an
// RFC 8693 success).
type tokenEndpoint struct {
	*httptest.Server
	mu     sync.Mutex
	forms  []url.Values
	answer func(w http.ResponseWriter)
}

func newTokenEndpoint(t *testing.T, tls bool) *tokenEndpoint {
	t.Helper()
	te := &tokenEndpoint{answer: func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"` + accessJWT + `","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":900,"scope":"orders:read"}`))
	}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/oauth2/token" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("the token endpoint got %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("the token endpoint's form: %v", err)
		}
		te.mu.Lock()
		te.forms = append(te.forms, r.PostForm)
		answer := te.answer
		te.mu.Unlock()
		answer(w)
	})
	if tls {
		te.Server = httptest.NewTLSServer(h)
	} else {
		te.Server = httptest.NewServer(h)
	}
	t.Cleanup(te.Close)
	return te
}

// posted returns the forms posted so far.
func (te *tokenEndpoint) posted() []url.Values {
	te.mu.Lock()
	defer te.mu.Unlock()
	return append([]url.Values(nil), te.forms...)
}

func (te *tokenEndpoint) answerWith(answer func(w http.ResponseWriter)) {
	te.mu.Lock()
	defer te.mu.Unlock()
	te.answer = answer
}

// exchangeForm is the form the CLI posts for subject, with the optional
// fields given.
func exchangeForm(subject, scope, clientID string) url.Values {
	f := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
	}
	if scope != "" {
		f.Set("scope", scope)
	}
	if clientID != "" {
		f.Set("client_id", clientID)
	}
	return f
}

// machineShell is a CI job or a pod: no login, no API token.
func machineShell(t *testing.T, env map[string]string) *shell {
	env["HOME"] = t.TempDir()
	return &shell{t: t, env: env}
}

// githubStandIn is GitHub's OIDC token request URL: it answers a GET with
// the job's request token with platformJWT, and records the audience asked.
func githubStandIn(t *testing.T, requestToken string, audiences *[]string) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/_apis/pipelines/1/runs/2/idtoken" || r.URL.Query().Get("api-version") != "2.0" {
			t.Errorf("GitHub got %s %s: want GET of the request URL, its own query kept", r.Method, r.URL)
		}
		if r.Header.Get("Authorization") != "Bearer "+requestToken {
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		mu.Lock()
		*audiences = append(*audiences, r.URL.Query()["audience"]...)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"count": 1, "value": platformJWT})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// --github-actions asks GitHub for the job's token (the request token as
// the bearer, the audience added to the URL's own query: the issuer, or
// --audience) and exchanges it, with --scope and --client-id, printing the
// access token alone.
func TestExchangeGitHubActions(t *testing.T) {
	te := newTokenEndpoint(t, false)
	var audiences []string
	gh := githubStandIn(t, "job-request-token", &audiences)
	sh := machineShell(t, map[string]string{
		githubRequestURL:   gh.URL + "/_apis/pipelines/1/runs/2/idtoken?api-version=2.0",
		githubRequestToken: "job-request-token",
	})

	out, errOut, code := sh.run("", "token", "exchange", "--github-actions", "--issuer", te.URL+"/")
	if code != 0 || out != accessJWT+"\n" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the access token alone", code, out, errOut)
	}
	out = sh.must("", "token", "exchange", "--github-actions", "--issuer", te.URL, "--audience", "https://tokens.example.com/ci?x=1&y",
		"--scope", "orders:read,orders:write", "--client-id", "1VZZqwNuxHhj6QE7")
	if out != accessJWT+"\n" {
		t.Errorf("stdout %q, want the access token alone", out)
	}
	if diff := cmp.Diff([]string{te.URL, "https://tokens.example.com/ci?x=1&y"}, audiences); diff != "" {
		t.Errorf("the audiences asked of GitHub (-want +got):\n%s", diff)
	}
	want := []url.Values{
		exchangeForm(platformJWT, "", ""),
		exchangeForm(platformJWT, "orders:read orders:write", "1VZZqwNuxHhj6QE7"),
	}
	if diff := cmp.Diff(want, te.posted()); diff != "" {
		t.Errorf("the forms posted (-want +got):\n%s", diff)
	}

	// GitHub refusing the request token: in plain words, nothing exchanged.
	sh.env[githubRequestToken] = "stale"
	sh.want(exitCredentials, "GitHub refused the OIDC token request: 401 Unauthorized", "", "token", "exchange", "--github-actions", "--issuer", te.URL)
	if n := len(te.posted()); n != 2 {
		t.Errorf("the token endpoint got %d forms, want 2", n)
	}
}

// --subject-token-file reads the file anew each run (a projected token is
// replaced before it expires), without scope or client_id unless given.
func TestExchangeSubjectTokenFile(t *testing.T) {
	te := newTokenEndpoint(t, false)
	path := filepath.Join(t.TempDir(), "tokenservice")
	sh := machineShell(t, map[string]string{})
	for _, tok := range []string{platformJWT, platformJWT2} {
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if out := sh.must("", "token", "exchange", "--subject-token-file", path, "--issuer", te.URL); out != accessJWT+"\n" {
			t.Errorf("stdout %q, want the access token alone", out)
		}
	}
	want := []url.Values{exchangeForm(platformJWT, "", ""), exchangeForm(platformJWT2, "", "")}
	if diff := cmp.Diff(want, te.posted()); diff != "" {
		t.Errorf("the forms posted (-want +got):\n%s", diff)
	}

	os.WriteFile(path, []byte("/var/run/secrets/oops\n"), 0o600)
	sh.want(exitError, path+" does not hold a JWT", "", "token", "exchange", "--subject-token-file", path, "--issuer", te.URL)
	sh.want(exitError, "no such file", "", "token", "exchange", "--subject-token-file", path+".missing", "--issuer", te.URL)
	if n := len(te.posted()); n != 2 {
		t.Errorf("the token endpoint got %d forms, want 2: nothing sent for a file without a token", n)
	}
}

// --subject-token-env reads the variable named; TOKENSERVICE_ISSUER gives
// the issuer.
func TestExchangeSubjectTokenEnv(t *testing.T) {
	te := newTokenEndpoint(t, false)
	sh := machineShell(t, map[string]string{"GITLAB_ID_TOKEN": platformJWT, "TOKENSERVICE_ISSUER": te.URL})
	if out := sh.must("", "token", "exchange", "--subject-token-env", "GITLAB_ID_TOKEN", "--scope", "orders:read"); out != accessJWT+"\n" {
		t.Errorf("stdout %q, want the access token alone", out)
	}
	if diff := cmp.Diff([]url.Values{exchangeForm(platformJWT, "orders:read", "")}, te.posted()); diff != "" {
		t.Errorf("the forms posted (-want +got):\n%s", diff)
	}
}

// A source whose variables are missing says what the job lacks, exit 3,
// and sends nothing.
func TestExchangeMissingVariables(t *testing.T) {
	te := newTokenEndpoint(t, false)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		says string
	}{
		{"github without the URL", map[string]string{githubRequestToken: "t"}, []string{"--github-actions"},
			"$ACTIONS_ID_TOKEN_REQUEST_URL is not set: the job needs `permissions: id-token: write`"},
		{"github without the request token", map[string]string{githubRequestURL: "http://127.0.0.1:1/x?api-version=2.0"}, []string{"--github-actions"},
			"$ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set: the job needs `permissions: id-token: write`"},
		{"an unset variable", map[string]string{}, []string{"--subject-token-env", "CI_JOB_JWT"}, "$CI_JOB_JWT is not set or empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := machineShell(t, tc.env)
			sh.want(exitCredentials, tc.says, "", append([]string{"token", "exchange", "--issuer", te.URL}, tc.args...)...)
		})
	}
	if n := len(te.posted()); n != 0 {
		t.Errorf("the token endpoint got %d forms, want none", n)
	}
}

// One source of the platform's token, or none; the flags that go with one
// are refused without one; the issuer must be known, and plaintext goes only
// to this machine.
func TestExchangeCommandLine(t *testing.T) {
	te := newTokenEndpoint(t, false)
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte(platformJWT), 0o600)
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--subject-token-file", file, "--subject-token-env", "X", "--issuer", te.URL}, "give one source of the platform's token"},
		{[]string{"--github-actions", "--subject-token-env", "X", "--issuer", te.URL}, "not 2"},
		{[]string{"--github-actions", "--subject-token-file", file, "--subject-token-env", "X", "--issuer", te.URL}, "not 3"},
		{[]string{"--subject-token-file", "", "--issuer", te.URL}, "--subject-token-file is empty"},
		{[]string{"--subject-token-file", file, "--audience", "x", "--issuer", te.URL}, "--audience is for --github-actions"},
		{[]string{"--client-id", "1VZZqwNuxHhj6QE7"}, "--client-id is for exchanging a platform's token"},
		{[]string{"--audience", "x"}, "--audience is for exchanging a platform's token"},
		{[]string{"--subject-token-file", file}, "--issuer: give the server's issuer URL"},
		{[]string{"--subject-token-file", file, "--addr", "localhost:9090"}, "--issuer: give the server's issuer URL"},
		{[]string{"--subject-token-file", file, "--issuer", "tokens.example.com"}, "want the server's issuer URL"},
		{[]string{"--subject-token-file", file, "--issuer", "http://tokens.example.com"}, "refusing plaintext to tokens.example.com"},
	} {
		sh := machineShell(t, map[string]string{})
		sh.want(exitUsage, tc.says, "", append([]string{"token", "exchange"}, tc.args...)...)
	}
	if n := len(te.posted()); n != 0 {
		t.Errorf("the token endpoint got %d forms, want none", n)
	}
	// Without a source, the API token's exchange as before: it wants a token.
	machineShell(t, map[string]string{}).want(exitCredentials, "not logged in", "", "token", "exchange")
}

// The endpoint's refusals in plain words (its error_description), with the
// CLI's exit codes; the platform's token is never shown, even if echoed.
func TestExchangeRefusals(t *testing.T) {
	te := newTokenEndpoint(t, false)
	for _, tc := range []struct {
		name   string
		status int
		header map[string]string
		body   string
		code   int
		says   string
	}{
		{"refused subject token", 400, nil,
			`{"error":"invalid_request","error_description":"no federated credential matches subject repo:acme/app:ref:refs/heads/dev"}`,
			exitCredentials, "the server refused the platform's token: no federated credential matches subject repo:acme/app:ref:refs/heads/dev"},
		{"echoed subject token", 400, nil,
			`{"error":"invalid_request","error_description":"bad token ` + platformJWT + `"}`,
			exitCredentials, "bad token (the platform's token)"},
		{"scope", 400, nil, `{"error":"invalid_scope","error_description":"orders:write is beyond the credential's scopes"}`,
			exitError, "the token exchange was refused: orders:write is beyond the credential's scopes (invalid_scope)"},
		{"old server", 400, nil, `{"error":"unsupported_grant_type","error_description":"this server grants client_credentials only"}`,
			exitError, "does not exchange platform tokens (RFC 8693 token exchange): this server grants client_credentials only"},
		{"rate limited", 429, map[string]string{"Retry-After": "7"}, `{"error":"slow_down","error_description":"too many exchanges"}`,
			exitError, "too many exchanges: retry in 7s"},
		{"unavailable", 503, map[string]string{"Retry-After": "1"}, `{"error":"temporarily_unavailable","error_description":"the service is starting"}`,
			exitUnreachable, "did not answer: the service is starting"},
		{"not the token endpoint", 404, nil, "404 page not found", exitError, "not as a token endpoint: is --issuer this service's REST base URL?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te.answerWith(func(w http.ResponseWriter) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			})
			sh := machineShell(t, map[string]string{"ID_TOKEN": platformJWT})
			out, errOut, code := sh.run("", "token", "exchange", "--subject-token-env", "ID_TOKEN", "--issuer", te.URL)
			if code != tc.code || !strings.Contains(errOut, tc.says) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d saying %q", code, out, errOut, tc.code, tc.says)
			}
			if strings.Contains(errOut, platformJWT) {
				t.Errorf("stderr shows the platform's token: %q", errOut)
			}
		})
	}
}

// An answer over 64 KiB is refused, not read whole nor printed.
func TestExchangeOversizedAnswer(t *testing.T) {
	te := newTokenEndpoint(t, false)
	te.answerWith(func(w http.ResponseWriter) {
		w.Write([]byte(`{"token_type":"Bearer","access_token":"` + strings.Repeat("a", 64<<10) + `"}`))
	})
	sh := machineShell(t, map[string]string{"ID_TOKEN": platformJWT})
	out, errOut, code := sh.run("", "token", "exchange", "--subject-token-env", "ID_TOKEN", "--issuer", te.URL)
	if code != exitError || !strings.Contains(errOut, "is over 64 KiB") || out != "" {
		t.Errorf("exit %d, stdout %d bytes, stderr %q; want exit 1 saying the answer is over 64 KiB", code, len(out), errOut)
	}
}

// A redirect from the token endpoint is not followed: the platform's token
// goes only to the issuer named.
func TestExchangeRedirectNotFollowed(t *testing.T) {
	elsewhere := newTokenEndpoint(t, false)
	te := newTokenEndpoint(t, false)
	te.answerWith(func(w http.ResponseWriter) {
		w.Header().Set("Location", elsewhere.URL+"/oauth2/token")
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	sh := machineShell(t, map[string]string{"ID_TOKEN": platformJWT})
	sh.want(exitError, "which was not followed", "", "token", "exchange", "--subject-token-env", "ID_TOKEN", "--issuer", te.URL)
	if n := len(elsewhere.posted()); n != 0 {
		t.Errorf("the redirect's target got %d forms, want none", n)
	}
}

// Over TLS the server is verified with --tls-ca-file's CA; an https:// --addr
// is the issuer when --issuer is not given.
func TestExchangeTLS(t *testing.T) {
	te := newTokenEndpoint(t, true)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: te.Certificate().Raw}), 0o600)
	sh := machineShell(t, map[string]string{"ID_TOKEN": platformJWT})
	sh.want(exitUnreachable, "certificate", "", "token", "exchange", "--subject-token-env", "ID_TOKEN", "--issuer", te.URL)
	if out := sh.must("", "token", "exchange", "--subject-token-env", "ID_TOKEN", "--addr", te.URL, "--tls-ca-file", ca); out != accessJWT+"\n" {
		t.Errorf("stdout %q, want the access token alone", out)
	}
	if n := len(te.posted()); n != 1 {
		t.Errorf("the token endpoint got %d forms, want 1", n)
	}
}

// The client's token endpoint path is the server's.
func TestExchangeTokenEndpointPath(t *testing.T) {
	if tokenEndpointPath != oauth.TokenPath {
		t.Errorf("tokenEndpointPath %q, the server serves %q", tokenEndpointPath, oauth.TokenPath)
	}
}

// The README's recipes for secretless machines run: each `token exchange`
// line, against stand-ins of GitHub and the token endpoint, in the
// environment its YAML gives it (the variable GitLab's id_tokens: names,
// the file the pod's projected volume mounts, the workflow's issuer).
func TestExchangeREADMERecipes(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n### Secretless machines (OIDC federation)\n")
	if !ok {
		t.Fatal("README.md has no section \"Secretless machines (OIDC federation)\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	const public = "https://tokens.example.com"
	for _, want := range []string{
		// the workflow
		"id-token: write", "TOKENSERVICE_ISSUER: " + public,
		// GitLab
		"id_tokens:\n    ID_TOKEN:\n      aud: " + public,
		// the pod
		"mountPath: /var/run/secrets/tokens", "path: tokenservice\n              audience: " + public, "expirationSeconds:",
	} {
		if !strings.Contains(section, want) {
			t.Errorf("the recipes lack %q", want)
		}
	}

	te := newTokenEndpoint(t, false)
	var audiences []string
	gh := githubStandIn(t, "job-request-token", &audiences)
	file := filepath.Join(t.TempDir(), "tokenservice")
	os.WriteFile(file, []byte(platformJWT), 0o600)
	sh := machineShell(t, map[string]string{
		githubRequestURL:      gh.URL + "/_apis/pipelines/1/runs/2/idtoken?api-version=2.0",
		githubRequestToken:    "job-request-token",
		"TOKENSERVICE_ISSUER": te.URL,
		"ID_TOKEN":            platformJWT,
	})
	lines := regexp.MustCompile(`tokenservice token exchange ([^)\n]*)`).FindAllStringSubmatch(section, -1)
	if len(lines) != 3 {
		t.Fatalf("the recipes have %d token exchange lines, want 3 (GitHub, GitLab, Kubernetes)", len(lines))
	}
	for _, m := range lines {
		line := strings.ReplaceAll(m[1], public, te.URL)
		line = strings.ReplaceAll(line, "/var/run/secrets/tokens/tokenservice", file)
		if out := sh.must("", append([]string{"token", "exchange"}, strings.Fields(line)...)...); out != accessJWT+"\n" {
			t.Errorf("%s: stdout %q, want the access token alone", m[0], out)
		}
	}
	posted := te.posted()
	if n := len(posted); n != 3 {
		t.Errorf("the token endpoint got %d exchanges, want 3", n)
	}
	for _, form := range posted {
		// Always the machine user: with it, other users' credentials
		// for the same subject cannot make the exchange ambiguous.
		if got := form.Get("client_id"); got != "MACHINE_USER_ID" {
			t.Errorf("a recipe's exchange posted client_id %q, want the machine user's", got)
		}
	}
	if diff := cmp.Diff([]string{te.URL}, audiences); diff != "" {
		t.Errorf("the audience asked of GitHub (-want +got):\n%s", diff)
	}
}
