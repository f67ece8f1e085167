package api

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/tokenservice/tokenservice/pkg/access"
	"github.com/tokenservice/tokenservice/pkg/bearer"
	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// Guard authenticates the calls of the API's services by the access rule
// each method declares in the protos (pkg/access): the server calls its
// Authenticate before every handler, on both the gRPC and the in-process
// REST path.
type Guard struct {
	deps  Deps
	rules map[string]access.Rule // by full method name
}

// NewGuard returns the Guard of the API's services, or an error naming a
// method that declares no access rule.
func NewGuard(deps Deps) (*Guard, error) {
	rules, err := access.Rules()
	if err != nil {
		return nil, err
	}
	return newGuard(deps, rules), nil
}

func newGuard(deps Deps, rules []access.Rule) *Guard {
	g := &Guard{deps: deps, rules: map[string]access.Rule{}}
	for _, r := range rules {
		g.rules[r.Method] = r
	}
	return g
}

// Authenticate applies the method's rule: it resolves the caller's
// credential, checks its scope (and that it is an admin's, where the method
// asks), tells the client when the credential expires, and puts the caller
// in the context. A method without a rule is refused, never open.
func (g *Guard) Authenticate(ctx context.Context, fullMethod string) (context.Context, error) {
	rule, ok := g.rules[fullMethod]
	if !ok {
		return nil, domain.ErrUnauthenticated
	}
	switch rule.Credential {
	case access.None, access.APIToken: // the handler reads the API token itself
		return ctx, nil
	case access.BearerOrPasswordInBody:
		if len(metadata.ValueFromIncomingContext(ctx, "authorization")) == 0 {
			return ctx, nil // the handler checks the password in the body
		}
	case access.Bearer:
	default:
		return nil, domain.ErrUnauthenticated
	}
	p, err := caller(ctx, g.deps, rule)
	if err != nil {
		return nil, err
	}
	setExpirationHeader(ctx, p.ExpireTime)
	if rule.Scope != "" && !p.Allows(rule.Scope) {
		g.denied(ctx, p, fullMethod, rule.Scope, domain.ReasonInsufficientScope)
		return nil, domain.InsufficientScope(rule.Scope, "%s", access.InsufficientScopeMessage(rule.Scope, fullMethod))
	}
	if rule.AdminOnly && !p.User.Admin {
		g.denied(ctx, p, fullMethod, rule.Scope, domain.ReasonAdminRequired)
		return nil, &domain.Error{Kind: domain.KindPermissionDenied, Reason: domain.ReasonAdminRequired, Message: access.AdminRequiredMessage(fullMethod)}
	}
	return domain.NewContextWithPrincipal(ctx, p), nil
}

// denied records a call refused a valid credential (request.deny): the
// method (its full gRPC name), the scope its rule asks, and the reason
// (insufficient_scope, admin_required).
func (g *Guard) denied(ctx context.Context, p *domain.Principal, fullMethod, scope, reason string) {
	if g.deps.Recorder == nil {
		return
	}
	ev := domain.NewAuditEvent(ctx, time.Now(), domain.ActionRequestDeny, domain.OutcomeDenied, p)
	ev.Details = map[string]string{"method": fullMethod, "reason": strings.ToLower(reason)}
	if scope != "" {
		ev.Details["scope"] = scope
	}
	g.deps.Recorder.Record(ev)
}

// setExpirationHeader tells the client when its credential expires, as
// GitHub's GitHub-Authentication-Token-Expiration does, so it learns of the
// end before it comes. A zero time (no expiry) sends nothing.
func setExpirationHeader(ctx context.Context, at time.Time) {
	if !at.IsZero() {
		_ = grpc.SetHeader(ctx, metadata.Pairs(bearer.TokenExpirationHeader, at.UTC().Format(time.RFC3339)))
	}
}

// bearerFromContext returns the credential of an "authorization: Bearer ..."
// header, or the one unauthenticated error.
func bearerFromContext(ctx context.Context) (string, error) {
	authorization := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(authorization) == 0 {
		return "", domain.ErrUnauthenticated
	}
	if isBearer, token := bearer.Parse(authorization[0]); isBearer && token != "" {
		return token, nil
	}
	// A credential without the Bearer scheme: saying how to send one
	// tells a prober nothing about any token.
	return "", errNoBearerScheme
}

// caller resolves the request's Authorization credential: a bearer, or,
// where the rule takes one, a username and password as HTTP Basic
// credentials (RFC 7617). For a method that changes credentials an API
// token is checked against the database, not a cache.
func caller(ctx context.Context, deps Deps, rule access.Rule) (*domain.Principal, error) {
	authorization := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(authorization) != 1 {
		return nil, domain.ErrUnauthenticated
	}
	isBasic, username, password, ok := bearer.ParseBasic(authorization[0])
	switch {
	case isBasic && !rule.Basic && rule.Credential == access.BearerOrPasswordInBody:
		return nil, errBasicNotTakenInBody
	case isBasic && !rule.Basic:
		return nil, errBasicNotTaken
	case isBasic && (!ok || username == "" || len(username) > maxUsernameBytes || len(password) > domain.MaxPasswordBytes):
		// None of these can be anyone's: refused before any check or log
		// line (which would carry a username of any length).
		return nil, errBadBasic
	case isBasic:
		calllog.SetUsername(ctx, username)
		return deps.Users.AuthenticatePassword(ctx, username, password, calllog.ClientAddr(ctx))
	}
	token, err := bearerFromContext(ctx)
	if err != nil {
		return nil, err
	}
	if rule.ChangesCredentials {
		return deps.Tokens.AuthenticateBearerToChange(ctx, token)
	}
	return deps.Tokens.AuthenticateBearer(ctx, token)
}

// maxUsernameBytes is the longest a username may be (domain.NormalizeUsername).
const maxUsernameBytes = 64

var (
	errBadBasic = &domain.Error{Kind: domain.KindUnauthenticated, Reason: domain.ReasonInvalidCredentials,
		Message: domain.ErrUnauthenticated.Message + `: send a password as "Authorization: Basic <base64 of username:password>"`}
	errBasicNotTaken = &domain.Error{Kind: domain.KindUnauthenticated, Reason: domain.ReasonInvalidCredentials,
		Message: domain.ErrUnauthenticated.Message + `: this method takes no password as HTTP Basic: send the token as "Authorization: Bearer <token>"`}
	errBasicNotTakenInBody = &domain.Error{Kind: domain.KindUnauthenticated, Reason: domain.ReasonInvalidCredentials,
		Message: domain.ErrUnauthenticated.Message + `: this method takes no password as HTTP Basic (it takes one in its body): send the token as "Authorization: Bearer <token>"`}
)

var errNoBearerScheme = &domain.Error{Kind: domain.KindUnauthenticated, Reason: domain.ReasonInvalidCredentials,
	Message: domain.ErrUnauthenticated.Message + `: send the token as "Authorization: Bearer <token>"`}
