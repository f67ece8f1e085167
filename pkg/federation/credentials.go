// Package federation owns workload identity federation: the federated
// credentials of machine users (who may make, see and delete them, and
// what they may say), and the exchange of a trusted issuer's token for a
// machine user's access token (RFC 8693), matched against them. Verifying
// the issuer's signature is pkg/issuers'; minting, pkg/tokens'.
package federation

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

// Config holds the service's tunables.
type Config struct {
	// MaxPerUser, if positive, bounds each machine user's credentials.
	MaxPerUser int
}

// DefaultMaxPerUser is the default of Config.MaxPerUser: Azure's limit
// of federated identity credentials per application.
const DefaultMaxPerUser = 20

// Deps are what the service works with.
type Deps struct {
	Store      domain.FederatedCredentials
	Tokens     *tokens.Service
	Issuers    Issuers
	Conditions *Conditions
	Audit      tokens.Audit // nil: refused exchanges are not recorded
	Observer   Observer     // nil: none
	Clock      func() time.Time
	Rand       io.Reader
}

// Service implements the federated credentials' operations and the
// exchange.
type Service struct {
	deps Deps
	cfg  Config
}

// New returns a Service.
func New(cfg Config, deps Deps) *Service {
	if deps.Observer == nil {
		deps.Observer = noObserver{}
	}
	if deps.Audit == nil {
		deps.Audit = noAudit{}
	}
	return &Service{deps: deps, cfg: cfg}
}

// CreateInput is what a caller asks of Create.
type CreateInput struct {
	UserID      string // the machine user
	Issuer      string
	Subject     string
	Audiences   []string
	Condition   string
	Scopes      []string      // empty: the caller's
	MaxLifetime time.Duration // 0: the server's
	Description string
}

// Create adds a federated credential to a machine user the caller may act
// for (one it owns; an admin: any). The issuer must be trusted, the
// condition valid CEL, the scopes at most the caller's. A machine user
// cannot add one to itself: trusting a workload is its owner's decision,
// and a leaked token of the machine user must not be able to plant a
// trust that outlives the token's deletion.
func (s *Service) Create(ctx context.Context, caller *domain.Principal, in CreateInput) (*domain.FederatedCredential, error) {
	if err := caller.MayChangeCredentials(); err != nil {
		return nil, err
	}
	owner, err := s.machineUser(ctx, caller, in.UserID)
	if err != nil {
		return nil, err
	}
	if caller.User.IsMachine() {
		err := &domain.Error{Kind: domain.KindPermissionDenied, Reason: domain.ReasonPersonRequired,
			Message: "a machine user cannot add federated credentials: its owner (or an admin) does"}
		s.refused(ctx, caller, owner, err, "")
		return nil, err
	}
	if err := s.checkInput(in); err != nil {
		return nil, err
	}
	scopes, refusedScope, err := s.deps.Tokens.Grantable(caller, in.Scopes)
	if err != nil {
		s.refused(ctx, caller, owner, err, refusedScope)
		return nil, err
	}
	id, err := auth.RandomID(s.deps.Rand)
	if err != nil {
		return nil, domain.Wrap(domain.KindInternal, err, "generating an ID")
	}
	c := &domain.FederatedCredential{
		ID:          domain.FederatedCredentialPrefix + id,
		UserID:      owner.ID,
		Issuer:      in.Issuer,
		Subject:     in.Subject,
		Audiences:   in.Audiences,
		Condition:   in.Condition,
		Scopes:      scopes,
		MaxLifetime: in.MaxLifetime.Truncate(time.Second),
		Description: in.Description,
		CreateTime:  s.deps.Clock().UTC().Truncate(time.Microsecond),
	}
	ev := domain.NewAuditEvent(ctx, c.CreateTime, domain.ActionFederatedCredentialCreate, domain.OutcomeSuccess, caller)
	ev.Subject = domain.SubjectUser(owner)
	ev.Subject.TokenID = c.ID
	ev.Details = map[string]string{detailIssuer: c.Issuer, detailSubject: c.Subject, "scopes": c.Scopes.String()}
	switch err := s.deps.Store.CreateFederatedCredential(ctx, c, s.cfg.MaxPerUser, ev); {
	case err == domain.ErrLimitReached:
		err := &domain.Error{Kind: domain.KindResourceExhausted, Reason: domain.ReasonQuotaExceeded,
			Message: fmt.Sprintf("the user has %d federated credentials, the most allowed (--max-federated-credentials-per-user): delete one first", s.cfg.MaxPerUser)}
		s.refused(ctx, caller, owner, err, "")
		return nil, err
	case err != nil:
		return nil, err
	}
	return c, nil
}

