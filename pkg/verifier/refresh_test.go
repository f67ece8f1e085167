package verifier_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/internal/testlog"
	"github.com/tokenservice/tokenservice/pkg/verifier"
)

// The keys are fetched every RefreshInterval: a key published since is
// accepted with no fetch of its own, a withdrawn key is refused, and Close
// stops the fetching.
func TestBackgroundRefresh(t *testing.T) {
	a, b := newTestKey(t), newTestKey(t)
	ti := newTestIssuer(t, a)
	const interval = 20 * time.Millisecond
	// No fetch for an unknown kid in this test: only the background one.
	v := ti.newVerifier(t, verifier.Config{RefreshInterval: interval, MinRefreshInterval: time.Hour})
	ctx := context.Background()
	if _, err := v.Verify(ctx, ti.token(t, b, nil)); !errors.Is(err, verifier.ErrInvalidToken) {
		t.Fatalf("unpublished key: Verify = %v, want ErrInvalidToken", err) // uses up the unknown-kid fetch
	}

	ti.publish(b)
	waitFor(t, "acceptance of a key published since", func() bool {
		_, err := v.Verify(ctx, ti.token(t, b, nil))
		return err == nil
	})
	if _, err := v.Verify(ctx, ti.token(t, a, nil)); !errors.Is(err, verifier.ErrInvalidToken) {
		t.Errorf("key withdrawn: Verify = %v, want ErrInvalidToken", err)
	}

	v.Close()
	fetched := ti.jwksFetches.Load()
	time.Sleep(5 * interval)
	if got := ti.jwksFetches.Load(); got != fetched {
		t.Errorf("%d key set fetches after Close, want none", got-fetched)
	}
	v.Close() // a second Close is harmless: t.Cleanup calls it again too
}

// A fetch that fails, however it fails, leaves the keys in use: in the
// background and for an unknown kid.
func TestFailedRefreshKeepsTheKeys(t *testing.T) {
	for name, fail := range map[string]struct {
		code int
		body string
	}{
		"server error":       {http.StatusInternalServerError, "oops"},
		"not found":          {http.StatusNotFound, "not found"},
		"not JSON":           {http.StatusOK, "<html>maintenance</html>"},
		"no keys":            {http.StatusOK, `{"keys":[]}`},
		"only unusable keys": {http.StatusOK, `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"x"}]}`},
	} {
		t.Run(name, func(t *testing.T) {
			a := newTestKey(t)
			ti := newTestIssuer(t, a)
			log := &testlog.Buffer{} // the background refresh writes to it while the test reads
			v := ti.newVerifier(t, verifier.Config{RefreshInterval: 10 * time.Millisecond, MinRefreshInterval: time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(log, nil))})
			ctx := context.Background()
			ti.fail(fail.code, fail.body)

			fetched := ti.jwksFetches.Load()
			waitFor(t, "failed background fetches", func() bool { return ti.jwksFetches.Load() >= fetched+2 })
			if _, err := v.Verify(ctx, ti.token(t, a, nil)); err != nil {
				t.Errorf("after failed background fetches: %v", err)
			}

			fetched = ti.jwksFetches.Load()
			if _, err := v.Verify(ctx, ti.token(t, newTestKey(t), nil)); !errors.Is(err, verifier.ErrInvalidToken) {
				t.Errorf("unknown kid: Verify = %v, want ErrInvalidToken", err)
			}
			if ti.jwksFetches.Load() == fetched {
				t.Error("unknown kid: no fetch") // the background may also have fetched; this one must have
			}
			if _, err := v.Verify(ctx, ti.token(t, a, nil)); err != nil {
				t.Errorf("after a failed fetch for an unknown kid: %v", err)
			}
			for _, want := range []string{"refreshing keys failed", "refreshing keys for an unknown kid failed"} {
				if !strings.Contains(log.String(), want) {
					t.Errorf("the log does not say %q:\n%s", want, log.String())
				}
			}
		})
	}
}

// The fetch for an unknown kid is not the request's: a request cancelled
// before it ends does not cancel it nor use up MinRefreshInterval for the
// others (TestUnknownKidWaitEndsWithTheRequest: the request itself returns).
func TestUnknownKidRefreshOutlivesTheRequest(t *testing.T) {
	a, b := newTestKey(t), newTestKey(t)
	ti := newTestIssuer(t, a)
	v := ti.newVerifier(t, verifier.Config{MinRefreshInterval: time.Hour})
	ti.publish(a, b)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v.Verify(ctx, ti.token(t, b, nil)) // may return before the fetch ends, or after
	if _, err := v.Verify(context.Background(), ti.token(t, b, nil)); err != nil {
		t.Errorf("the next request: %v", err)
	}
	if got := ti.jwksFetches.Load(); got != 2 {
		t.Errorf("%d key set fetches, want 2 (New and the unknown kid)", got)
	}
}
