// Package devidp is an OpenID Provider for trying single sign-on and for
// the tests: zitadel/oidc's example OP (a real provider of the Go
// ecosystem, with its login page), holding the people it is given, with
// their groups in a groups claim of its UserInfo answers, as Keycloak, Okta
// or Dex give one. It keeps everything in memory and checks plain-text
// passwords: never a production provider. Internal, so that it is no API.
package devidp

import (
	"context"
	"net/http"
	"sync"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// Person is someone the provider signs in.
type Person struct {
	ID       string // the subject
	Username string // preferred_username, and what the login page asks for
	Email    string // verified
	Password string
	Groups   []string
}

// Provider is the running provider's state.
type Provider struct {
	mu      sync.Mutex
	groups  map[string][]string
	clients map[string]*storage.Client
}

// New returns the provider's handler for issuer (the URL it is served at),
// signing in people.
func New(issuer string, people []Person) (*Provider, http.Handler) {
	users := userStore{}
	p := &Provider{groups: map[string][]string{}, clients: map[string]*storage.Client{}}
	for _, who := range people {
		users[who.ID] = &storage.User{ID: who.ID, Username: who.Username, Password: who.Password, Email: who.Email,
			EmailVerified: true, FirstName: who.ID, LastName: "(devidp)"}
		p.groups[who.ID] = who.Groups
	}
	st := groupsStorage{Storage: storage.NewStorageWithClients(users, p.clients), p: p}
	return p, exampleop.SetupServer(issuer, st, nil, false)
}

// RegisterClient registers a confidential web client (HTTP Basic
// authentication at the token endpoint) with its redirect URIs. Register
// clients before sign-ins begin.
func (p *Provider) RegisterClient(id, secret string, redirectURIs ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients[id] = storage.WebClient(id, secret, redirectURIs...)
}

// SetGroups changes a person's groups, as an administrator of the
// provider would.
func (p *Provider) SetGroups(id string, groups []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.groups[id] = groups
}

func (p *Provider) groupsOf(id string) ([]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.groups[id]
	return g, ok
}

// userStore is the example storage's user store over the people.
type userStore map[string]*storage.User

func (u userStore) GetUserByID(id string) *storage.User { return u[id] }
func (u userStore) GetUserByUsername(name string) *storage.User {
	for _, p := range u {
		if p.Username == name {
			return p
		}
	}
	return nil
}
func (userStore) ExampleClientID() string { return "" }

// groupsStorage adds the groups claim to the example storage's UserInfo.
type groupsStorage struct {
	*storage.Storage
	p *Provider
}

func (s groupsStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	if g, ok := s.p.groupsOf(info.Subject); ok {
		info.AppendClaims("groups", g)
	}
	return nil
}
