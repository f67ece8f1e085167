package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tokenservice/tokenservice/pkg/console"
)

func TestTheCLIClientIDIsTheConsoles(t *testing.T) {
	if cliClientID != console.CLIClientID {
		t.Errorf("the CLI signs in as %q, the console knows %q", cliClientID, console.CLIClientID)
	}
}

// syncBuffer is a buffer a command writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startLogin runs tokenservice login --sso with args in sh, in the
// background; wait returns its error once it ends.
func (sh *shell) startLogin(args ...string) (stderr *syncBuffer, stdout *syncBuffer, wait func() error) {
	stderr, stdout = &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), append([]string{"tokenservice", "login", "--sso"}, args...),
			func(k string) string { return sh.env[k] }, strings.NewReader(""), stdout, stderr)
	}()
	return stderr, stdout, func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			return context.DeadlineExceeded
		}
	}
}

// waitForLine waits until the command has written a line matching re.
func waitForLine(t *testing.T, b *syncBuffer, re *regexp.Regexp) []string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
	}
	t.Fatalf("the CLI did not say %v: %q", re, b.String())
	return nil
}

// tokenservice login --sso, end to end: the browser (signed in to the
// console through the provider) approves the CLI on its loopback redirect;
// with --device, on the device page with the code the CLI shows. Either
// ends logged in as a password login does: whoami answers as the person.
// A denied sign-in leaves the CLI logged out.
func TestLoginWithSSO(t *testing.T) {
	idp := startIdentityProvider(t)
	s := startSSOService(t, "sqlite", idp)
	ctx := newBrowser(t)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	do := browserSteps(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.httpURL+"/console/")); err != nil {
		t.Fatal(err)
	}
	do("signing in to the console", chromedp.Click(css(`a[href="/console/sso/start"]`)),
		chromedp.WaitVisible(css(`form[action="/login/username"] #username`)),
		chromedp.SendKeys(css(`form[action="/login/username"] #username`), "bob@example.com"),
		chromedp.SendKeys(css(`form[action="/login/username"] #password`), opPassword),
		chromedp.Click(css(`form[action="/login/username"] button[type=submit]`)),
		chromedp.WaitVisible(css(".who")))

	t.Run("loopback", func(t *testing.T) {
		sh := s.newShell(t)
		sh.env["BROWSER"] = "true" // the test's browser opens the URL, not a command
		stderr, stdout, wait := sh.startLogin("--url", s.httpURL)
		url := waitForLine(t, stderr, regexp.MustCompile(`(http://\S+/console/cli/authorize\?\S+)`))[1]
		do("approving the CLI", chromedp.Navigate(url), chromedp.WaitVisible(css(`button[value="allow"]`)))
		screenshot(t, ctx, "cli-authorize")
		checkAccessibility(t, ctx, "cli-authorize")
		do("allowing", chromedp.Click(css(`button[value="allow"]`)), chromedp.WaitVisible(css("body")))
		if err := wait(); err != nil {
			t.Fatalf("login --sso: %v\n%s", err, stderr)
		}
		if !strings.Contains(stdout.String(), "as bob@example.com") {
			t.Errorf("login --sso said %q", stdout)
		}
		if out := sh.must("", "whoami"); !strings.Contains(out, "bob@example.com") {
			t.Errorf("whoami after login --sso: %q", out)
		}
	})

	t.Run("device", func(t *testing.T) {
		sh := s.newShell(t)
		stderr, stdout, wait := sh.startLogin("--device", "--url", s.httpURL)
		m := waitForLine(t, stderr, regexp.MustCompile(`enter the code ([A-Z]{4}-[A-Z]{4})\s+\(or open (\S+)\)`))
		do("opening the device page", chromedp.Navigate(m[2]), chromedp.WaitVisible(css("#user_code")))
		checkAccessibility(t, ctx, "device")
		do("confirming the code", chromedp.Click(css(`form[action="/console/device"] button`)), chromedp.WaitVisible(css(`button[value="allow"]`)))
		screenshot(t, ctx, "device")
		checkAccessibility(t, ctx, "device-confirm")
		if page, _ := chromedp.Run(ctx, chromedp.Text(css("main"))); !strings.Contains(page, m[1]) {
			t.Errorf("the confirmation does not show the code %s: %q", m[1], page)
		}
		do("allowing", chromedp.Click(css(`button[value="allow"]`)), chromedp.WaitVisible(css(".notice")))
		if err := wait(); err != nil {
			t.Fatalf("login --sso --device: %v\n%s", err, stderr)
		}
		if out := sh.must("", "whoami"); !strings.Contains(out, "bob@example.com") || !strings.Contains(stdout.String(), "bob@example.com") {
			t.Errorf("whoami after login --sso --device: %q (%q)", out, stdout)
		}
	})

	t.Run("denied", func(t *testing.T) {
		sh := s.newShell(t)
		sh.env["BROWSER"] = "true"
		stderr, _, wait := sh.startLogin("--url", s.httpURL)
		url := waitForLine(t, stderr, regexp.MustCompile(`(http://\S+/console/cli/authorize\?\S+)`))[1]
		do("denying the CLI", chromedp.Navigate(url), chromedp.WaitVisible(css(`button[value="deny"]`)),
			chromedp.Click(css(`button[value="deny"]`)), chromedp.WaitVisible(css("body")))
		if err := wait(); err == nil || exitCode(err) != exitCredentials {
			t.Errorf("a denied login --sso: %v (exit %d), want refused credentials", err, exitCode(err))
		}
		sh.want(exitCredentials, "", "", "whoami")
	})

	got := map[string]int{}
	for _, ev := range signInEvents(t, s) {
		if m := ev.GetDetails()["method"]; strings.HasPrefix(m, "cli_") {
			got[ev.GetOutcome()+" "+m+" "+ev.GetDetails()["reason"]+" "+ev.GetSubject().GetUsername()]++
		}
	}
	for _, want := range []string{"success cli_loopback  bob@example.com", "success cli_device  bob@example.com",
		"denied cli_loopback denied_by_user bob@example.com"} {
		if got[want] != 1 {
			t.Errorf("the audit trail's CLI sign-ins: %v, want one %q", got, want)
		}
	}
}
