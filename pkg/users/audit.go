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

// loginAttempted records a password attempt (user.login) of username,
// naming user found (nil: none was read): success, by and of the user;
// failure (wrong password, unknown user) or denied (a login limit),
// anonymous, of the user found, so that its owner sees attempts on its
// account, else of the username tried if it is a well-formed username (a
// malformed one may be anything, a password typed in the wrong field
// among them). The trail is read by admins and by the user an event
// concerns: an unknown username tells no one but an admin that it is
// unknown.
func (s *Service) loginAttempted(ctx context.Context, username string, found *domain.User, outcome PasswordOutcome) {
	var caller *domain.Principal
	if outcome == PasswordOK {
		caller = &domain.Principal{User: found}
	}
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), domain.ActionUserLogin, domain.OutcomeSuccess, caller)
	switch {
	case found != nil:
		ev.Subject = domain.SubjectUser(found)
	default:
		if name, err := domain.NormalizeUsername(username); err == nil {
			ev.Subject.Username = name
		}
	}
	switch outcome {
	case PasswordOK:
		s.deps.Audit.Record(ev)
		return
	case PasswordWrong, PasswordUnknownUser:
		ev.Outcome = domain.OutcomeFailure
	default:
		ev.Outcome = domain.OutcomeDenied
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
