package federation

import (
	"context"
	"fmt"
	"slices"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

// Issuers verifies the tokens of the operator's trusted issuers
// (pkg/issuers, adapted by pkg/app).
type Issuers interface {
	// URLs returns the trusted issuers.
	URLs() []string
	// Trusted reports whether issuer is one of them.
	Trusted(issuer string) bool
	// Verify verifies a token one of them signed. Its errors are
	// *RefusedToken.
	Verify(ctx context.Context, raw string) (*SubjectToken, error)
}

// SubjectToken is a verified token of a trusted issuer.
type SubjectToken struct {
	Issuer, Subject string
	ID              string // jti, if any
	Audience        []string
	Claims          map[string]any
}

// RefusedToken is why a subject token did not verify.
type RefusedToken struct {
	// Issuer is the token's iss if it is a trusted issuer, else "".
	Issuer string
	// Reason is a short stable label, for metrics.
	Reason string
	// Message says why in plain words a client may read.
	Message string
}

func (e *RefusedToken) Error() string { return e.Message }

// Observer is told how each exchange ended, for metrics.
type Observer interface {
	// Exchanged is told the issuer ("" when the token named none trusted)
	// and the outcome: "ok", or why not.
	Exchanged(issuer, outcome string)
}

type noObserver struct{}

func (noObserver) Exchanged(string, string) {}

// The outcomes of an exchange beside the verifier's reasons.
const (
	OutcomeOK           = "ok"
	OutcomeNoCredential = "no_credential" // no credential for the issuer and subject
	OutcomeAudience     = "audience"      // the aud is none a credential accepts
	OutcomeCondition    = "condition"     // a condition refused the claims
	OutcomeAmbiguous    = "ambiguous"     // several credentials match
	OutcomeDenied       = "denied"        // a scope or resource refused
	OutcomeError        = "error"         // the exchange could not be made
)

// ExchangeInput is what a federated exchange asks for.
type ExchangeInput struct {
	SubjectToken string
	// Scopes are the access token's; none: the credential's but
	// tokens.WriteScopes.
	Scopes   []string
	Resource string // RFC 8707; "": this service
	// ClientID, if set, names the machine user, for a token that matches
	// credentials of several.
	ClientID string
	// GrantType is the grant the client used, for the audit trail.
	GrantType string
}

// Exchange verifies a trusted issuer's token and mints the access token of
// the one federated credential it matches: the token's iss and sub are
// the credential's, its aud holds one of the credential's audiences, and
// the credential's condition holds for its claims. Each refusal is a
// KindInvalid error saying why (RFC 8693 §2.2.2's invalid_request), but a
// scope or resource the credential does not grant (invalid_scope,
// invalid_target).
func (s *Service) Exchange(ctx context.Context, in ExchangeInput) (tokens.Exchanged, error) {
	details := map[string]string{detailGrantType: in.GrantType}
	tok, err := s.deps.Issuers.Verify(ctx, in.SubjectToken)
	if err != nil {
		refused, ok := err.(*RefusedToken)
		if !ok {
			refused = &RefusedToken{Reason: OutcomeError, Message: "the subject token could not be verified"}
		}
		if refused.Issuer != "" {
			details[detailIssuer] = refused.Issuer
		}
		s.exchangeRefused(ctx, refused.Issuer, refused.Reason, details)
		return tokens.Exchanged{}, domain.InvalidField("subject_token", "%s", refused.Message)
	}
	details[detailIssuer], details[detailSubject] = tok.Issuer, tok.Subject
	if tok.ID != "" {
		details[detailJTI] = tok.ID
	}
	c, outcome, err := s.match(ctx, tok, in.ClientID)
	if err != nil {
		if outcome != OutcomeError {
			s.exchangeRefused(ctx, tok.Issuer, outcome, details)
		} else {
			s.deps.Observer.Exchanged(tok.Issuer, outcome)
		}
		return tokens.Exchanged{}, err
	}
	details["credential"] = c.ID
	x, err := s.deps.Tokens.MintFederated(ctx, tokens.FederatedGrant{Credential: c, Scopes: in.Scopes, Resource: in.Resource,
		Actor: auth.Actor{Issuer: tok.Issuer, Subject: tok.Subject}, Details: details})
	switch {
	case err == nil:
		s.deps.Observer.Exchanged(tok.Issuer, OutcomeOK)
	case domain.KindOf(err) == domain.KindInvalid:
		s.deps.Observer.Exchanged(tok.Issuer, OutcomeDenied)
	default:
		s.deps.Observer.Exchanged(tok.Issuer, OutcomeError)
	}
	return x, err
}

// match returns the one credential tok matches, or why none.
func (s *Service) match(ctx context.Context, tok *SubjectToken, clientID string) (*domain.FederatedCredential, string, error) {
	all, err := s.deps.Store.FederatedCredentialsFor(ctx, tok.Issuer, tok.Subject)
	if err != nil {
		return nil, OutcomeError, err
	}
	if clientID != "" {
		all = slices.DeleteFunc(all, func(c *domain.FederatedCredential) bool { return c.UserID != clientID })
	}
	if len(all) == 0 {
		msg := fmt.Sprintf("no federated credential accepts tokens of %s for the subject %q", tok.Issuer, tok.Subject)
		if clientID != "" {
			msg = fmt.Sprintf("no federated credential of the machine user %q (client_id) accepts tokens of %s for the subject %q", clip(clientID), tok.Issuer, tok.Subject)
		}
		return nil, OutcomeNoCredential, domain.InvalidField("subject_token", "%s", msg)
	}
	var byAudience, matched []*domain.FederatedCredential
	for _, c := range all {
		if slices.ContainsFunc(c.Audiences, func(a string) bool { return slices.Contains(tok.Audience, a) }) {
			byAudience = append(byAudience, c)
		}
	}
	if len(byAudience) == 0 {
		return nil, OutcomeAudience, domain.InvalidField("subject_token",
			"the token's aud %q is not an audience the federated credentials for its subject accept: request the token for this server's audience", tok.Audience)
	}
	// Conditions are tried for at most one machine user's quota of
	// credentials, within ConditionTimeout in all: a subject many users
	// trust (anyone may add a credential for any subject) cannot make an
	// exchange evaluate without end. Past the quota, client_id must say
	// whose.
	if len(byAudience) > s.maxCandidates() {
		return nil, OutcomeAmbiguous, errNameTheMachineUser()
	}
	condCtx, cancel := context.WithTimeout(ctx, ConditionTimeout)
	defer cancel()
	for _, c := range byAudience {
		if c.Condition == "" {
			matched = append(matched, c)
			continue
		}
		if ok, _ := s.deps.Conditions.Holds(condCtx, c.Condition, tok.Claims); ok {
			matched = append(matched, c)
		}
	}
	switch {
	case len(matched) == 0:
		return nil, OutcomeCondition, domain.InvalidField("subject_token",
			"the token's claims do not satisfy the condition of the federated credential for its subject")
	case len(matched) > 1 && clientID == "" && !oneUser(matched):
		return nil, OutcomeAmbiguous, errNameTheMachineUser()
	case len(matched) > 1:
		return nil, OutcomeAmbiguous, domain.InvalidField("subject_token",
			"%d federated credentials of the machine user %q accept this token: make their subjects or conditions exclusive, or delete one", len(matched), matched[0].UserID)
	}
	return matched[0], OutcomeOK, nil
}

// errNameTheMachineUser refuses an exchange that more than one machine
// user's credentials may accept: it is never guessed. It does not say
// whose, nor how many.
func errNameTheMachineUser() error {
	return domain.InvalidField("client_id",
		"federated credentials of more than one machine user accept tokens of this issuer and subject: name yours as client_id")
}

// maxCandidates is how many credentials one exchange may try: a machine
// user's quota.
func (s *Service) maxCandidates() int {
	if s.cfg.MaxPerUser > 0 {
		return s.cfg.MaxPerUser
	}
	return DefaultMaxPerUser
}

// clip shortens what a client sent to quote it in an answer.
func clip(v string) string {
	if len(v) > 64 {
		return v[:64] + "..."
	}
	return v
}

func oneUser(cs []*domain.FederatedCredential) bool { return users(cs) == 1 }

func users(cs []*domain.FederatedCredential) int {
	seen := map[string]bool{}
	for _, c := range cs {
		seen[c.UserID] = true
	}
	return len(seen)
}

// exchangeRefused counts and records an exchange refused for its subject
// token: the actor is anonymous (no credential was accepted); the details
// hold what was verified of the token, never an unverified claim but the
// issuer when it is a trusted one.
func (s *Service) exchangeRefused(ctx context.Context, issuer, outcome string, details map[string]string) {
	s.deps.Observer.Exchanged(issuer, outcome)
	ev := domain.NewAuditEvent(ctx, s.deps.Clock(), domain.ActionAccessTokenMint, domain.OutcomeFailure, nil)
	ev.Details = map[string]string{detailReason: outcome}
	for k, v := range details {
		ev.Details[k] = v
	}
	s.deps.Audit.Record(ev)
}
