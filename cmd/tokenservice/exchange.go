package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The CLI's side of workload identity federation: token exchange takes a
// platform's OIDC token (a CI job's, a pod's) and trades it at the OAuth
// token endpoint (RFC 8693) for an access token of the machine user that
// trusts it. It is an HTTP call, not gRPC: the token endpoint is served
// under the issuer, on the REST port.

const (
	// tokenEndpointPath is the token endpoint under the issuer: oauth.TokenPath
	// (a test holds them equal; the client imports nothing of the server).
	tokenEndpointPath  = "/oauth2/token"
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	// maxTokenAnswerBytes bounds the token endpoint's answer: a few hundred
	// bytes around one JWT.
	maxTokenAnswerBytes = 64 << 10
)

// subjectExchange is token exchange's flags for a platform's token.
type subjectExchange struct {
	subjectSource
	issuer   string
	clientID string
}

func subjectExchangeFlags(fs *pflag.FlagSet) *subjectExchange {
	f := &subjectExchange{}
	fs.StringVar(&f.file, "subject-token-file", "", "exchange the platform's JWT in this file (a Kubernetes projected service account token), read anew each run, instead of an API token")
	fs.StringVar(&f.variable, "subject-token-env", "", "exchange the platform's JWT in this environment variable (GitLab CI's id_tokens:), instead of an API token")
	fs.BoolVar(&f.github, "github-actions", false, "exchange this GitHub Actions job's OIDC token, asked of GitHub for --audience (the job needs the permission id-token: write), instead of an API token")
	fs.StringVar(&f.audience, "audience", "", "with --github-actions: the audience (aud) to ask GitHub for, as registered in the machine user's trust (default: the issuer URL)")
	fs.StringVar(&f.clientID, "client-id", "", "with a platform's token: the machine user's ID (always give it: without it, the exchange is refused once another machine user trusts the same subject)")
	fs.StringVar(&f.issuer, "issuer", "", "with a platform's token: the server's issuer URL (serve's --issuer, its public REST base); the token goes to <issuer>"+tokenEndpointPath+" over HTTP(S), with --tls-ca-file's CA for https (default: --addr, if it is an https:// URL: a TLS front serving gRPC and REST on one host)")
	fromEnv(fs, "issuer")
	return f
}

// unused refuses the flags that only mean something with a platform's token
// when none is given.
func (f *subjectExchange) unused(cmd *cobra.Command) error {
	for _, name := range []string{"audience", "client-id", "issuer"} {
		if cmd.Flags().Changed(name) {
			return usageError(cmd, "--%s is for exchanging a platform's token: add --subject-token-file, --subject-token-env or --github-actions", name)
		}
	}
	return nil
}

// exchange trades the platform's token for an access token and prints it
// alone on stdout. The platform's token is never printed or logged.
func (f *subjectExchange) exchange(cmd *cobra.Command, e *env, scopes []string) error {
	if cmd.Flags().Changed("audience") && !f.github {
		return usageError(cmd, "--audience is for --github-actions: the other sources' tokens already carry theirs")
	}
	if cmd.Flags().Changed("client-id") && f.clientID == "" {
		return usageError(cmd, "--client-id is empty: give the machine user's ID, or leave the flag out")
	}
	issuer, err := f.issuerURL(cmd)
	if err != nil {
		return err
	}
	caFile, _ := cmd.Flags().GetString("tls-ca-file")
	hc, err := httpClient(caFile)
	if err != nil {
		return err
	}
	platform, _ := httpClient("") // GitHub's, with the system's roots
	subject, err := f.read(cmd.Context(), e, platform, issuer)
	if err != nil {
		return err
	}

	form := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {subject}, "subject_token_type": {tokenTypeJWT}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	if f.clientID != "" {
		form.Set("client_id", f.clientID)
	}
	endpoint := issuer + tokenEndpointPath
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return usageError(cmd, "--issuer: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return &exitErr{code: exitUnreachable, err: fmt.Errorf("the token endpoint %s did not answer: %w", endpoint, cause(err))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenAnswerBytes+1))
	if err != nil {
		return &exitErr{code: exitUnreachable, err: fmt.Errorf("reading the answer of %s: %w", endpoint, err)}
	}
	if len(body) > maxTokenAnswerBytes {
		return fmt.Errorf("the answer of %s is over %d KiB, which no token endpoint's is: is --issuer this service's?", endpoint, maxTokenAnswerBytes>>10)
	}
	access, err := readTokenAnswer(resp, body, endpoint, subject)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, access)
	return err
}

