package tokens

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// Rotate gives a token the caller may see a new secret and returns
// the new plaintext, shown this once: the same ID, note, scopes, owner and
// expiry. The old secret is refused at once, or after grace (at most the
// configured MaxRotationGracePeriod): here at once, on other replicas
// within the cache TTL, as a deletion is.
func (s *Service) Rotate(ctx context.Context, caller *domain.Principal, id string, grace time.Duration) (string, *domain.Token, error) {
	if grace < 0 {
		return "", nil, domain.InvalidField("grace_period", "must not be negative")
	}
	if grace > s.cfg.MaxRotationGracePeriod {
		return "", nil, domain.InvalidField("grace_period", "must be at most %s (the server's --max-rotation-grace-period)", s.cfg.MaxRotationGracePeriod)
	}
	t, err := s.visibleToken(ctx, caller, id)
	if err != nil {
		return "", nil, err
	}
	now := s.deps.Clock()
	if !t.ActiveAt(now) {
		return "", nil, errTokenNotFound
	}
	if err := s.mayActOn(caller, t, "rotate"); err != nil {
		return "", nil, err
	}
	secret, err := auth.NewAPIToken(s.deps.Rand)
	if err != nil {
		return "", nil, domain.Wrap(domain.KindInternal, err, "generating token")
	}
	plain := auth.APIToken{ID: t.ID, Secret: secret.Secret}
	hash := auth.HashSecret(plain.Secret)
	var previousUntil time.Time
	if grace > 0 {
		previousUntil = now.Add(grace)
	}
	// From the generation the caller saw: if another rotation came first
	// (on another replica, whose cache this one's may lag), none. A token
	// rotating itself rotates from the secret its caller proved, not from
	// the token as read since: a rotation elsewhere between the two reads
	// must not let the secret it replaced rotate the token again (and so
	// take it from whoever rotated it).
	from := t.SecretGeneration
	if caller.TokenID == t.ID {
		from = caller.TokenGeneration
	}
	ev := domain.NewAuditEvent(ctx, now, domain.ActionTokenRotate, domain.OutcomeSuccess, caller)
	ev.Subject = s.ownerParty(ctx, caller, t)
	ev.Details = map[string]string{detailGrace: grace.String(), detailGeneration: strconv.Itoa(from + 1)}
	if err := s.deps.Tokens.RotateSecret(ctx, t.ID, from, hash, previousUntil, now, ev); err != nil {
		if domain.KindOf(err) == domain.KindNotFound {
			return "", nil, errTokenNotFound
		}
		return "", nil, err
	}
	s.deps.Minter.Forget(t.ID)
	t.PreviousSecretHash, t.PreviousSecretExpireTime, t.SecretHash = t.SecretHash, previousUntil, hash
	t.SecretGeneration = from + 1
	return plain.String(), t, nil
}

// mayActOn refuses to rotate or delete (verb) a token with a credential
// that could not have made it: an access token or a replaced secret (which
// may make no lasting change), one lacking a scope of the token (a narrow,
// leaked CI token must not take over or revoke its owner's broader ones),
// or one that the token outlives. A password may act on any of its user's.
// Create's rules, which rotation and deletion must not get round.
func (s *Service) mayActOn(caller *domain.Principal, t *domain.Token, verb string) error {
	if err := caller.MayChangeCredentials(); err != nil {
		return err
	}
	if caller.AllScopes {
		return nil
	}
	// The token's stored scopes, not just those in force: one taken out
	// of --scopes and put back must not have passed to a narrower token's
	// holder meanwhile.
	if missing := caller.Scopes.Missing(t.Scopes); missing != "" {
		return domain.InsufficientScope(missing, "the token you authenticate with lacks the scope %q of the token to %s: %s it with one that has all its scopes, or with your password (HTTP Basic)", missing, verb, verb)
	}
	if limit := caller.TokenExpireTime; !limit.IsZero() && (t.ExpireTime.IsZero() || t.ExpireTime.After(limit)) {
		return domain.Errorf(domain.KindPermissionDenied,
			"the token to %s outlives the token you authenticate with: %s it with one that lasts as long, or with your password (HTTP Basic)", verb, verb)
	}
	return nil
}

// RevokeByPossession revokes the token whose plaintext is given, with no
// other credential: holding it is the proof (RFC 7009 §2.1; as a secret
// scanner or a person who pasted a token somewhere public needs). An API
// token is deleted; an access token deletes the API token it was minted
// from if the operator allows it, else ErrUnsupportedTokenType. A secret a
// rotation replaced (or an access token of it) ends its grace period
// instead: the token and its new secret live on. Anything
// not valid is no error: the answer must not tell a prober which tokens
// exist (§2.2).
func (s *Service) RevokeByPossession(ctx context.Context, plaintext string) error {
	var (
		t        *domain.Token
		previous bool
	)
	if auth.LooksLikeAPIToken(plaintext) {
		var err error
		if t, previous, _, err = s.readAPIToken(ctx, plaintext, s.deps.Tokens.CurrentTokenByID); err != nil {
			return ignoreUnauthenticated(err)
		}
	} else {
		if strings.Count(plaintext, ".") != 2 {
			return nil // not even shaped like an access token (a compact JWS)
		}
		if !s.cfg.RevokeAPITokenByAccessToken {
			return ErrUnsupportedTokenType
		}
		var err error
		if t, _, previous, _, err = s.readAccessToken(ctx, plaintext, s.deps.Tokens.CurrentTokenByID); err != nil {
			return ignoreUnauthenticated(err)
		}
		if domain.IsFederatedCredentialID(t.ID) {
			// No API token to revoke: answering 200 would say it was.
			return errFederatedNotRevocable
		}
	}
	// The actor is anonymous: holding the token is all that is known.
	now := s.deps.Clock()
	if previous {
		// A secret a rotation replaced (or an access token of it): it
		// stops working, its grace period over; the token and its new
		// secret live on. Deleting the token would let whoever leaked
		// the old secret lock its owner out.
		ev := domain.NewAuditEvent(ctx, now, domain.ActionTokenEndGrace, domain.OutcomeSuccess, nil)
		ev.Subject = s.ownerParty(ctx, nil, t)
		ev.Details = map[string]string{domain.DetailCause: domain.CauseRevocation, detailGeneration: strconv.Itoa(t.SecretGeneration - 1)}
		return s.deps.Tokens.EndGrace(ctx, t.ID, t.SecretGeneration, ev)
	}
	ev := domain.NewAuditEvent(ctx, now, domain.ActionTokenDelete, domain.OutcomeSuccess, nil)
	ev.Subject = s.ownerParty(ctx, nil, t)
	ev.With(domain.DetailCause, domain.CauseRevocation)
	err := s.deps.Tokens.DeleteToken(ctx, t.ID, now, ev)
	if domain.KindOf(err) == domain.KindNotFound {
		return nil
	}
	return err
}

