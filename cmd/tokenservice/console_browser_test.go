package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// apiStatus is the REST API's answer to a listing with bearer.
func apiStatus(t *testing.T, s *service, bearer string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.httpURL+"/v1alpha1/tokens", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	return resp.StatusCode
}

// screenshot saves the page as docs/console/<name>.png when
// TOKENSERVICE_SCREENSHOTS names a directory (make screenshots), so that
// the README's pictures are the tests' own.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("TOKENSERVICE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// axeSource is axe-core, the accessibility engine, from the npm registry
// (make test installs it, pinned by scripts/axe/package-lock.json).
var axeSource = sync.OnceValues(func() ([]byte, error) {
	return os.ReadFile("../../scripts/axe/node_modules/axe-core/axe.min.js")
})

// checkAccessibility runs axe-core on the page (WCAG 2.1 A and AA, and
// best practices) and fails the test on a serious or critical violation.
func checkAccessibility(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	for _, v := range axeViolations(t, ctx, name) {
		t.Errorf("%s: %s", name, v)
	}
}

// axeViolations returns the serious and critical violations axe-core
// finds on the page.
func axeViolations(t *testing.T, ctx context.Context, name string) []string {
	t.Helper()
	src, err := axeSource()
	if err != nil {
		t.Fatalf("axe-core (make test installs it with npm): %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](string(src)+";true")); err != nil {
		t.Fatalf("loading axe-core into %s: %v", name, err)
	}
	found, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`axe.run(document, {runOnly: {type: "tag",
		values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}).then(r => r.violations
		.filter(v => v.impact === "serious" || v.impact === "critical")
		.map(v => v.impact + " " + v.id + ": " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", ")))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("running axe-core on %s: %v", name, err)
	}
	return found
}

// browserSteps returns a runner of browser steps, each within 15 s, that
// fails the test with what the page shows when one does not finish.
func browserSteps(t *testing.T, ctx context.Context) func(what string, steps ...chromedp.Action[chromedp.Void]) {
	return func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		stepCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(stepCtx, steps...); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
			t.Fatalf("%s: %v; the page:\n%.2000s", what, err, page)
		}
	}
}

// The console in a real browser: sign in through the provider, create a
// token (its plaintext works against the API, and is never shown again),
// rotate it (the old secret is refused, the new one works), revoke it (the
// API refuses it), read it at 320 px, sign out.
func TestConsoleInABrowser(t *testing.T) {
	idp := startIdentityProvider(t)
	s := startSSOService(t, "mysql", idp, "TOKENSERVICE_TRUSTED_ISSUERS", "https://token.actions.githubusercontent.com")
	ctx := newBrowser(t)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	do := browserSteps(t, ctx)
	get := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}

	// The first call starts the browser, which lives as long as its context.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1100, 760)); err != nil {
		t.Fatalf("starting the browser: %v", err)
	}
	do("opening the console", chromedp.Navigate(s.httpURL+"/console/"),
		chromedp.WaitVisible(css(`a[href="/console/sso/start"]`)))
	screenshot(t, ctx, "sign-in")
	checkAccessibility(t, ctx, "sign-in")
	do("going to the provider", chromedp.Click(css(`a[href="/console/sso/start"]`)),
		chromedp.WaitVisible(css(`form[action="/login/username"] #username`)))
	// The example provider's page has no lang attribute: axe must say so,
	// or it is not looking.
	if found := axeViolations(t, ctx, "the provider's login page"); !strings.Contains(strings.Join(found, "\n"), "html-has-lang") {
		t.Errorf("axe-core found %q on a page without lang: is it running?", found)
	}
	do("signing in at the provider",
		chromedp.SendKeys(css(`form[action="/login/username"] #username`), "alice@example.com"),
		chromedp.SendKeys(css(`form[action="/login/username"] #password`), opPassword),
		chromedp.Click(css(`form[action="/login/username"] button[type=submit]`)),
		chromedp.WaitVisible(css(".who")))
	if who := get("reading who is signed in", chromedp.Text(css(".who"))); !strings.Contains(who, "alice@example.com") || !strings.Contains(who, "admin") {
		t.Fatalf("signed in as %q, want alice@example.com, an admin", who)
	}

	do("creating a token",
		chromedp.Click(css(`a.button[href="/console/tokens/new"]`)),
		chromedp.WaitVisible(css("#note")),
		chromedp.SendKeys(css("#note"), "deploy bot"),
		chromedp.Click(css(`input[value="tokens:read"]`)))
	screenshot(t, ctx, "create")
	checkAccessibility(t, ctx, "create")
	do("sending the form", chromedp.Click(css(`form[action="/console/tokens"] button[type=submit]`)), chromedp.WaitVisible(css("#plaintext")))
	plaintext := get("reading the token", chromedp.Value(css("#plaintext")))
	if !strings.HasPrefix(plaintext, "tks_") {
		t.Fatalf("the created page shows %q, not a token", plaintext)
	}
	do("copying it", chromedp.Click(css("button[data-copy]")), chromedp.WaitVisible(css(".copied:not(:empty)")))
	screenshot(t, ctx, "created")
	checkAccessibility(t, ctx, "created")
	if got := apiStatus(t, s, plaintext); got != http.StatusOK {
		t.Errorf("the console's token against the API: %d, want 200", got)
	}

	do("listing the tokens", chromedp.Navigate(s.httpURL+"/console/"), chromedp.WaitVisible(css("table.tokens")))
	screenshot(t, ctx, "tokens")
	checkAccessibility(t, ctx, "tokens")
	if page := get("reading the list", chromedp.OuterHTML(css("html"))); !strings.Contains(page, "deploy bot") || strings.Contains(page, plaintext[4:]) {
		t.Errorf("the list does not name the token, or shows its secret again:\n%.600s", page)
	}

	do("rotating it", chromedp.Click(css(`a[href$="/rotate"]`)), chromedp.WaitVisible(css(`form[action$="/rotate"]`)))
	screenshot(t, ctx, "rotate")
	checkAccessibility(t, ctx, "rotate")
	do("confirming", chromedp.Click(css(`form[action$="/rotate"] button`)), chromedp.WaitVisible(css("#plaintext")))
	rotated := get("reading the new secret", chromedp.Value(css("#plaintext")))
	if rotated == plaintext || !strings.HasPrefix(rotated, "tks_") {
		t.Fatalf("the rotation shows %q", rotated)
	}
	if old, now := apiStatus(t, s, plaintext), apiStatus(t, s, rotated); old != http.StatusUnauthorized || now != http.StatusOK {
		t.Errorf("after the rotation the old secret answers %d (want 401), the new %d (want 200)", old, now)
	}

	do("revoking it", chromedp.Navigate(s.httpURL+"/console/"), chromedp.WaitVisible(css(`a[href$="/revoke"]`)),
		chromedp.Click(css(`a[href$="/revoke"]`)), chromedp.WaitVisible(css(`form[action$="/revoke"]`)))
	screenshot(t, ctx, "revoke")
	checkAccessibility(t, ctx, "revoke")
	do("confirming", chromedp.Click(css(`form[action$="/revoke"] button`)), chromedp.WaitVisible(css(".notice")))
	if got := apiStatus(t, s, rotated); got != http.StatusUnauthorized {
		t.Errorf("the revoked token against the API: %d, want 401", got)
	}

	// A machine user, a token for it, a federated credential; then the
	// audit trail and, for an admin, the users.
	do("making a machine user", chromedp.Click(css(`nav a[href="/console/machine-users"]`)), chromedp.WaitVisible(css("#username")),
		chromedp.SendKeys(css("#username"), "ci-bot"), chromedp.Click(css(`form[action="/console/machine-users"] button`)),
		chromedp.WaitVisible(css(`a.button[href^="/console/tokens/new?user="]`)))
	do("a token for it", chromedp.Click(css(`a.button[href^="/console/tokens/new?user="]`)), chromedp.WaitVisible(css("#note")),
		chromedp.SendKeys(css("#note"), "CI pipeline"), chromedp.Click(css(`input[value="tokens:read"]`)),
		chromedp.Click(css(`form[action="/console/tokens"] button[type=submit]`)), chromedp.WaitVisible(css("#plaintext")))
	machineToken := get("reading the machine's token", chromedp.Value(css("#plaintext")))
	if got := apiStatus(t, s, machineToken); got != http.StatusOK {
		t.Errorf("the machine user's token against the API: %d, want 200", got)
	}
	do("adding a federated credential", chromedp.Click(css(`a[href^="/console/machine-users/"]`)), chromedp.WaitVisible(css("#subject")),
		chromedp.SendKeys(css("#subject"), "repo:acme/app:ref:refs/heads/main"),
		chromedp.SendKeys(css("#audiences"), "https://github.com/acme"),
		chromedp.SendKeys(css("#description"), "deploys from main"),
		chromedp.Click(css(`input[id="cred-scope-tokens:read"]`)),
		chromedp.Click(css(`form[action$="/credentials"] button`)), chromedp.WaitVisible(css(".notice")))
	if page := get("reading the machine user", chromedp.OuterHTML(css("main"))); !strings.Contains(page, "repo:acme/app:ref:refs/heads/main") ||
		!strings.Contains(page, "CI pipeline") {
		t.Errorf("the machine user's page lacks its credential or token:\n%.800s", page)
	}
	screenshot(t, ctx, "machine-user")
	checkAccessibility(t, ctx, "machine-user")
	do("the machine users", chromedp.Click(css(`nav a[href="/console/machine-users"]`)), chromedp.WaitVisible(css("table.list")))
	screenshot(t, ctx, "machine-users")
	checkAccessibility(t, ctx, "machine-users")
	do("the audit trail", chromedp.Click(css(`nav a[href="/console/audit"]`)), chromedp.WaitVisible(css("table.list")))
	if page := get("reading the audit", chromedp.OuterHTML(css("main"))); !strings.Contains(page, "federated_credential.create") ||
		!strings.Contains(page, "user.sign_in") || !strings.Contains(page, "token.rotate") {
		t.Errorf("the audit page lacks this session's events:\n%.1200s", page)
	}
	screenshot(t, ctx, "audit")
	checkAccessibility(t, ctx, "audit")
	do("the users", chromedp.Click(css(`nav a[href="/console/users"]`)), chromedp.WaitVisible(css("table.list")))
	if page := get("reading the users", chromedp.OuterHTML(css("main"))); !strings.Contains(page, "ci-bot") || !strings.Contains(page, "alice@example.com") {
		t.Errorf("the users page lacks alice or ci-bot:\n%.800s", page)
	}
	screenshot(t, ctx, "users")
	checkAccessibility(t, ctx, "users")

	// 320 px wide (WCAG 2.1 reflow): a token's card, nothing wider than the screen.
	do("creating another", chromedp.Navigate(s.httpURL+"/console/tokens/new"), chromedp.WaitVisible(css("#note")),
		chromedp.SendKeys(css("#note"), "laptop"), chromedp.Click(css(`input[value="tokens:write"]`)),
		chromedp.Click(css(`form[action="/console/tokens"] button[type=submit]`)), chromedp.WaitVisible(css("#plaintext")))
	do("narrowing", chromedp.EmulateViewport(320, 640), chromedp.Navigate(s.httpURL+"/console/"), chromedp.WaitVisible(css("table.tokens")))
	screenshot(t, ctx, "tokens-320px")
	checkAccessibility(t, ctx, "tokens-320px")
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil || width > 320 {
		t.Errorf("at 320 px the page is %d px wide (%v): it scrolls sideways", width, err)
	}

	do("signing out", chromedp.EmulateViewport(1100, 760), chromedp.Click(css(`form[action="/console/sign-out"] button`)),
		chromedp.WaitVisible(css(`a[href="/console/sso/start"]`)),
		chromedp.Navigate(s.httpURL+"/console/"), chromedp.WaitVisible(css(`a[href="/console/sso/start"]`)))
	if loc := get("reading where the console went", chromedp.Location()); !strings.HasSuffix(loc, "/console/sign-in") {
		t.Errorf("after signing out /console/ went to %s, want the sign-in page", loc)
	}
}
