// Package console is the browser console at /console: people sign in
// (through the operator's OpenID provider, or with a password where that
// is allowed) and manage their tokens. It is a door onto the same rules as
// the API (pkg/tokens, pkg/users), server-rendered with html/template and a
// little JavaScript from this binary, under a strict Content-Security-Policy.
//
// A signed-in browser holds a session secret in an HttpOnly, SameSite=Strict
// cookie (Secure over TLS); the database keeps its SHA-256. Every state
// change is a POST carrying a CSRF token derived from the session secret
// (before sign-in, a double-submitted cookie), and its Origin, when sent,
// must be this host. The API never reads the cookie: it takes bearer
// tokens only, so no other page can borrow the console's power.
package console

import (
	"context"
	"crypto/rand"
	"embed"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/federation"
	"github.com/tokenservice/tokenservice/pkg/sso"
	"github.com/tokenservice/tokenservice/pkg/throttle"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// Config is how the console behaves.
type Config struct {
	// SessionLifetime bounds a session from its sign-in; 0: 8 hours.
	SessionLifetime time.Duration
	// IdleTimeout ends a session unused that long; 0: 1 hour.
	IdleTimeout time.Duration
	// SecureCookies sets the Secure attribute (and the __Host- prefix) on
	// the cookies: the console is served over TLS, by this server or by a
	// proxy in front of it. A request over TLS sets it anyway.
	SecureCookies bool
	// PasswordsForAdminsOnly: password sign-in is for break-glass admins
	// only (users.Config.PasswordsForAdminsOnly); the sign-in page shows
	// the provider's button, and the password form only behind a link.
	PasswordsForAdminsOnly bool
	// ProviderName is the identity provider's name on its button; "":
	// "your identity provider".
	ProviderName string
	// BaseURL is the service's public URL (its issuer): the device
	// grant's verification URI is under it.
	BaseURL string
}

// Deps are what the console works with.
type Deps struct {
	Sessions  domain.Sessions
	CLIGrants domain.CLIGrants
	// UserByID reads a session's user (through the cache).
	UserByID func(ctx context.Context, id string) (*domain.User, error)
	Users    *users.Service
	Tokens   *tokens.Service
	// Federation and Audit are the federated credentials' and the audit
	// trail's rules; TrustedIssuers, the operator's (the form offers them).
	Federation     *federation.Service
	Audit          *audit.Service
	TrustedIssuers []string
	SSO            *sso.Provider // nil: no single sign-on
	Logger         *slog.Logger
	Clock          func() time.Time
	Rand           io.Reader
}

// Console serves /console.
type Console struct {
	cfg   Config
	deps  Deps
	pages map[string]*template.Template
	// anonymous limits the requests that write before a sign-in, per
	// client address; userCodes, the device codes a person tries.
	anonymous *throttle.Limiter
	userCodes *throttle.Limiter
}

// anonymousPerMinute is how many sign-ins with the provider, refused
// callbacks and device authorizations one address may start a minute.
const anonymousPerMinute = 30

// userCodesPerMinute is how many device codes one person may try a minute.
const userCodesPerMinute = 10

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// New returns the console.
func New(cfg Config, deps Deps) *Console {
	if cfg.SessionLifetime <= 0 {
		cfg.SessionLifetime = 8 * time.Hour
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = time.Hour
	}
	if cfg.ProviderName == "" {
		cfg.ProviderName = "your identity provider"
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Rand == nil {
		deps.Rand = rand.Reader
	}
	return &Console{cfg: cfg, deps: deps, pages: parsePages(), anonymous: throttle.New(anonymousPerMinute, 100_000, deps.Clock),
		userCodes: throttle.New(userCodesPerMinute, 100_000, deps.Clock)}
}

// parsePages parses each page with the layout it fills.
func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{"when": when, "join": joinScopes, "table": func(caption string, list []*domain.Token) any {
		return struct {
			Caption string
			Tokens  []*domain.Token
		}{caption, list}
	}}
	pages := map[string]*template.Template{}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, name := range names {
		if name == "templates/layout.html" || name == "templates/partials.html" {
			continue
		}
		pages[name[len("templates/"):len(name)-len(".html")]] = template.Must(
			template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/partials.html", name))
	}
	return pages
}

// Routes returns the console's routes, by http.ServeMux pattern.
func (c *Console) Routes() map[string]http.Handler {
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err)
	}
	routes := map[string]http.HandlerFunc{
		"GET /console": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
		},
		"GET /console/{$}":                                           c.signedIn(c.tokensPage),
		"GET /console/sign-in":                                       c.signInPage,
		"POST /console/sign-in":                                      c.passwordSignIn,
		"GET /console/sso/start":                                     c.ssoStart,
		"GET /console/sso/callback":                                  c.ssoCallback,
		"POST /console/sign-out":                                     c.signedIn(c.signOut),
		"GET /console/tokens/new":                                    c.signedIn(c.newTokenPage),
		"POST /console/tokens":                                       c.signedIn(c.createToken),
		"GET /console/tokens/{id}/{action}":                          c.signedIn(c.confirmPage),
		"POST /console/tokens/{id}/revoke":                           c.signedIn(c.revokeToken),
		"POST /console/tokens/{id}/rotate":                           c.signedIn(c.rotateToken),
		"GET /console/static/{file}":                                 cacheable(http.StripPrefix("/console/static/", http.FileServerFS(static))),
		"GET /console/session-expired":                               c.expiredPage,
		"GET /console/machine-users":                                 c.signedIn(c.machinesPage),
		"POST /console/machine-users":                                c.signedIn(c.createMachine),
		"GET /console/machine-users/{user}/{$}":                      c.signedIn(c.machinePage),
		"GET /console/machine-users/{user}/delete":                   c.signedIn(c.confirmMachinePage),
		"POST /console/machine-users/{user}/delete":                  c.signedIn(c.deleteMachine),
		"POST /console/machine-users/{user}/credentials":             c.signedIn(c.createCredential),
		"GET /console/machine-users/{user}/credentials/{id}/delete":  c.signedIn(c.confirmMachinePage),
		"POST /console/machine-users/{user}/credentials/{id}/delete": c.signedIn(c.deleteCredential),
		"GET /console/audit":                                         c.signedIn(c.auditPage),
		"GET /console/users":                                         c.signedIn(c.usersPage),
		"GET /console/cli/authorize":                                 c.signedIn(c.cliAuthorizePage),
		"POST /console/cli/authorize":                                c.signedIn(c.cliAuthorize),
		"POST /console/cli/device":                                   c.deviceAuthorization,
		"POST /console/cli/token":                                    c.cliToken,
		"GET /console/device":                                        c.signedIn(c.devicePage),
		"POST /console/device":                                       c.signedIn(c.deviceConfirm),
		"POST /console/device/decide":                                c.signedIn(c.deviceDecide),
		"/console/":                                                  c.notFound,
	}
	out := make(map[string]http.Handler, len(routes))
	for pattern, h := range routes {
		out[pattern] = withHeaders(h)
	}
	return out
}

// cacheable lets browsers keep the console's script and style an hour
// (withHeaders makes everything else no-store).
func cacheable(h http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	}
}

// contentSecurityPolicy allows this origin's scripts, styles and images
// only, no inline script or style, no frame, and forms posting here.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxFormBytes bounds a form's body.
const maxFormBytes = 16 << 10

// withHeaders sets the headers every console answer carries, and bounds
// what a form may send.
func withHeaders(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		// The callback's URL carries a code and a state: no page sends it to
		// another origin. (no-referrer would also make the browser's Origin
		// on the console's own forms "null", which sameOrigin refuses.)
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		h(w, r)
	})
}