// issuerURL returns the server's issuer, without a trailing slash: --issuer
// (or $TOKENSERVICE_ISSUER), else an https:// --addr. Plaintext goes only
// to this machine, unless --insecure, as for gRPC.
func (f *subjectExchange) issuerURL(cmd *cobra.Command) (string, error) {
	raw, from := f.issuer, "--issuer"
	if raw == "" {
		addr, _ := cmd.Flags().GetString("addr")
		if !strings.HasPrefix(strings.ToLower(addr), "https://") {
			return "", usageError(cmd, "--issuer: give the server's issuer URL (serve's --issuer, such as https://tokens.example.com or http://localhost:8080), "+
				"or set %s: a platform's token is exchanged at its token endpoint over HTTP(S), and --addr names only the gRPC port", envName("issuer"))
		}
		raw, from = addr, "--addr"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", usageError(cmd, "%s %q: want the server's issuer URL, https://host[:port][/path]", from, raw)
	}
	insecure, _ := cmd.Flags().GetBool("insecure")
	if err := plaintextAllowed(u, insecure); err != nil {
		return "", usageError(cmd, "%s: %v", from, err)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// plaintextAllowed refuses http:// to another machine than this one unless
// insecure: the tokens sent would cross the network readable.
func plaintextAllowed(u *url.URL, insecure bool) error {
	if u.Scheme == "https" || insecure || isLoopback(withPort(u.Host, "80")) {
		return nil
	}
	return fmt.Errorf("refusing plaintext to %s: the tokens sent would cross the network readable; use https://, or --insecure (%s=true) for a network you trust",
		u.Host, envName("insecure"))
}

// httpClient is the client of the exchange's HTTP calls: the CLI's call
// timeout, caFile's roots if given, and no redirects followed, so a token
// is sent only where the command line says.
func httpClient(caFile string) (*http.Client, error) {
	cfg, err := tlsConfig(caFile)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = cfg
	return &http.Client{
		Transport:     transport,
		Timeout:       callTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// cause is a request's error without the method and URL, which the message
// around it names.
func cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// tokenAnswer is the token endpoint's answer: RFC 8693 §2.2.1 on success,
// RFC 6749 §5.2 on error.
type tokenAnswer struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// readTokenAnswer returns the access token of a successful answer, or what
// went wrong in plain words with the CLI's exit code for it.
func readTokenAnswer(resp *http.Response, body []byte, endpoint, subject string) (string, error) {
	var a tokenAnswer
	notJSON := json.Unmarshal(body, &a) != nil
	if resp.StatusCode == http.StatusOK {
		if notJSON || a.AccessToken == "" {
			return "", fmt.Errorf("%s answered without an access token: is --issuer this service's?", endpoint)
		}
		if !strings.EqualFold(a.TokenType, "Bearer") {
			return "", fmt.Errorf("%s answered a token of type %q, not Bearer", endpoint, safe(a.TokenType))
		}
		return a.AccessToken, nil
	}
	// The server's words, never the platform's token (should it be echoed).
	words := a.ErrorDescription
	if words == "" {
		words = a.Error
	}
	if notJSON {
		words = strings.TrimPrefix(excerpt(body), ": ")
	}
	words = safe(strings.ReplaceAll(words, subject, "(the platform's token)"))
	if words == "" {
		words = resp.Status
	}

	switch code := resp.StatusCode; {
	case code >= 300 && code < 400:
		return "", fmt.Errorf("%s answered %s to %s, which was not followed: set --issuer to the service's own URL", endpoint, resp.Status, safe(resp.Header.Get("Location")))
	case code == http.StatusTooManyRequests:
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
			return "", fmt.Errorf("the token exchange was refused for now: %s: retry in %s", words, time.Duration(secs)*time.Second)
		}
		return "", fmt.Errorf("the token exchange was refused for now: %s", words)
	case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
		return "", &exitErr{code: exitUnreachable, err: fmt.Errorf("the server at %s did not answer: %s", endpoint, words)}
	case notJSON || a.Error == "":
		return "", fmt.Errorf("%s answered %s (%s), not as a token endpoint: is --issuer this service's REST base URL?", endpoint, resp.Status, words)
	}
	switch a.Error {
	case "invalid_request", "invalid_grant", "invalid_client", "unauthorized_client", "access_denied":
		// RFC 8693 §2.2.2: invalid_request is the subject token refused.
		return "", &exitErr{code: exitCredentials, err: fmt.Errorf("the server refused the platform's token: %s", words)}
	case "unsupported_grant_type":
		return "", fmt.Errorf("the server at %s does not exchange platform tokens (RFC 8693 token exchange): %s", endpoint, words)
	}
	return "", fmt.Errorf("the token exchange was refused: %s (%s)", words, safe(a.Error))
}
