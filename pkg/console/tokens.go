package console

import (
	"net/http"
	"net/url"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

// expiringSoon is what the list's filter calls soon.
const expiringSoon = 7 * 24 * time.Hour

type tokensData struct {
	Tokens   []*domain.Token
	Expiring bool   // the list is filtered to tokens expiring soon
	Next     string // the next page's token
	Notice   string
}

// tokensPage lists the person's active tokens, a page at a time, newest
// first; ?expiring=1 keeps those expiring within a week.
func (c *Console) tokensPage(w http.ResponseWriter, r *http.Request) {
	p := sessionOf(r.Context()).principal
	q := r.URL.Query()
	expiring := q.Get("expiring") == "1"
	in := tokens.ListInput{PageToken: q.Get("page"), Reverse: true, PageSize: 50}
	if expiring {
		in.ExpireBefore = c.deps.Clock().Add(expiringSoon)
	}
	list, next, err := c.deps.Tokens.List(r.Context(), p, in)
	if err != nil {
		c.refusedOrFailed(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "tokens", "My tokens", tokensData{Tokens: list, Expiring: expiring, Next: next,
		Notice: noticeOf(q.Get("done"))})
}

// listTokens is the first page of a (machine) user's active tokens, newest first.
func (c *Console) listTokens(r *http.Request, p *domain.Principal, userID string) ([]*domain.Token, error) {
	list, _, err := c.deps.Tokens.List(r.Context(), p, tokens.ListInput{UserID: userID, Reverse: true, PageSize: 100})
	return list, err
}

// noticeOf is the line a page shows after a change redirected to it.
func noticeOf(done string) string {
	switch done {
	case "revoked":
		return "The token was revoked: it no longer works."
	case "credential":
		return "The federated credential was added."
	case "credential-deleted":
		return "The federated credential was deleted."
	case "machine-deleted":
		return "The machine user was deleted, with its tokens and federated credentials."
	}
	return ""
}

// lifetimes are the expiry choices of the create form, in its order.
var lifetimes = []struct {
	Value, Label string
	D            time.Duration
}{
	{"7d", "7 days", 7 * 24 * time.Hour},
	{"30d", "30 days", 30 * 24 * time.Hour},
	{"90d", "90 days", 90 * 24 * time.Hour},
	{"365d", "1 year", 365 * 24 * time.Hour},
	{"never", "No expiry", 0},
}

type newTokenData struct {
	Scopes    domain.Scopes
	Lifetimes any
	Note      string
	Error     string
	For       *domain.User // a machine user the token is for; nil: the person's own
}

func (c *Console) newTokenPage(w http.ResponseWriter, r *http.Request) {
	c.renderNewToken(w, r, http.StatusOK, "", "")
}

type secretData struct {
	Token     *domain.Token
	Plaintext string
	Rotated   bool
	Back      string // the page the token is listed on
}

// createToken makes a token from the form and shows its plaintext, once:
// the answer is not cached, and nothing keeps the plaintext.
func (c *Console) createToken(w http.ResponseWriter, r *http.Request) {
	p := sessionOf(r.Context()).principal
	in := tokens.CreateInput{UserID: r.PostFormValue("user"), Note: r.PostFormValue("note"), Scopes: r.PostForm["scope"]}
	found := false
	for _, l := range lifetimes {
		if l.Value == r.PostFormValue("expires") {
			found = true
			if l.D > 0 {
				in.ExpireTime = c.deps.Clock().Add(l.D)
			}
		}
	}
	if !found {
		c.renderNewToken(w, r, http.StatusBadRequest, in.Note, "Choose when the token expires.")
		return
	}
	if len(in.Scopes) == 0 {
		c.renderNewToken(w, r, http.StatusBadRequest, in.Note, "Choose at least one scope.")
		return
	}
	plaintext, tok, err := c.deps.Tokens.Create(r.Context(), p, in)
	if err != nil {
		if shown(err) {
			c.renderNewToken(w, r, statusOf(err), in.Note, explain(err))
			return
		}
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusCreated, "secret", "Token created", secretData{Token: tok, Plaintext: plaintext, Back: c.backTo(p, tok)})
}

// backTo is the page a token is listed on: the person's, or its machine user's.
func (c *Console) backTo(p *domain.Principal, tok *domain.Token) string {
	if tok.UserID != p.User.ID {
		return "/console/machine-users/" + url.PathEscape(tok.UserID) + "/"
	}
	return "/console/"
}

// renderNewToken shows the token form, for the machine user ?user= (or
// the form's user) names, else for the person.
func (c *Console) renderNewToken(w http.ResponseWriter, r *http.Request, status int, note, problem string) {
	d := newTokenData{Scopes: c.deps.Tokens.KnownScopes(), Lifetimes: lifetimes, Note: note, Error: problem}
	if id := r.FormValue("user"); id != "" {
		u, err := c.deps.Users.Get(r.Context(), sessionOf(r.Context()).principal, id)
		if err != nil {
			c.refusedOrFailed(w, r, err)
			return
		}
		d.For = u
	}
	c.render(w, r, status, "new-token", "Create a token", d)
}

type confirmData struct {
	Token  *domain.Token
	Action string // revoke, rotate
}

// confirmPage asks before a token is revoked or rotated.
func (c *Console) confirmPage(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	if action != "revoke" && action != "rotate" {
		c.notFound(w, r)
		return
	}
	tok, err := c.deps.Tokens.Get(r.Context(), sessionOf(r.Context()).principal, r.PathValue("id"))
	if err != nil {
		c.refusedOrFailed(w, r, err)
		return
	}
	title := "Revoke a token"
	if action == "rotate" {
		title = "Rotate a token"
	}
	c.render(w, r, http.StatusOK, "confirm", title, confirmData{Token: tok, Action: action})
}

func (c *Console) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := c.deps.Tokens.Delete(r.Context(), sessionOf(r.Context()).principal, r.PathValue("id")); err != nil {
		c.refusedOrFailed(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/?done=revoked", http.StatusSeeOther)
}

// rotateToken gives the token a new secret, shown once; the old one stops
// working at once (the console offers no grace period: whoever needs one
// rotates through the API).
func (c *Console) rotateToken(w http.ResponseWriter, r *http.Request) {
	plaintext, tok, err := c.deps.Tokens.Rotate(r.Context(), sessionOf(r.Context()).principal, r.PathValue("id"), 0)
	if err != nil {
		c.refusedOrFailed(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "secret", "Token rotated", secretData{Token: tok, Plaintext: plaintext, Rotated: true,
		Back: c.backTo(sessionOf(r.Context()).principal, tok)})
}

// refusedOrFailed shows a refusal of the rules on a page, or fails.
func (c *Console) refusedOrFailed(w http.ResponseWriter, r *http.Request, err error) {
	if !shown(err) {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, statusOf(err), "message", "Refused", message{"That did not work", explain(err)})
}
