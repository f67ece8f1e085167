package console

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/sso"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// signInFor is how long a sign-in with the provider may take, from the
// button to the callback.
const signInFor = 10 * time.Minute

// returnPath is the console page a sign-in returns to: the request's
// "return" parameter if it is a path of the console (never another host,
// nor a path a browser would read as one: "//", "/\"), else its home.
func returnPath(r *http.Request) string {
	p := r.FormValue("return")
	if !strings.HasPrefix(p, "/console/") || strings.ContainsAny(p, "\\\r\n") || strings.Contains(p, "/..") || len(p) > 255 {
		return "/console/"
	}
	return p
}

type signInData struct {
	Return       string
	CSRF         string
	SSO          bool
	ProviderName string
	Password     bool // the password form is shown
	BreakGlass   bool // it is behind a link (passwords for admins only)
	Username     string
	Error        string
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if ses, err := c.currentSession(w, r); err == nil && ses != nil {
		http.Redirect(w, r, returnPath(r), http.StatusSeeOther)
		return
	}
	c.renderSignIn(w, r, http.StatusOK, "", "")
}

func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, status int, username, message string) {
	token, err := c.preSessionToken(w, r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	breakGlass := c.cfg.PasswordsForAdminsOnly && c.deps.SSO != nil
	c.render(w, r, status, "sign-in", "Sign in", signInData{Return: returnPath(r), CSRF: token, SSO: c.deps.SSO != nil,
		ProviderName: c.cfg.ProviderName, Password: !breakGlass || r.FormValue("break-glass") == "1" || username != "",
		BreakGlass: breakGlass, Username: username, Error: message})
}

// passwordSignIn signs in with a username and password, by the same rules
// (limits, audit, break-glass) as the API's password logins.
func (c *Console) passwordSignIn(w http.ResponseWriter, r *http.Request) {
	token, ok := c.cookie(r, csrfCookie)
	if !c.sameOrigin(r) || !ok || !validToken(r.PostFormValue("csrf"), token) {
		c.forbidden(w, r)
		return
	}
	username := r.PostFormValue("username")
	p, err := c.deps.Users.AuthenticatePassword(r.Context(), username, r.PostFormValue("password"), calllog.RequestAddr(r))
	switch {
	case err == nil:
	case domain.KindOf(err) == domain.KindUnauthenticated:
		why := "Wrong username or password."
		if c.cfg.PasswordsForAdminsOnly {
			why = "Wrong username or password. (Passwords are for administrators only here: everyone else signs in with " + c.cfg.ProviderName + ".)"
		}
		c.renderSignIn(w, r, http.StatusUnauthorized, username, why)
		return
	default:
		if !shown(err) {
			c.fail(w, r, err)
			return
		}
		if wait := domain.RetryAfterOf(err); wait > 0 {
			w.Header().Set("Retry-After", retryAfter(wait))
		}
		c.renderSignIn(w, r, statusOf(err), username, domain.MessageOf(err))
		return
	}
	if err := c.startSession(w, r, p); err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, returnPath(r), http.StatusSeeOther)
}

