package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// The cookies. Over TLS they carry the __Host- prefix, which a browser
// only accepts with Secure, Path=/ and no Domain: no other host (a
// sibling subdomain) can set or shadow them.
const (
	sessionCookie = "tokenservice-session" // the session's secret
	csrfCookie    = "tokenservice-csrf"    // before sign-in: the double-submitted CSRF token
	signInCookie  = "tokenservice-sign-in" // a sign-in under way with the provider: its browser secret
)

// secure reports whether the console's cookies are Secure: configured so,
// or this request came over TLS.
func (c *Console) secure(r *http.Request) bool { return c.cfg.SecureCookies || r.TLS != nil }

func (c *Console) cookieName(r *http.Request, name string) string {
	if c.secure(r) {
		return "__Host-" + name
	}
	return name
}

// setCookie sets an HttpOnly cookie for the whole host; maxAge < 0 deletes
// it. sameSite is Strict but for the sign-in's cookie, which must come
// back with the provider's redirect, a top-level navigation from another
// site (Lax sends it there, and on nothing else cross-site).
func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(r, name), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure(r), SameSite: sameSite})
}

func (c *Console) cookie(r *http.Request, name string) (string, bool) {
	ck, err := r.Cookie(c.cookieName(r, name))
	if err != nil || ck.Value == "" {
		return "", false
	}
	return ck.Value, true
}

// newSecret returns 32 random bytes, base64url.
func (c *Console) newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(c.deps.Rand, b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashOf is how the database knows a browser's secret.
func hashOf(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// csrfToken is a session's CSRF token, derived from its secret: the page
// carries it, the database never sees it.
func csrfToken(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sameOrigin reports whether a state-changing request may be this
// console's own: its Origin, when the browser sends one, is this scheme
// (https when the cookies are Secure) and host (SameSite=Strict cookies and
// the CSRF token are the other two locks).
func (c *Console) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	scheme := "http"
	if c.secure(r) {
		scheme = "https"
	}
	u, err := url.Parse(origin)
	return err == nil && u.Scheme == scheme && u.Host == r.Host
}

// session is a signed-in request's: who, and the secret its CSRF token
// comes from.
type session struct {
	id        []byte
	secret    string
	principal *domain.Principal
}

type sessionKey struct{}

func sessionOf(ctx context.Context) *session { s, _ := ctx.Value(sessionKey{}).(*session); return s }

// startSession signs the browser in as p: a new session, its cookie, and
// the pre-sign-in cookies dropped.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, p *domain.Principal) error {
	secret, err := c.newSecret()
	if err != nil {
		return err
	}
	if old, ok := c.cookie(r, sessionCookie); ok {
		// A new sign-in ends the browser's previous session.
		if err := c.deps.Sessions.DeleteSession(r.Context(), hashOf(old)); err != nil {
			return err
		}
	}
	now := c.deps.Clock()
	ses := &domain.Session{ID: hashOf(secret), UserID: p.User.ID, CreateTime: now,
		ExpireTime: now.Add(c.cfg.SessionLifetime), LastSeenTime: now}
	if err := c.deps.Sessions.DeleteSessionsBefore(r.Context(), now); err != nil {
		return err
	}
	if err := c.deps.Sessions.CreateSession(r.Context(), ses); err != nil {
		return err
	}
	c.setCookie(w, r, sessionCookie, secret, int(c.cfg.SessionLifetime.Seconds()), http.SameSiteStrictMode)
	c.setCookie(w, r, csrfCookie, "", -1, http.SameSiteStrictMode)
	return nil
}

// touchEvery is how stale a session's last-seen time may be before a
// request writes it again.
const touchEvery = time.Minute

// currentSession reads the request's session: nil if it has none that is
// still valid (and then its cookie is dropped).
func (c *Console) currentSession(w http.ResponseWriter, r *http.Request) (*session, error) {
	secret, ok := c.cookie(r, sessionCookie)
	if !ok {
		return nil, nil
	}
	id := hashOf(secret)
	ctx := r.Context()
	ses, err := c.deps.Sessions.SessionByID(ctx, id)
	if domain.KindOf(err) == domain.KindNotFound {
		c.setCookie(w, r, sessionCookie, "", -1, http.SameSiteStrictMode)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := c.deps.Clock()
	if !now.Before(ses.ExpireTime) || now.Sub(ses.LastSeenTime) >= c.cfg.IdleTimeout {
		c.setCookie(w, r, sessionCookie, "", -1, http.SameSiteStrictMode)
		return nil, c.deps.Sessions.DeleteSession(ctx, id)
	}
	u, err := c.deps.UserByID(ctx, ses.UserID)
	if domain.KindOf(err) == domain.KindNotFound {
		c.setCookie(w, r, sessionCookie, "", -1, http.SameSiteStrictMode)
		return nil, c.deps.Sessions.DeleteSession(ctx, id)
	}
	if err != nil {
		return nil, err
	}
	if now.Sub(ses.LastSeenTime) >= touchEvery {
		if err := c.deps.Sessions.TouchSession(ctx, id, now); err != nil {
			return nil, err
		}
	}
	return &session{id: id, secret: secret, principal: &domain.Principal{User: u, AllScopes: true}}, nil
}

// signedIn runs h for a signed-in browser, with the session in its
// context; any other is sent to sign in (a GET) or refused (a POST). A
// POST must come from this origin and carry the session's CSRF token.
func (c *Console) signedIn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ses, err := c.currentSession(w, r)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if ses == nil {
			if r.Method == http.MethodGet {
				to := "/console/sign-in"
				if r.URL.Path != "/console/" {
					to += "?return=" + url.QueryEscape(r.URL.RequestURI())
				}
				http.Redirect(w, r, to, http.StatusSeeOther)
				return
			}
			http.Redirect(w, r, "/console/session-expired", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if !c.sameOrigin(r) || !validToken(r.PostFormValue("csrf"), csrfToken(ses.secret)) {
				c.forbidden(w, r)
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, ses)))
	}
}

func validToken(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// preSessionToken returns the browser's pre-sign-in CSRF token, setting
// a new one if it has none.
func (c *Console) preSessionToken(w http.ResponseWriter, r *http.Request) (string, error) {
	if t, ok := c.cookie(r, csrfCookie); ok {
		return t, nil
	}
	t, err := c.newSecret()
	if err != nil {
		return "", err
	}
	c.setCookie(w, r, csrfCookie, t, 3600, http.SameSiteStrictMode)
	return t, nil
}
