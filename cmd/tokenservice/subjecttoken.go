package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// The variables a GitHub Actions job has when it may ask for an OIDC token
// (its workflow grants `permissions: id-token: write`).
const (
	githubRequestURL   = "ACTIONS_ID_TOKEN_REQUEST_URL"
	githubRequestToken = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
)

// maxSubjectTokenBytes bounds a subject token read from a file or an
// answer: a platform's JWT is a few KiB.
const maxSubjectTokenBytes = 64 << 10

// subjectSource is where the platform's token (the RFC 8693 subject token)
// comes from: the flags of token exchange that name one.
type subjectSource struct {
	file     string // --subject-token-file
	variable string // --subject-token-env
	github   bool   // --github-actions
	audience string // --audience, for --github-actions
}

// sourceFlags are the flags that name a subject token's source.
var sourceFlags = []string{"subject-token-file", "subject-token-env", "github-actions"}

// given returns how many sources the command line names, refusing one
// named with nothing in it.
func (s *subjectSource) given(cmd *cobra.Command) (int, error) {
	n := 0
	for _, name := range sourceFlags {
		if cmd.Flags().Changed(name) {
			n++
		}
	}
	if cmd.Flags().Changed("subject-token-file") && s.file == "" {
		return n, usageError(cmd, "--subject-token-file is empty: name the file that holds the platform's token")
	}
	if cmd.Flags().Changed("subject-token-env") && s.variable == "" {
		return n, usageError(cmd, "--subject-token-env is empty: name the variable that holds the platform's token")
	}
	if n > 1 {
		return n, usageError(cmd, "give one source of the platform's token: --subject-token-file, --subject-token-env or --github-actions, not %d", n)
	}
	return n, nil
}

// read returns the subject token. defaultAudience is what --github-actions
// asks for when --audience is not given.
func (s *subjectSource) read(ctx context.Context, e *env, hc *http.Client, defaultAudience string) (string, error) {
	switch {
	case s.file != "":
		return readSubjectFile(s.file)
	case s.variable != "":
		v := strings.TrimSpace(e.getenv(s.variable))
		if v == "" {
			return "", &exitErr{code: exitCredentials, err: fmt.Errorf("--subject-token-env: $%s is not set or empty: no platform token to exchange", s.variable)}
		}
		return v, checkJWT("$"+s.variable, v)
	}
	audience := s.audience
	if audience == "" {
		audience = defaultAudience
	}
	return githubIDToken(ctx, e.getenv, hc, audience)
}

// readSubjectFile reads a token file, anew each run: a Kubernetes projected
// token is replaced before it expires.
func readSubjectFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--subject-token-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSubjectTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("--subject-token-file: %w", err)
	}
	if len(b) > maxSubjectTokenBytes {
		return "", fmt.Errorf("--subject-token-file: %s is over %d KiB: not a token", path, maxSubjectTokenBytes>>10)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--subject-token-file: %s is empty", path)
	}
	return tok, checkJWT(path, tok)
}

// checkJWT refuses what is plainly not a JWT (a compact JWS: three parts
// separated by dots) before it is sent anywhere: a variable or file named
// wrong says so here, rather than as the server's refusal. The token itself
// is never shown.
func checkJWT(where, tok string) error {
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \t\r\n") {
		return fmt.Errorf("%s does not hold a JWT (three base64url parts separated by dots)", where)
	}
	return nil
}

// githubIDToken asks GitHub Actions for the job's OIDC token for audience:
// GET $ACTIONS_ID_TOKEN_REQUEST_URL with the audience added to its query,
// authenticated by $ACTIONS_ID_TOKEN_REQUEST_TOKEN; the answer is
// {"value": "<JWT>"}.
func githubIDToken(ctx context.Context, getenv func(string) string, hc *http.Client, audience string) (string, error) {
	rawURL, bearer := getenv(githubRequestURL), getenv(githubRequestToken)
	for _, v := range [][2]string{{githubRequestURL, rawURL}, {githubRequestToken, bearer}} {
		if v[1] == "" {
			return "", &exitErr{code: exitCredentials, err: fmt.Errorf("--github-actions: $%s is not set: the job needs `permissions: id-token: write` "+
				"(in the workflow or the job), and this must run in a GitHub Actions job", v[0])}
		}
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("--github-actions: $%s is not a URL", githubRequestURL)
	}
	if err := plaintextAllowed(u, false); err != nil {
		return "", fmt.Errorf("--github-actions: $%s: %w", githubRequestURL, err)
	}
	// The URL has a query string of its own (api-version=...): add to it.
	q := u.Query()
	q.Set("audience", audience)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("--github-actions: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", &exitErr{code: exitUnreachable, err: fmt.Errorf("--github-actions: GitHub's OIDC token request did not answer: %w", withoutQuery(err))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSubjectTokenBytes+1))
	if err != nil {
		return "", &exitErr{code: exitUnreachable, err: fmt.Errorf("--github-actions: reading GitHub's answer: %w", err)}
	}
	if len(body) > maxSubjectTokenBytes {
		return "", fmt.Errorf("--github-actions: GitHub's answer is over %d KiB: not an OIDC token", maxSubjectTokenBytes>>10)
	}
	if resp.StatusCode != http.StatusOK {
		code := exitError
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			code = exitCredentials
		}
		return "", &exitErr{code: code, err: fmt.Errorf("--github-actions: GitHub refused the OIDC token request: %s%s", resp.Status, excerpt(body))}
	}
	var answer struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Value == "" {
		return "", errors.New(`--github-actions: GitHub's answer holds no token (want {"value": "<JWT>"})`)
	}
	return answer.Value, checkJWT("GitHub's answer", answer.Value)
}

// withoutQuery drops a URL's query from a request's error: GitHub's request
// URL is the job's, not for logs.
func withoutQuery(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = ""
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
	}
	return err
}

// excerpt is the start of an error answer's body, fit for a terminal: ""
// for none.
func excerpt(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return ""
	}
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "..."
	}
	return ": " + safe(s)
}
