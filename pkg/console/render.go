package console

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// page is what the layout reads; Data is the page's own.
type page struct {
	Title string
	User  *domain.User // nil: not signed in
	CSRF  string       // the session's CSRF token, for the sign-out form
	Data  any
}

// render writes a page in the layout.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	p := page{Title: title, Data: data}
	if ses := sessionOf(r.Context()); ses != nil {
		p.User, p.CSRF = ses.principal.User, csrfToken(ses.secret)
	}
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, p); err != nil {
		c.deps.Logger.ErrorContext(r.Context(), "rendering a console page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// message is the one-paragraph page of an error.
type message struct {
	Heading string
	Text    string
}

// fail answers an error the person cannot fix by changing what they sent:
// the database away (503), or a failure (500, logged; its detail is never
// shown).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	if domain.KindOf(err) == domain.KindUnavailable {
		w.Header().Set("Retry-After", "5")
		c.render(w, r, http.StatusServiceUnavailable, "message", "Unavailable",
			message{"Try again shortly", "The service cannot reach its database just now."})
		return
	}
	c.deps.Logger.ErrorContext(r.Context(), "console request failed", "error", err)
	c.render(w, r, http.StatusInternalServerError, "message", "Error",
		message{"Something went wrong", "The request failed; the service's log says why."})
}

func (c *Console) forbidden(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusForbidden, "message", "Refused",
		message{"Refused", "This form was not sent by this console's page (or the page is too old): go back, reload and try again."})
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusNotFound, "message", "Not found", message{"Not found", "There is no such page."})
}

// shown reports whether err's message is for the person: the kinds the
// rules refuse with (a bad field, a limit, a missing permission).
func shown(err error) bool {
	switch domain.KindOf(err) {
	case domain.KindInvalid, domain.KindNotFound, domain.KindConflict, domain.KindPermissionDenied,
		domain.KindResourceExhausted, domain.KindAborted, domain.KindUnauthenticated:
		return true
	}
	return false
}

// statusOf is the HTTP status of a refusal shown on a page.
func statusOf(err error) int {
	switch domain.KindOf(err) {
	case domain.KindInvalid:
		return http.StatusBadRequest
	case domain.KindNotFound:
		return http.StatusNotFound
	case domain.KindConflict, domain.KindAborted:
		return http.StatusConflict
	case domain.KindPermissionDenied:
		return http.StatusForbidden
	case domain.KindResourceExhausted:
		return http.StatusTooManyRequests
	case domain.KindUnauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

// explain is a refusal's sentence, with the fields at fault.
func explain(err error) string {
	text := domain.MessageOf(err)
	for _, f := range domain.FieldsOf(err) {
		if !strings.Contains(text, f.Description) {
			text += " " + strings.ReplaceAll(f.Field, "_", " ") + ": " + f.Description + "."
		}
	}
	return text
}

func retryAfter(d time.Duration) string { return strconv.Itoa(int(d.Seconds() + 0.999)) }

// when shows a time in UTC to the minute, or what its zero means.
func when(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func joinScopes(s domain.Scopes) string { return s.String() }
