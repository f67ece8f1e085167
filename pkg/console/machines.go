package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/federation"
	"github.com/tokenservice/tokenservice/pkg/users"
)

type machinesData struct {
	Machines []*domain.User
	Next     string
	Notice   string
	Error    string
	Username string
}

// machinesPage lists the person's machine users, with a form to make one.
func (c *Console) machinesPage(w http.ResponseWriter, r *http.Request) {
	c.renderMachines(w, r, http.StatusOK, "", "", noticeOf(r.URL.Query().Get("done")))
}

func (c *Console) renderMachines(w http.ResponseWriter, r *http.Request, status int, username, problem, notice string) {
	p := sessionOf(r.Context()).principal
	list, next, err := c.deps.Users.List(r.Context(), p, users.ListInput{Own: true, PageToken: r.URL.Query().Get("page")})
	if err != nil {
		c.refusedOrFailed(w, r, err)
		return
	}
	machines := list[:0:0]
	for _, u := range list {
		if u.IsMachine() {
			machines = append(machines, u)
		}
	}
	c.render(w, r, status, "machines", "My machine users", machinesData{Machines: machines, Next: next, Notice: notice,
		Error: problem, Username: username})
}

// createMachine makes a machine user the person owns.
func (c *Console) createMachine(w http.ResponseWriter, r *http.Request) {
	username := r.PostFormValue("username")
	u, err := c.deps.Users.Create(r.Context(), sessionOf(r.Context()).principal, users.CreateInput{Username: username, Machine: true})
	if err != nil {
		if shown(err) {
			c.renderMachines(w, r, statusOf(err), username, explain(err), "")
			return
		}
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/machine-users/"+url.PathEscape(u.ID)+"/", http.StatusSeeOther)
}

// machineOf reads the machine user the path names, as the person may see it.
func (c *Console) machineOf(w http.ResponseWriter, r *http.Request) (*domain.User, bool) {
	u, err := c.deps.Users.Get(r.Context(), sessionOf(r.Context()).principal, r.PathValue("user"))
	if err == nil && !u.IsMachine() {
		err = domain.Errorf(domain.KindNotFound, "no such machine user")
	}
	if err != nil {
		c.refusedOrFailed(w, r, err)
		return nil, false
	}
	return u, true
}

type machineData struct {
	Machine     *domain.User
	Tokens      []*domain.Token
	Credentials []*domain.FederatedCredential
	Scopes      domain.Scopes
	Issuers     []string
	Notice      string
	Error       string
	Form        credentialForm
}

// credentialForm is what the federated credential form was sent with.
type credentialForm struct {
	Issuer, Subject, Audiences, Condition, Description string
}

// machinePage shows a machine user: its tokens, its federated credentials,
// and the forms to add either.
func (c *Console) machinePage(w http.ResponseWriter, r *http.Request) {
	c.renderMachine(w, r, http.StatusOK, "", credentialForm{})
}

func (c *Console) renderMachine(w http.ResponseWriter, r *http.Request, status int, problem string, form credentialForm) {
	m, ok := c.machineOf(w, r)
	if !ok {
		return
	}
	p := sessionOf(r.Context()).principal
	toks, err := c.listTokens(r, p, m.ID)
	if err != nil {
		c.refusedOrFailed(w, r, err)
		return
	}
	creds, err := c.deps.Federation.List(r.Context(), p, m.ID)
	if err != nil {
		c.refusedOrFailed(w, r, err)
		return
	}
	c.render(w, r, status, "machine", m.Username, machineData{Machine: m, Tokens: toks, Credentials: creds,
		Scopes: c.deps.Tokens.KnownScopes(), Issuers: c.deps.TrustedIssuers, Notice: noticeOf(r.URL.Query().Get("done")),
		Error: problem, Form: form})
}

// createCredential adds a federated credential to the machine user.
func (c *Console) createCredential(w http.ResponseWriter, r *http.Request) {
	form := credentialForm{Issuer: r.PostFormValue("issuer"), Subject: r.PostFormValue("subject"),
		Audiences: r.PostFormValue("audiences"), Condition: r.PostFormValue("condition"), Description: r.PostFormValue("description")}
	in := federation.CreateInput{UserID: r.PathValue("user"), Issuer: form.Issuer, Subject: form.Subject,
		Condition: strings.TrimSpace(form.Condition), Scopes: r.PostForm["scope"], Description: form.Description}
	in.Audiences = strings.FieldsFunc(form.Audiences, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })
	if len(in.Scopes) == 0 {
		c.renderMachine(w, r, http.StatusBadRequest, "Choose at least one scope.", form)
		return
	}
	if _, err := c.deps.Federation.Create(r.Context(), sessionOf(r.Context()).principal, in); err != nil {
		if shown(err) {
			c.renderMachine(w, r, statusOf(err), explain(err), form)
			return
		}
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/machine-users/"+url.PathEscape(in.UserID)+"/?done=credential", http.StatusSeeOther)
}

// deleteCredential removes a federated credential, after its confirmation page.
func (c *Console) deleteCredential(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	if err := c.deps.Federation.Delete(r.Context(), sessionOf(r.Context()).principal, user, r.PathValue("id")); err != nil {
		c.refusedOrFailed(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/machine-users/"+url.PathEscape(user)+"/?done=credential-deleted", http.StatusSeeOther)
}

// deleteMachine deletes the machine user, its tokens and credentials.
func (c *Console) deleteMachine(w http.ResponseWriter, r *http.Request) {
	if err := c.deps.Users.Delete(r.Context(), sessionOf(r.Context()).principal, r.PathValue("user")); err != nil {
		c.refusedOrFailed(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/machine-users?done=machine-deleted", http.StatusSeeOther)
}

type confirmMachineData struct {
	Machine    *domain.User
	Credential *domain.FederatedCredential // nil: the machine user itself
}

// confirmMachinePage asks before a machine user or one of its federated
// credentials is deleted.
func (c *Console) confirmMachinePage(w http.ResponseWriter, r *http.Request) {
	m, ok := c.machineOf(w, r)
	if !ok {
		return
	}
	d := confirmMachineData{Machine: m}
	if id := r.PathValue("id"); id != "" {
		cred, err := c.deps.Federation.Get(r.Context(), sessionOf(r.Context()).principal, m.ID, id)
		if err != nil {
			c.refusedOrFailed(w, r, err)
			return
		}
		d.Credential = cred
	}
	c.render(w, r, http.StatusOK, "confirm-machine", "Delete?", d)
}

type auditData struct {
	Events []*domain.AuditEvent
	Next   string
	All    bool // an admin's view: every event
}

// auditPage lists the audit events the person may read, newest first: their
// own and their machine users' (an admin: all).
func (c *Console) auditPage(w http.ResponseWriter, r *http.Request) {
	p := sessionOf(r.Context()).principal
	events, next, err := c.deps.Audit.List(r.Context(), p, audit.ListInput{PageToken: r.URL.Query().Get("page"), PageSize: 50})
	if err != nil {
		c.refusedOrFailed(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "audit", "Audit events", auditData{Events: events, Next: next, All: p.User.Admin})
}

type usersData struct {
	Users []*domain.User
	Next  string
}

// usersPage lists every user, for admins.
func (c *Console) usersPage(w http.ResponseWriter, r *http.Request) {
	p := sessionOf(r.Context()).principal
	if !p.User.Admin {
		c.render(w, r, http.StatusForbidden, "message", "Refused", message{"Admins only", "Only admins see every user."})
		return
	}
	list, next, err := c.deps.Users.List(r.Context(), p, users.ListInput{PageToken: r.URL.Query().Get("page")})
	if err != nil {
		c.refusedOrFailed(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "users", "Users", usersData{Users: list, Next: next})
}
