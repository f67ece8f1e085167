package api_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/tokenservice/tokenservice/pkg/access"
	"github.com/tokenservice/tokenservice/pkg/api"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// TestWriteScopesReadTheDatabase: every method needing a scope an access
// token gets only when named (tokens.WriteScopes) makes or changes lasting
// credentials, and its rule says so, so the caller's token is read from the
// database, not a replica's cache.
func TestWriteScopesReadTheDatabase(t *testing.T) {
	rules, err := access.Rules()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if tokens.WriteScopes.Has(r.Scope) && !r.ChangesCredentials {
			t.Errorf("%s needs %s but does not declare changes_credentials", r.Name(), r.Scope)
		}
	}
}

// recorded is an Audit that keeps what it is given.
type recorded []*domain.AuditEvent

func (r *recorded) Record(ev *domain.AuditEvent) { *r = append(*r, ev) }

// TestGuardAppliesTheRule: each kind of rule, with each kind of caller, on
// real services (SQLite), including rules no method declares yet (public,
// admin-only). A valid credential refused for the rule's scope or admin
// rule is recorded (request.deny, with the method, scope and reason);
// nothing else the guard does is.
func TestGuardAppliesTheRule(t *testing.T) {
	a := apptest.MustStart(t, apptest.Config(t, "sqlite"))
	token := func(u users.CreateInput, scopes ...string) string {
		return "Bearer " + apptest.MustUserToken(t, a, u, scopes...)
	}
	admin := token(users.CreateInput{Username: "root", Password: "a password long enough", Admin: true})
	reader := token(users.CreateInput{Username: "reader", Password: "a password long enough"}, domain.ScopeTokensRead)

	const m = "/priv.tokenservice.v1alpha1.Trial/"
	audit := &recorded{}
	guard := api.NewGuardOf(api.Deps{Tokens: a.Tokens(), Users: a.Users(), Recorder: audit},
		access.Rule{Method: m + "Public", Credential: access.None},
		access.Rule{Method: m + "Exchange", Credential: access.APIToken},
		access.Rule{Method: m + "Create", Credential: access.BearerOrPasswordInBody, Scope: domain.ScopeTokensWrite},
		access.Rule{Method: m + "Read", Credential: access.Bearer, Scope: domain.ScopeTokensRead},
		access.Rule{Method: m + "Write", Credential: access.Bearer, Scope: domain.ScopeTokensWrite},
		access.Rule{Method: m + "Admin", Credential: access.Bearer, AdminOnly: true},
	)
	for _, tc := range []struct {
		method, authorization string
		wantReason            string // "" for no error
		wantCaller            bool
	}{
		{"Undeclared", admin, domain.ReasonInvalidCredentials, false},
		{"Public", "", "", false},
		{"Exchange", "", "", false}, // the handler reads the API token
		{"Create", "", "", false},   // the handler checks the password in the body
		{"Create", reader, domain.ReasonInsufficientScope, false},
		{"Create", admin, "", true},
		{"Read", "", domain.ReasonInvalidCredentials, false},
		{"Read", "Bearer tks_not_a_token", domain.ReasonInvalidCredentials, false},
		{"Read", reader, "", true},
		{"Write", reader, domain.ReasonInsufficientScope, false},
		{"Admin", reader, domain.ReasonAdminRequired, false},
		{"Admin", admin, "", true},
	} {
		ctx := context.Background()
		if tc.authorization != "" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", tc.authorization))
		}
		*audit = nil
		got, err := guard.Authenticate(ctx, m+tc.method)
		switch denied := tc.wantReason == domain.ReasonInsufficientScope || tc.wantReason == domain.ReasonAdminRequired; {
		case denied && (len(*audit) != 1 || (*audit)[0].Action != domain.ActionRequestDeny || (*audit)[0].Outcome != domain.OutcomeDenied ||
			(*audit)[0].Details["method"] != m+tc.method || (*audit)[0].Details["reason"] != strings.ToLower(tc.wantReason) || (*audit)[0].Actor.Username != "reader"):
			t.Errorf("%s %.12q: recorded %+v, want one request.deny by reader of %s, reason %s", tc.method, tc.authorization, *audit, m+tc.method, strings.ToLower(tc.wantReason))
		case !denied && len(*audit) != 0:
			t.Errorf("%s %.12q: recorded %+v, want nothing", tc.method, tc.authorization, *audit)
		}
		var e *domain.Error
		switch {
		case tc.wantReason == "" && err != nil:
			t.Errorf("%s %.12q: %v, want let through", tc.method, tc.authorization, err)
		case tc.wantReason != "" && (!errors.As(err, &e) || e.Reason != tc.wantReason):
			t.Errorf("%s %.12q: %v, want reason %s", tc.method, tc.authorization, err, tc.wantReason)
		case err == nil && (domain.PrincipalFromContext(got) != nil) != tc.wantCaller:
			t.Errorf("%s %.12q: caller in the context %v, want %t", tc.method, tc.authorization, domain.PrincipalFromContext(got), tc.wantCaller)
		}
	}
}
