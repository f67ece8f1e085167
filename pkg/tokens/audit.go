package tokens

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// Audit records events of use (minted access tokens, refused credentials
// and requests) off the request's path; it may batch them
// (audit.Recorder). Changes write their own events in their transactions.
type Audit interface {
	Record(ev *domain.AuditEvent)
}

type noAudit struct{}

func (noAudit) Record(*domain.AuditEvent) {}

// The details of the token events, beside domain.DetailCause.
const (
	detailReason     = "reason" // why a refusal: a domain reason in lower case, or an Outcome
	detailScope      = "scope"  // the scope refused, or the scopes an access token carries
	detailScopes     = "scopes" // a new token's, space-separated
	detailExpire     = "expire_time"
	detailGrace      = "grace_period"      // a rotation's, as a Go duration ("1h0m0s")
	detailGeneration = "secret_generation" // the secret's: the new one's, or the one an access token was minted from
	detailJTI        = "jti"
	detailAudience   = "aud"
	detailCredential = "credential" // what was refused: api_token or access_token
	detailTokenKind  = "token_kind" // what was introspected: api_token or access_token
)

// Credential kinds, the values of the credential and token_kind details.
const (
	credentialAPIToken    = "api_token"
	credentialAccessToken = "access_token"
)

// reason is a refusal's reason as a detail: its domain reason in lower case.
func reason(err error) string { return strings.ToLower(domain.ReasonOf(err)) }

// refused records a request the rules refused a valid caller (outcome
// denied): action, the subject as far as known, the reason, and the scope
// at fault ("": the one the error names, if any).
func (s *Service) refused(ctx context.Context, caller *domain.Principal, action domain.AuditAction, subject domain.AuditParty, err error, scope string) {
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), action, domain.OutcomeDenied, caller)
	ev.Subject = subject
	ev.With(detailReason, reason(err))
	if scope == "" {
		scope = domain.MetadataOf(err)["scope"]
	}
	if scope != "" {
		ev.With(detailScope, scope)
	}
	s.deps.Audit.Record(ev)
}

// ownerParty returns the subject party of token t: its user (read unless
// it is the caller) and t's ID. A failed read leaves the user's ID alone.
func (s *Service) ownerParty(ctx context.Context, caller *domain.Principal, t *domain.Token) domain.AuditParty {
	var p domain.AuditParty
	switch u, err := s.ownerOf(ctx, caller, t); {
	case err == nil:
		p = domain.SubjectUser(u)
	default:
		p.UserID = t.UserID
	}
	p.TokenID = t.ID
	return p
}

func (s *Service) ownerOf(ctx context.Context, caller *domain.Principal, t *domain.Token) (*domain.User, error) {
	if caller != nil && caller.User != nil && caller.User.ID == t.UserID {
		return caller.User, nil
	}
	return s.deps.Users.UserByID(ctx, t.UserID)
}

// deleteCause says why caller deletes t, whose user is owner: the detail
// cause of its token.delete event.
func deleteCause(caller *domain.Principal, t *domain.Token, owner domain.AuditParty) string {
	switch {
	case t.ID == caller.TokenID:
		return domain.CauseSelf
	case t.UserID == caller.User.ID || (owner.OwnerID != "" && owner.OwnerID == caller.User.ID):
		return domain.CauseOwner
	}
	return domain.CauseAdmin
}

// credentialRefused records a refused credential (outcome failure) of
// action: the reason is the check's outcome; the subject the token the
// credential names, if it names one (an API token's ID, an access
// token's client_id once it verified). A check that could not be made
// (OutcomeError: the database is away) is no refusal, and not recorded.
func (s *Service) credentialRefused(ctx context.Context, action domain.AuditAction, credential string, tokenID string, outcome Outcome) {
	if outcome == OutcomeError || outcome == OutcomeOK {
		return
	}
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), action, domain.OutcomeFailure, nil)
	ev.Subject.TokenID = tokenID
	ev.Details = map[string]string{detailReason: string(outcome)}
	if credential != "" {
		ev.Details[detailCredential] = credential
	}
	s.deps.Audit.Record(ev)
}

// apiTokenID returns the ID a plaintext API token names, "" if it is
// malformed: not a secret (IDs are what the API lists and logs).
func apiTokenID(plaintext string) string {
	if parsed, ok := auth.ParseAPIToken(plaintext); ok {
		return parsed.ID
	}
	return ""
}

// minted records an access token minted from t (a new one: one the
// minter reused was recorded when it was minted, and carries the same
// jti). The actor is the API token itself, with its user.
func (s *Service) minted(ctx context.Context, t *domain.Token, at auth.AccessToken, g auth.Grant, scopes domain.Scopes, now time.Time) {
	if at.Reused {
		return
	}
	aud := g.Audience
	if aud == "" {
		aud = s.deps.Minter.Audience()
	}
	actor, subject := s.tokenParties(ctx, t)
	s.deps.Audit.Record(&domain.AuditEvent{Time: now, Action: domain.ActionAccessTokenMint, Outcome: domain.OutcomeSuccess,
		Actor: actor, Subject: subject, Origin: domain.OriginFromContext(ctx),
		Details: map[string]string{detailJTI: at.JTI, detailAudience: aud, detailScope: scopes.String(),
			detailGeneration: strconv.Itoa(g.SecretGeneration)}})
}

// tokenParties returns token t as the actor and the subject of an event
// of its own use: its user as read (through the cache; a machine user's
// owner sees the event by it), or its ID alone if the read fails. Only
// events recorded (a new access token, a refusal) pay for the read.
func (s *Service) tokenParties(ctx context.Context, t *domain.Token) (actor, subject domain.AuditParty) {
	subject = domain.AuditParty{UserID: t.UserID, TokenID: t.ID}
	if u, err := s.deps.Users.UserByID(ctx, t.UserID); err == nil {
		subject = domain.SubjectUser(u)
		subject.TokenID = t.ID
	}
	actor = subject
	actor.Kind = domain.ActorUser
	return actor, subject
}

// mintRefused records an exchange of a valid API token t refused for
// what it asked (a scope it lacks or that is unknown, an unknown
// resource): outcome denied, the token both actor and subject.
func (s *Service) mintRefused(ctx context.Context, t *domain.Token, err error, scope string) {
	actor, subject := s.tokenParties(ctx, t)
	ev := &domain.AuditEvent{Time: s.deps.Clock(), Action: domain.ActionAccessTokenMint, Outcome: domain.OutcomeDenied,
		Actor: actor, Subject: subject, Origin: domain.OriginFromContext(ctx), Details: map[string]string{detailReason: reason(err)}}
	if scope != "" {
		ev.Details[detailScope] = scope
	}
	s.deps.Audit.Record(ev)
}

// createdEvent is the token.create event of t, made by caller for owner.
func createdEvent(ctx context.Context, caller *domain.Principal, owner *domain.User, t *domain.Token) *domain.AuditEvent {
	ev := domain.NewAuditEvent(ctx, t.CreateTime, domain.ActionTokenCreate, domain.OutcomeSuccess, caller)
	ev.Subject = domain.SubjectUser(owner)
	ev.Subject.TokenID = t.ID
	ev.With(detailScopes, t.Scopes.String())
	if !t.ExpireTime.IsZero() {
		ev.With(detailExpire, t.ExpireTime.UTC().Format(time.RFC3339Nano))
	}
	return ev
}
