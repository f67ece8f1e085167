package users

import (
	"context"
	"strconv"
	"strings"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// Audit records events of use (password logins, refused creations) off
// the request's path; it may batch them (audit.Recorder). Changes write
// their own events in their transactions.
type Audit interface {
	Record(ev *domain.AuditEvent)
}

type noAudit struct{}

func (noAudit) Record(*domain.AuditEvent) {}

// The details of the user events.
const (
	detailReason = "reason" // a refusal's: a domain reason in lower case, or a PasswordOutcome
	detailAdmin  = "admin"  // a new user's: "true" or "false"
)

// loginAttempted records a password attempt (user.login): success, its
// user actor and subject; failure (wrong password, unknown user) or denied
// (a login limit), anonymous, with the username tried as the subject's if
// it is a well-formed username (a malformed one may be anything, a
// password typed in the wrong field among them), and the user's ID when
// the user exists, so that its owner sees attempts on its account. The
// trail is read by admins and by the user an event concerns: an unknown
// username tells no one but an admin that it is unknown.
func (s *Service) loginAttempted(ctx context.Context, p *domain.Principal, username string, outcome PasswordOutcome) {
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), domain.ActionUserLogin, domain.OutcomeSuccess, p)
	if p != nil {
		ev.Subject = domain.SubjectUser(p.User)
		s.deps.Audit.Record(ev)
		return
	}
	ev.Outcome = domain.OutcomeFailure
	if outcome != PasswordWrong && outcome != PasswordUnknownUser {
		ev.Outcome = domain.OutcomeDenied
	}
	if name, err := domain.NormalizeUsername(username); err == nil {
		ev.Subject.Username = name
		if outcome == PasswordWrong {
			if u, err := s.deps.Users.UserByUsername(ctx, name); err == nil {
				ev.Subject = domain.SubjectUser(u)
			}
		}
	}
	ev.Details = map[string]string{detailReason: string(outcome)}
	s.deps.Audit.Record(ev)
}

// createdEvent is the user.create (or machine_user.create) event of u, by caller.
func createdEvent(ctx context.Context, caller *domain.Principal, u *domain.User) *domain.AuditEvent {
	action := domain.ActionUserCreate
	if u.IsMachine() {
		action = domain.ActionMachineUserCreate
	}
	ev := domain.NewAuditEvent(ctx, u.CreateTime, action, domain.OutcomeSuccess, caller)
	ev.Subject = domain.SubjectUser(u)
	return ev.With(detailAdmin, strconv.FormatBool(u.Admin))
}

// creationRefused records a creation refused by a limit (outcome denied):
// the user it would have made (nil: as far as in says), the reason.
func (s *Service) creationRefused(ctx context.Context, caller *domain.Principal, in CreateInput, u *domain.User, err error) {
	action := domain.ActionUserCreate
	if in.Machine {
		action = domain.ActionMachineUserCreate
	}
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), action, domain.OutcomeDenied, caller)
	switch {
	case u != nil:
		ev.Subject = domain.AuditParty{Username: u.Username, OwnerID: u.OwnerID} // it has no ID: it was not made
	default:
		if name, err := domain.NormalizeUsername(in.Username); err == nil {
			ev.Subject.Username = name
		}
		if ev.Subject.OwnerID = in.OwnerID; in.Machine && in.OwnerID == "" {
			ev.Subject.OwnerID = caller.User.ID
		}
	}
	ev.Details = map[string]string{detailReason: strings.ToLower(domain.ReasonOf(err))}
	s.deps.Audit.Record(ev)
}