// ssoStart sends the browser to the provider, holding the sign-in's
// secret in a cookie and its hash in the database (so that its callback
// is taken once, within signInFor).
func (c *Console) ssoStart(w http.ResponseWriter, r *http.Request) {
	if c.deps.SSO == nil {
		c.notFound(w, r)
		return
	}
	if !c.allowAnonymous(w, r) {
		return
	}
	secret, err := c.newSecret()
	if err != nil {
		c.fail(w, r, err)
		return
	}
	to, err := c.deps.SSO.AuthURL(r.Context(), []byte(secret))
	if err != nil {
		c.refused(w, r, err)
		return
	}
	now := c.deps.Clock()
	if err := c.deps.Sessions.StartSignIn(r.Context(), hashOf(secret), returnPath(r), now, now.Add(-signInFor)); err != nil {
		c.fail(w, r, err)
		return
	}
	c.setCookie(w, r, signInCookie, secret, int(signInFor.Seconds()), http.SameSiteLaxMode)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// ssoCallback finishes a sign-in the provider sent back: only in the
// browser that started it (its cookie), once (the database's row is
// taken), within signInFor; then the provider's answer is checked
// (pkg/sso) and the person signed in by the user rules (just in time).
func (c *Console) ssoCallback(w http.ResponseWriter, r *http.Request) {
	if c.deps.SSO == nil {
		c.notFound(w, r)
		return
	}
	ctx := r.Context()
	if !c.allowAnonymous(w, r) {
		return
	}
	secret, ok := c.cookie(r, signInCookie)
	if !ok || !sso.StateMatches([]byte(secret), r.URL.Query().Get("state")) {
		// Not this browser's sign-in (a forged link, another browser's, a
		// replay): refused without spending the sign-in this browser may
		// have under way.
		c.refused(w, r, &sso.Refusal{Reason: "state", Message: "This sign-in was not started in this browser, or was finished already: start again."})
		return
	}
	c.setCookie(w, r, signInCookie, "", -1, http.SameSiteLaxMode)
	back, err := c.deps.Sessions.TakeSignIn(ctx, hashOf(secret), c.deps.Clock().Add(-signInFor))
	if err != nil {
		if domain.KindOf(err) != domain.KindNotFound {
			c.fail(w, r, err)
			return
		}
		c.refused(w, r, &sso.Refusal{Reason: "state", Message: "This sign-in was finished already or took too long: start again."})
		return
	}
	who, err := c.deps.SSO.Finish(ctx, []byte(secret), r.URL.Query())
	if err != nil {
		c.refused(w, r, err)
		return
	}
	p, err := c.deps.Users.SignIn(ctx, users.External{Identity: who.Identity, Username: who.Username, Admin: who.Admin})
	if err != nil {
		if users.IsSignInRefusal(err) {
			c.renderRefusal(w, r, domain.MessageOf(err))
			return
		}
		c.fail(w, r, err)
		return
	}
	if err := c.startSession(w, r, p); err != nil {
		c.fail(w, r, err)
		return
	}
	// Not a redirect: this request came from the provider's site, and a
	// redirect would carry that on, so the browser would withhold the
	// SameSite=Strict session cookie from the next page. A page of our own
	// that moves on makes the next request same-site.
	c.render(w, r, http.StatusOK, "continue", "Signed in", struct{ Return string }{back})
}

// refused shows why a sign-in with the provider was refused, and records
// it; anything else than a refusal is a failure.
func (c *Console) refused(w http.ResponseWriter, r *http.Request, err error) {
	var refusal *sso.Refusal
	if !errors.As(err, &refusal) {
		c.fail(w, r, err)
		return
	}
	if refusal.Reason == "provider_unavailable" {
		c.deps.Logger.WarnContext(r.Context(), "the identity provider is unreachable", "error", refusal.Err)
		w.Header().Set("Retry-After", "5")
		c.render(w, r, http.StatusServiceUnavailable, "refused", "Sign-in unavailable", struct{ Message string }{refusal.Message})
		return
	}
	if refusal.Err != nil {
		c.deps.Logger.WarnContext(r.Context(), "sign-in with the identity provider refused", "reason", refusal.Reason, "error", refusal.Err)
	}
	c.deps.Users.SignInRefused(r.Context(), c.deps.SSO.Issuer(), refusal.Username, refusal.Reason)
	c.renderRefusal(w, r, refusal.Message)
}

func (c *Console) renderRefusal(w http.ResponseWriter, r *http.Request, message string) {
	c.render(w, r, http.StatusForbidden, "refused", "Sign-in refused", struct{ Message string }{message})
}

// allowAnonymous limits what a client address may ask of the console
// before it signs in (each sign-in with the provider writes a row, a
// refused one an audit event; each device authorization a row), and
// answers 429 past the limit.
func (c *Console) allowAnonymous(w http.ResponseWriter, r *http.Request) bool {
	ok, wait := c.anonymous.Allow(calllog.RequestAddr(r))
	if !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		c.render(w, r, http.StatusTooManyRequests, "message", "Too many requests",
			message{"Too many requests", "Too many sign-ins from this address: wait a minute and try again."})
	}
	return ok
}

// signOut ends the session on the server, then in the browser.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if err := c.deps.Sessions.DeleteSession(r.Context(), sessionOf(r.Context()).id); err != nil {
		c.fail(w, r, err)
		return
	}
	c.setCookie(w, r, sessionCookie, "", -1, http.SameSiteStrictMode)
	http.Redirect(w, r, "/console/sign-in", http.StatusSeeOther)
}

func (c *Console) expiredPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "expired", "Session ended", nil)
}
