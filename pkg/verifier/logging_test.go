package verifier_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokenservice/tokenservice/internal/testlog"
	"github.com/tokenservice/tokenservice/pkg/verifier"
)

// A kid or typ the token's bearer chose reaches the logs clipped and
// quoted, however long it is and whatever it holds: at debug level (the
// token refused) and at warn level (the fetch it caused failed).
func TestHugeHeaderValuesAreNotLoggedWhole(t *testing.T) {
	a := newTestKey(t)
	ti := newTestIssuer(t, a)
	log := &testlog.Buffer{}
	v := ti.newVerifier(t, verifier.Config{Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ti.fail(http.StatusInternalServerError, "down") // the fetch for the unknown kid fails: a warning
	const size = 1 << 20
	huge := "kk\nlevel=ERROR msg=forged " + strings.Repeat("k", size)
	es256 := jose.JSONWebKey{Key: a.priv}
	h := v.Middleware(http.NotFoundHandler())
	for name, token := range map[string]string{
		"kid": mint(t, jose.ES256, es256, map[string]any{"kid": huge, "typ": "at+jwt"}, ti.validClaims()),
		"typ": mint(t, jose.ES256, es256, map[string]any{"kid": a.kid, "typ": huge}, ti.validClaims()),
	} {
		before := len(log.String())
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, rec.Code)
		}
		logged := log.String()[before:]
		if !strings.Contains(logged, "access token refused") || !strings.Contains(logged, "kk") {
			t.Errorf("%s: the log does not say why the token was refused:\n%s", name, logged)
		}
		if len(logged) > 2000 || strings.Contains(logged, strings.Repeat("k", 100)) || strings.Contains(logged, "\nlevel=ERROR msg=forged") {
			t.Errorf("%s: %d bytes logged, the value whole or a line forged:\n%.3000s", name, len(logged), logged)
		}
		if name == "kid" && !strings.Contains(logged, "refreshing keys for an unknown kid failed") {
			t.Errorf("kid: no warning of the failed fetch:\n%s", logged)
		}
	}
}
