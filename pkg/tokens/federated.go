package tokens

import (
	"context"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// The rules pkg/federation shares with the API tokens': a federated
// credential is a machine user's credential like its tokens, made by the
// same callers, granting at most the same scopes, and its access tokens
// are checked here like theirs.

// ActingFor returns the user the caller acts for, by the rule that says
// whose tokens a caller may manage: itself (userID empty or its own), a
// machine user it owns, anyone for an admin. It returns a KindPermissionDenied
// error otherwise, and a KindNotFound one to an admin naming no user.
func (s *Service) ActingFor(ctx context.Context, caller *domain.Principal, userID string) (*domain.User, error) {
	return s.actingFor(ctx, caller, userID)
}

// Grantable returns the scopes a new credential of the caller's may have,
// as a new token's: those asked for, each known and held by the caller;
// none asked for, all of the caller's. Refusing, it returns the scope at
// fault, if one is.
func (s *Service) Grantable(caller *domain.Principal, asked []string) (domain.Scopes, string, error) {
	return s.grantable(caller, asked)
}

// Lifetime returns the lifetime of the access tokens minted here.
func (s *Service) Lifetime() time.Duration { return s.deps.Minter.Lifetime() }

// FederatedGrant is what a federated exchange mints: for credential c,
// whose match pkg/federation has checked, the scopes asked for (none: the
// credential's but WriteScopes) for resource (""; this service).
type FederatedGrant struct {
	Credential *domain.FederatedCredential
	Scopes     []string
	Resource   string
	// Actor is the external workload, for the act claim.
	Actor auth.Actor
	// Details are added to the access_token.mint event (the subject
	// token's jti, the grant type).
	Details map[string]string
}

// MintFederated mints the access token of a federated exchange: the
// credential's machine user is its sub, the credential its client_id, the
// external workload its act. Scopes beyond the credential's are refused
// with ReasonInvalidScope, an unknown resource with ReasonInvalidTarget.
func (s *Service) MintFederated(ctx context.Context, g FederatedGrant) (Exchanged, error) {
	c := g.Credential
	u, err := s.deps.Users.UserByID(ctx, c.UserID)
	if err != nil {
		return Exchanged{}, unauthenticated(err)
	}
	// The credential stands for the machine user as an API token would:
	// the minter, the reuse memory and the bearer check key on its ID.
	t := &domain.Token{ID: c.ID, UserID: c.UserID, Scopes: c.Scopes, CreateTime: c.CreateTime}
	if g.Resource == s.deps.Minter.Audience() {
		g.Resource = "" // this service, named
	}
	if g.Resource != "" && !s.deps.Minter.IsResource(g.Resource) {
		err := s.unknownResource(g.Resource)
		s.federatedRefused(ctx, u, c, err, "", g.Details)
		return Exchanged{}, err
	}
	held := s.inForce(c.Scopes)
	scopes := withoutWriteScopes(held)
	if len(g.Scopes) > 0 {
		scopes = domain.NewScopes(g.Scopes...)
		if missing := held.Missing(scopes); missing != "" {
			if !s.known.Has(missing) {
				err := s.unknownScope(missing)
				s.federatedRefused(ctx, u, c, err, missing, g.Details)
				return Exchanged{}, err
			}
			e := domain.InvalidField("scope", "the federated credential grants no %q: it grants %s", missing, held)
			e.Reason = domain.ReasonInvalidScope
			s.federatedRefused(ctx, u, c, e, missing, g.Details)
			return Exchanged{}, e
		}
	}
	now := s.deps.Clock()
	actor := g.Actor
	grant := auth.Grant{Scopes: scopes, Audience: g.Resource, Actor: &actor}
	if c.MaxLifetime > 0 {
		grant.NotAfter = now.Add(c.MaxLifetime)
	}
	at, err := s.deps.Minter.Mint(t, grant, now)
	if err != nil {
		return Exchanged{}, domain.Wrap(domain.KindInternal, err, "minting access token")
	}
	if !at.Reused {
		aud := g.Resource
		if aud == "" {
			aud = s.deps.Minter.Audience()
		}
		party := domain.SubjectUser(u)
		party.TokenID = c.ID
		ev := &domain.AuditEvent{Time: now, Action: domain.ActionAccessTokenMint, Outcome: domain.OutcomeSuccess,
			Actor: party, Subject: party, Origin: domain.OriginFromContext(ctx),
			Details: map[string]string{detailJTI: at.JTI, detailAudience: aud, detailScope: scopes.String()}}
		ev.Actor.Kind = domain.ActorUser
		for k, v := range g.Details {
			ev.Details[k] = v
		}
		s.deps.Audit.Record(ev)
	}
	return Exchanged{AccessToken: at, Scopes: scopes}, nil
}

// federatedRefused records a federated exchange refused for what it asked.
func (s *Service) federatedRefused(ctx context.Context, u *domain.User, c *domain.FederatedCredential, err error, scope string, details map[string]string) {
	party := domain.SubjectUser(u)
	party.TokenID = c.ID
	ev := &domain.AuditEvent{Time: s.deps.Clock(), Action: domain.ActionAccessTokenMint, Outcome: domain.OutcomeDenied,
		Actor: party, Subject: party, Origin: domain.OriginFromContext(ctx), Details: map[string]string{detailReason: reason(err)}}
	ev.Actor.Kind = domain.ActorUser
	if scope != "" {
		ev.Details[detailScope] = scope
	}
	for k, v := range details {
		ev.Details[k] = v
	}
	s.deps.Audit.Record(ev)
}

// federatedToken reads the credential an access token's client_id names,
// as the token it stands for: gone, the access token is refused.
func (s *Service) federatedToken(ctx context.Context, id string) (*domain.Token, error) {
	if s.deps.Federated == nil {
		return nil, domain.Errorf(domain.KindNotFound, "federated credential not found")
	}
	c, err := s.deps.Federated.FederatedCredentialByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return &domain.Token{ID: c.ID, UserID: c.UserID, Scopes: c.Scopes, CreateTime: c.CreateTime}, nil
}
