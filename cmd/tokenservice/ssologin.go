package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cliClientID is the client ID the server's console knows the CLI by
// (console.CLIClientID; TestTheCLIClientIDIsTheConsoles keeps them one).
const cliClientID = "tokenservice-cli"

// ssoWait bounds how long login --sso waits for the person.
const ssoWait = 10 * time.Minute

// ssoLogin signs in through the server's console, with the server as the
// authorization server: in a browser on this machine, the authorization
// code grant on a loopback redirect (RFC 8252 §7.3, PKCE, RFC 7636); with
// device, the device authorization grant (RFC 8628): a URL and a code to
// enter on any device. It returns the API token and whose it is.
func ssoLogin(ctx context.Context, e *env, hc *http.Client, base string, device bool, lifetime time.Duration) (token, username string, err error) {
	ctx, cancel := context.WithTimeout(ctx, ssoWait)
	defer cancel()
	host, _ := os.Hostname()
	form := url.Values{"client_id": {cliClientID}, "token_lifetime": {strconv.FormatInt(int64(lifetime.Seconds()), 10)}}
	interval := 5 * time.Second
	if device {
		form, interval, err = deviceGrant(ctx, e, hc, base, host, form)
	} else {
		form, err = loopbackGrant(ctx, e, base, host, form)
	}
	if err != nil {
		return "", "", err
	}
	for {
		answer, err := postConsole(ctx, hc, base+"/console/cli/token", form)
		if err != nil {
			return "", "", err
		}
		switch answer.Error {
		case "":
			return answer.AccessToken, answer.Username, nil
		case "authorization_pending":
		case "slow_down":
			interval += 5 * time.Second // RFC 8628 §3.5
		default:
			return "", "", &exitErr{code: exitCredentials, err: fmt.Errorf("the sign-in was refused: %s (%s)", answer.Error, answer.Description)}
		}
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("no one approved the sign-in within %v", ssoWait)
		case <-time.After(interval):
		}
	}
}

// consoleAnswer is what the console's token endpoint answers.
type consoleAnswer struct {
	AccessToken string `json:"access_token"`
	Username    string `json:"username"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
	// The device authorization's.
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	Interval                int    `json:"interval"` // seconds between polls (RFC 8628 §3.2)
}

func postConsole(ctx context.Context, hc *http.Client, to string, form url.Values) (*consoleAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &exitErr{code: exitUnreachable, err: fmt.Errorf("the server's console: %w", err)}
	}
	defer resp.Body.Close()
	var a consoleAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&a); err != nil {
		return nil, fmt.Errorf("%s answered %s, not a token answer: is --url the server's HTTP address?", to, resp.Status)
	}
	return &a, nil
}

// deviceGrant starts a device authorization and tells the person where to
// approve it; it returns the token request that polls for it, and how
// often to poll.
func deviceGrant(ctx context.Context, e *env, hc *http.Client, base, host string, form url.Values) (url.Values, time.Duration, error) {
	a, err := postConsole(ctx, hc, base+"/console/cli/device", url.Values{"client_id": {cliClientID}, "host": {host}})
	if err != nil {
		return nil, 0, err
	}
	if a.Error != "" || a.DeviceCode == "" {
		return nil, 0, fmt.Errorf("the server did not start a device sign-in: %s %s", a.Error, a.Description)
	}
	fmt.Fprintf(e.stderr, "To sign in, open %s on any device and enter the code %s\n(or open %s).\nWaiting...\n",
		a.VerificationURI, a.UserCode, a.VerificationURIComplete)
	form.Set("grant_type", "urn:ietf:params:oauth:grant-type:device_code")
	form.Set("device_code", a.DeviceCode)
	return form, time.Duration(max(a.Interval, 5)) * time.Second, nil
}

// loopbackGrant opens the browser on the console's authorization page and
// waits on 127.0.0.1 for it to come back with a code; it returns the token
// request that exchanges the code.
func loopbackGrant(ctx context.Context, e *env, base, host string, form url.Values) (url.Values, error) {
	verifier := rand.Text() + rand.Text() // 52 of A-Z 2-7: RFC 7636 §4.1's 43 to 128 unreserved characters
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	redirect := "http://" + ln.Addr().String() + "/callback"
	type result struct{ code, err string }
	got := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/callback" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
			http.Error(w, "not this sign-in", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if q.Get("error") != "" {
			io.WriteString(w, "<!doctype html><title>tokenservice</title><p>The sign-in was denied. You can close this tab.")
		} else {
			io.WriteString(w, "<!doctype html><title>tokenservice</title><p>You are signed in: go back to the terminal. You can close this tab.")
		}
		select {
		case got <- result{q.Get("code"), q.Get("error")}:
		default:
		}
	})}
	go srv.Serve(ln)
	defer func() {
		// Let the browser have its page before the listener goes.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	to := base + "/console/cli/authorize?" + url.Values{"client_id": {cliClientID}, "redirect_uri": {redirect}, "state": {state},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}, "host": {host}}.Encode()
	fmt.Fprintf(e.stderr, "Opening the browser to sign in; if it does not open, open this URL:\n%s\nWaiting...\n", to)
	if err := openBrowser(e, to); err != nil {
		fmt.Fprintf(e.stderr, "(no browser: %v; or run tokenservice login --sso --device)\n", err)
	}
	select {
	case r := <-got:
		if r.err != "" {
			return nil, &exitErr{code: exitCredentials, err: fmt.Errorf("the sign-in was refused in the browser: %s", r.err)}
		}
		form.Set("grant_type", "authorization_code")
		form.Set("code", r.code)
		form.Set("code_verifier", verifier)
		form.Set("redirect_uri", redirect)
		return form, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("the browser did not come back within %v", ssoWait)
	}
}

// openBrowser opens url in $BROWSER (a command), else the desktop's
// browser (xdg-open, open).
func openBrowser(e *env, url string) error {
	name := e.getenv("BROWSER")
	if name == "" {
		switch runtime.GOOS {
		case "darwin":
			name = "open"
		case "windows":
			return errors.New("open it yourself")
		default:
			name = "xdg-open"
		}
	}
	cmd := exec.Command(name, url)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	return cmd.Start()
}

// noBrowser reports whether this machine seems to have no browser to open
// (no $BROWSER, no display on Linux): login --sso then uses the device grant.
func noBrowser(e *env) bool {
	return e.getenv("BROWSER") == "" && runtime.GOOS == "linux" && e.getenv("DISPLAY") == "" && e.getenv("WAYLAND_DISPLAY") == ""
}

// consoleURL is the server's HTTP address for login --sso: --url, else
// https://host[:port] of a TLS --addr, else http://host:8080 of a
// plaintext one (serve's default ports).
func consoleURL(flag, addr string, useTLS bool) (string, error) {
	if flag != "" {
		u, err := url.Parse(flag)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("--url %q: want the server's HTTP address, such as https://tokens.example.com", flag)
		}
		return strings.TrimSuffix(flag, "/"), nil
	}
	target, _, err := parseAddr(addr)
	if err != nil {
		return "", err
	}
	h, port, err := net.SplitHostPort(target)
	if err != nil {
		return "", err
	}
	if useTLS {
		if port == "443" {
			return "https://" + h, nil
		}
		return "https://" + net.JoinHostPort(h, port), nil
	}
	return "http://" + net.JoinHostPort(h, "8080"), nil
}
