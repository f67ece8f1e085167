package users

import (
	"context"
	"errors"
	"strconv"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// External is a person the operator's OpenID provider vouched for, as the
// sign-in rules read it (pkg/sso decides what the provider's claims say).
type External struct {
	Identity domain.ExternalIdentity
	// Username is the configured claim's value, the name a new user gets.
	Username string
	// Admin is whether the person is in the provider's admin group; nil:
	// the operator named no admin group, and the flag is left as it is
	// (a new user is no admin).
	Admin *bool
}

// Details of the sign-in events.
const (
	detailMethod  = "method" // user.sign_in: "oidc"
	detailCreated = "created"
	detailIssuer  = "issuer"
	detailCause   = "cause" // user.set_admin: "admin_group"
	detailHost    = "host"  // user.sign_in of the CLI: the host it named
)

// ErrSignInUnavailable is what SignIn returns when no store of external
// identities was given.
var ErrSignInUnavailable = domain.Errorf(domain.KindInternal, "single sign-on is not set up")

// SignIn signs in a person the provider vouched for: the user linked to its
// identity, else a human user made for it now (just in time), with no
// password. A sign-in updates the user's admin flag from the admin group,
// when one is configured. A username that another account holds already is
// refused (KindConflict): the provider's names are not trusted to take over
// an account it did not make. Every outcome is in the audit trail.
func (s *Service) SignIn(ctx context.Context, in External) (*domain.Principal, error) {
	if s.deps.SignIns == nil {
		return nil, ErrSignInUnavailable
	}
	name, err := domain.NormalizeUsername(in.Username)
	if err != nil {
		s.SignInRefused(ctx, in.Identity.Issuer, in.Username, "invalid_username")
		return nil, domain.Errorf(domain.KindPermissionDenied,
			"the identity provider's username %q is not one this service takes (1 to 64 of a-z 0-9 . _ @ -)", in.Username)
	}
	u, err := s.deps.SignIns.UserByExternalIdentity(ctx, in.Identity)
	created := false
	switch {
	case domain.KindOf(err) == domain.KindNotFound:
		if u, err = s.createExternal(ctx, name, in); err != nil {
			if domain.KindOf(err) == domain.KindConflict {
				s.SignInRefused(ctx, in.Identity.Issuer, name, "username_taken")
				return nil, domain.Errorf(domain.KindPermissionDenied,
					"the username %s, which the identity provider gives you, is another account's here: ask an admin", name)
			}
			return nil, err
		}
		created = true
	case err != nil:
		return nil, err
	case in.Admin != nil && *in.Admin != u.Admin:
		ev := domain.NewAuditEvent(ctx, s.deps.Clock(), domain.ActionUserSetAdmin, domain.OutcomeSuccess, &domain.Principal{User: u})
		ev.Subject = domain.SubjectUser(u)
		ev.With(detailAdmin, strconv.FormatBool(*in.Admin)).With(detailCause, "admin_group")
		if err := s.deps.SignIns.SetAdmin(ctx, u.ID, *in.Admin, ev); err != nil {
			return nil, err
		}
		u.Admin = *in.Admin
	}
	p := &domain.Principal{User: u, AllScopes: true}
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), domain.ActionUserSignIn, domain.OutcomeSuccess, p)
	ev.Subject = domain.SubjectUser(u)
	s.deps.Audit.Record(ev.With(detailMethod, "oidc").With(detailIssuer, in.Identity.Issuer).
		With(detailCreated, strconv.FormatBool(created)))
	return p, nil
}

// createExternal makes the human user of a first sign-in, linked to its
// identity, with its user.create event in the same transaction.
func (s *Service) createExternal(ctx context.Context, name string, in External) (*domain.User, error) {
	id, err := auth.RandomID(s.deps.Rand)
	if err != nil {
		return nil, domain.Wrap(domain.KindInternal, err, "generating user ID")
	}
	u := &domain.User{ID: id, Username: name, Admin: in.Admin != nil && *in.Admin, CreateTime: s.deps.Clock()}
	ev := createdEvent(ctx, &domain.Principal{User: u}, u).With(detailMethod, "oidc")
	if err := s.deps.SignIns.CreateExternalUser(ctx, u, in.Identity, ev); err != nil {
		return nil, err
	}
	return u, nil
}

// SignInRefused records a sign-in through the provider that was refused
// (outcome denied), with the username the provider gave, if any, and
// the reason: a pkg/sso refusal ("email_domain", "group", "state", ...)
// or one of SignIn's.
func (s *Service) SignInRefused(ctx context.Context, issuer, username, reason string) {
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), domain.ActionUserSignIn, domain.OutcomeDenied, nil)
	if name, err := domain.NormalizeUsername(username); err == nil {
		ev.Subject.Username = name
	}
	ev.With(detailMethod, "oidc").With(detailReason, reason)
	if issuer != "" {
		ev.With(detailIssuer, issuer)
	}
	s.deps.Audit.Record(ev)
}

// IsSignInRefusal reports whether err is SignIn refusing the person (as
// opposed to failing).
func IsSignInRefusal(err error) bool {
	var e *domain.Error
	return errors.As(err, &e) && e.Kind == domain.KindPermissionDenied
}

// RecordCLISignIn records a sign-in of the command-line client through the
// console (user.sign_in, method cli_loopback or cli_device, with the host
// it named): approved, once its token is made; else denied by the person
// it asked.
func (s *Service) RecordCLISignIn(ctx context.Context, u *domain.User, method, host string, approved bool) {
	p := &domain.Principal{User: u, AllScopes: true}
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), domain.ActionUserSignIn, domain.OutcomeSuccess, p)
	ev.Subject = domain.SubjectUser(u)
	ev.With(detailMethod, method).With(detailHost, host)
	if !approved {
		ev.Outcome = domain.OutcomeDenied
		ev.With(detailReason, "denied_by_user")
	}
	s.deps.Audit.Record(ev)
}