// checkInput checks what a credential says, in plain words.
func (s *Service) checkInput(in CreateInput) error {
	if !s.deps.Issuers.Trusted(in.Issuer) {
		trusted := s.deps.Issuers.URLs()
		if len(trusted) == 0 {
			return domain.InvalidField("issuer", "this server trusts no issuer: its operator lists them with --trusted-issuers")
		}
		return domain.InvalidField("issuer", "%q is not a trusted issuer: the server trusts %s (its --trusted-issuers)", in.Issuer, strings.Join(trusted, ", "))
	}
	if in.Subject == "" {
		return domain.InvalidField("subject", "is required: the exact sub of the tokens to accept")
	}
	if len(in.Audiences) == 0 {
		return domain.InvalidField("audiences", "name at least one: the token's aud must contain one of them")
	}
	for _, text := range []struct{ field, value string }{{"subject", in.Subject}, {"description", in.Description}} {
		if err := domain.CheckText(text.field, text.value); err != nil {
			return err
		}
	}
	for _, a := range in.Audiences {
		if err := domain.CheckText("audiences", a); err != nil {
			return err
		}
	}
	if in.Condition != "" {
		if err := s.deps.Conditions.Check(in.Condition); err != nil {
			return domain.InvalidField("condition", "%s", err)
		}
	}
	if lifetime := s.deps.Tokens.Lifetime(); in.MaxLifetime > lifetime {
		return domain.InvalidField("max_access_token_lifetime", "must be at most %s, the server's access-token lifetime", lifetime)
	}
	if in.MaxLifetime < 0 {
		return domain.InvalidField("max_access_token_lifetime", "must be positive")
	}
	return nil
}

// machineUser returns the machine user userID names, if the caller may act
// for it.
func (s *Service) machineUser(ctx context.Context, caller *domain.Principal, userID string) (*domain.User, error) {
	if userID == "" {
		return nil, domain.InvalidField("user_id", "is required: the machine user's ID")
	}
	u, err := s.deps.Tokens.ActingFor(ctx, caller, userID)
	if err != nil {
		return nil, err
	}
	if !u.IsMachine() {
		return nil, domain.InvalidField("user_id", "federated credentials belong to machine users: %s is a person (create a machine user for the workload)", u.Username)
	}
	return u, nil
}

var errCredentialNotFound = domain.Errorf(domain.KindNotFound, "federated credential not found")

// Get returns a credential of a machine user the caller may act for, or a
// not-found error (also for one it may not see: existence does not leak).
func (s *Service) Get(ctx context.Context, caller *domain.Principal, userID, id string) (*domain.FederatedCredential, error) {
	u, err := s.deps.Tokens.ActingFor(ctx, caller, userID)
	if err != nil {
		if domain.KindOf(err) == domain.KindPermissionDenied {
			return nil, errCredentialNotFound
		}
		return nil, err
	}
	c, err := s.deps.Store.FederatedCredentialByID(ctx, id)
	if domain.KindOf(err) == domain.KindNotFound || (err == nil && c.UserID != u.ID) {
		return nil, errCredentialNotFound
	}
	return c, err
}

// List returns a machine user's credentials, oldest first.
func (s *Service) List(ctx context.Context, caller *domain.Principal, userID string) ([]*domain.FederatedCredential, error) {
	u, err := s.deps.Tokens.ActingFor(ctx, caller, userID)
	if err != nil {
		return nil, err
	}
	return s.deps.Store.ListFederatedCredentials(ctx, u.ID)
}

// Delete deletes a credential, as Get finds it.
func (s *Service) Delete(ctx context.Context, caller *domain.Principal, userID, id string) error {
	if err := caller.MayChangeCredentials(); err != nil {
		return err
	}
	c, err := s.Get(ctx, caller, userID, id)
	if err != nil {
		return err
	}
	u, err := s.deps.Tokens.ActingFor(ctx, caller, c.UserID)
	if err != nil {
		return err
	}
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), domain.ActionFederatedCredentialDelete, domain.OutcomeSuccess, caller)
	ev.Subject = domain.SubjectUser(u)
	ev.Subject.TokenID = c.ID
	err = s.deps.Store.DeleteFederatedCredential(ctx, c.ID, ev)
	if domain.KindOf(err) == domain.KindNotFound {
		return errCredentialNotFound
	}
	return err
}

// refused records a change the rules refused a valid caller.
func (s *Service) refused(ctx context.Context, caller *domain.Principal, owner *domain.User, err error, scope string) {
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), domain.ActionFederatedCredentialCreate, domain.OutcomeDenied, caller)
	ev.Subject = domain.SubjectUser(owner)
	ev.Details = map[string]string{detailReason: strings.ToLower(domain.ReasonOf(err))}
	if scope != "" {
		ev.Details["scope"] = scope
	}
	s.deps.Audit.Record(ev)
}

// The details of the federation events.
const (
	detailReason    = "reason"
	detailIssuer    = "issuer"
	detailSubject   = "external_subject" // the external token's sub
	detailJTI       = "external_jti"     // the external token's jti
	detailGrantType = "grant_type"
)

type noAudit struct{}

func (noAudit) Record(*domain.AuditEvent) {}