// ErrUnsupportedTokenType refuses to revoke an access token when the
// operator has not allowed it (RFC 7009 §2.2.1 unsupported_token_type).
var ErrUnsupportedTokenType = &domain.Error{Kind: domain.KindInvalid, Reason: domain.ReasonUnsupportedTokenType,
	Message: "this server revokes API tokens (tks_...) only: revoke the API token the access token was minted from"}

// errFederatedNotRevocable refuses to revoke a federated access token
// (RFC 7009 §2.2.1 unsupported_token_type): it was minted from a
// federated credential, not an API token.
var errFederatedNotRevocable = &domain.Error{Kind: domain.KindInvalid, Reason: domain.ReasonUnsupportedTokenType,
	Message: "this access token was minted from a federated credential, not an API token: delete the credential (tokenservice user trust remove) to stop its exchanges and access tokens, or let the token expire"}

func ignoreUnauthenticated(err error) error {
	if domain.KindOf(err) == domain.KindUnauthenticated {
		return nil
	}
	return err
}

// Introspection is what RFC 7662 §2.2 says of an active token.
type Introspection struct {
	Active    bool
	AccessJWT bool // an access token; else an API token
	Scopes    domain.Scopes
	ClientID  string // the API token's ID
	Subject   string // its user's ID
	Username  string
	IssuedAt  time.Time
	ExpiresAt time.Time // zero: no expiry
	JTI       string    // an access token's
	Audience  string    // an access token's aud
	ownerID   string    // its user's owner, for the audit trail
}

// Introspect says whether a token, an API token or an access token, is
// active now and, if it is, what it carries. Inactive is every failure
// alike, with no detail (RFC 7662 §2.2). It is a check, not a use: the
// token's last-used time is left as it is. The introspection of an active
// token of another user than the caller's is recorded (token.introspect).
func (s *Service) Introspect(ctx context.Context, caller *domain.Principal, plaintext string) (Introspection, error) {
	in, err := s.introspect(ctx, plaintext)
	if err == nil && in.Active && (caller == nil || caller.User == nil || in.Subject != caller.User.ID) {
		ev := domain.NewAuditEvent(ctx, s.deps.Clock(), domain.ActionTokenIntrospect, domain.OutcomeSuccess, caller)
		ev.Subject = domain.AuditParty{UserID: in.Subject, Username: in.Username, OwnerID: in.ownerID, TokenID: in.ClientID}
		ev.Details = map[string]string{detailTokenKind: credentialAPIToken}
		if in.AccessJWT {
			ev.Details[detailTokenKind] = credentialAccessToken
			ev.Details[detailJTI] = in.JTI
		}
		s.deps.Audit.Record(ev)
	}
	return in, err
}

func (s *Service) introspect(ctx context.Context, plaintext string) (Introspection, error) {
	if auth.LooksLikeAPIToken(plaintext) {
		t, previous, _, err := s.apiToken(ctx, plaintext)
		if err != nil {
			return Introspection{}, ignoreUnauthenticated(err)
		}
		u, err := s.deps.Users.UserByID(ctx, t.UserID)
		if err != nil {
			return Introspection{}, ignoreUnauthenticated(unauthenticated(err))
		}
		return Introspection{Active: true, Scopes: s.granted(t.Scopes, previous), ClientID: t.ID, Subject: t.UserID, Username: u.Username,
			IssuedAt: t.CreateTime, ExpiresAt: t.ExpireTime, ownerID: u.OwnerID}, nil
	}
	t, claims, previous, _, err := s.accessToken(ctx, plaintext)
	if err != nil {
		return Introspection{}, ignoreUnauthenticated(err)
	}
	u, err := s.deps.Users.UserByID(ctx, t.UserID)
	if err != nil {
		return Introspection{}, ignoreUnauthenticated(unauthenticated(err))
	}
	scopes := t.Scopes
	if claims.HasScope {
		scopes = claims.Scopes
	}
	// Only scopes in force: a gateway that authorizes by introspection
	// must stop granting one the operator took out of --scopes.
	return Introspection{Active: true, AccessJWT: true, Scopes: s.granted(scopes, previous), ClientID: t.ID, Subject: t.UserID, Username: u.Username,
		IssuedAt: claims.Issued, ExpiresAt: claims.Expiry, JTI: claims.JTI, Audience: claims.Audience, ownerID: u.OwnerID}, nil
}
