package main

import (
	"context"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tokenservice/tokenservice/pkg/httprule"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// newBrowser starts headless Chromium, from Debian's package (make test
// installs it), and fails, not skips, when it is missing. The flags keep it
// from calling out: this machine's network is closed.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium on PATH (make chromium installs Debian's): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// Swagger UI, in a real browser against a real server: /docs loads with no
// request leaving the host, lists every operation, takes a token through
// Authorize (the OpenAPI 3 bearer scheme adds "Bearer " itself), and Try it
// out answers 200 on ListTokens and on CreateToken with its shipped example.
func TestSwaggerUIInABrowser(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "alice", "human")
	token := rpc{t, s.grpcCaller()}.login("alice")
	ctx := newBrowser(t)

	host := strings.TrimPrefix(s.httpURL, "http://")
	var mu sync.Mutex
	var requested []string
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("starting the browser: %v", err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requested = append(requested, e.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}

	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	op := func(id string) string { return "#operations-TokenService-TokenService_" + id }
	tryOut := func(id string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.Click(css(op(id)+" .opblock-summary-control")),
			chromedp.WaitVisible(css(op(id)+" .try-out__btn")),
			chromedp.Click(css(op(id)+" .try-out__btn")),
			chromedp.WaitVisible(css(op(id)+" .execute")),
			chromedp.Click(css(op(id)+" .execute")),
			chromedp.WaitVisible(css(op(id)+" .live-responses-table tbody .response-col_status")),
		)
	}
	text := func(sel string) string {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return got
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(s.httpURL+"/docs/"),
		chromedp.WaitVisible(css(".opblock")),
	)
	if err != nil {
		t.Fatalf("loading /docs: %v", err)
	}
	listed, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".opblock")].map(e => e.id)`))
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		// Authorize with the token alone (the Bearer scheme; Basic, for a
		// password, is the other).
		chromedp.Click(css("button.authorize")),
		chromedp.WaitVisible(css(".modal-ux #auth-bearer-value")),
		chromedp.SendKeys(css(".modal-ux #auth-bearer-value"), token),
		chromedp.Click(css(".modal-ux .auth-container:has(#auth-bearer-value) .auth-btn-wrapper button.authorize")),
		chromedp.Click(css(".modal-ux button.btn-done")),
		tryOut("ListTokens"),
		tryOut("CreateToken"),
	)
	if err != nil {
		t.Fatalf("driving Swagger UI: %v", err)
	}
	listStatus := text(op("ListTokens") + " .live-responses-table tbody .response-col_status")
	createStatus := text(op("CreateToken") + " .live-responses-table tbody .response-col_status")
	createBody := text(op("CreateToken") + " .live-responses-table tbody .response-col_description")

	for _, r := range httprule.ForServices("priv.tokenservice.v1alpha1.AuditService", "priv.tokenservice.v1alpha1.TokenService", "priv.tokenservice.v1alpha1.UserService") {
		id := "operations-" + string(r.Method.Parent().Name()) + "-" + string(r.Method.Parent().Name()) + "_" + string(r.Method.Name())
		if !strings.Contains(strings.Join(listed, " "), id) {
			t.Errorf("Swagger UI does not list %s (it lists %v)", id, listed)
		}
	}
	if strings.TrimSpace(listStatus) != "200" {
		t.Errorf("Try it out on ListTokens after Authorize: %q, want 200", listStatus)
	}
	if strings.TrimSpace(createStatus) != "200" || !strings.Contains(createBody, "tks_") || !strings.Contains(createBody, "my laptop") {
		t.Errorf("Try it out on CreateToken with the shipped example: %q %.200q, want 200 with a token noted \"my laptop\"", createStatus, createBody)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(requested) < 3 {
		t.Fatalf("the browser made only %d requests: %v", len(requested), requested)
	}
	for _, r := range requested {
		if u, err := url.Parse(r); err != nil || (u.Host != host && u.Scheme != "data") {
			t.Errorf("Swagger UI requested %s, off the host %s", r, host)
		}
	}
}
