// Package tokens owns the API tokens' rules: who may act for whom, how tokens
// are created, listed, deleted and exchanged for access tokens, and how bearer
// credentials are authenticated. It speaks domain types only.
package tokens

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
)

// Config holds the service's tunables.
type Config struct {
	// MaxTokenLifetime, if positive, bounds an API token's lifetime: tokens
	// without an expire_time get now+MaxTokenLifetime, and a later one is refused.
	MaxTokenLifetime time.Duration
	// MaxTokensPerUser, if positive, bounds each user's live (neither
	// deleted nor expired) tokens.
	MaxTokensPerUser int
	// Scopes are the operator's scopes, for the APIs behind its gateways,
	// beside the service's own (domain.ServiceScopes).
	Scopes []string
	// MaxRotationGracePeriod bounds how long a rotated token's old secret
	// may keep working (at most MaxGracePeriod; 0: refused at once, always).
	MaxRotationGracePeriod time.Duration
	// RevokeAPITokenByAccessToken lets whoever holds an access token revoke
	// the API token it was minted from (RFC 7009); off, revoking an access
	// token is refused as an unsupported token type.
	RevokeAPITokenByAccessToken bool
}

// MaxGracePeriod is the longest a rotated secret may keep working.
const MaxGracePeriod = 24 * time.Hour

// CheckScopes returns an error naming the first operator scope that is not
// a valid scope name (RFC 6749 §3.3) or is one of the service's own.
func CheckScopes(scopes []string) error {
	for _, sc := range scopes {
		if !domain.ValidScopeName(sc) {
			return fmt.Errorf("scope %q: a scope is 1 to 128 printable ASCII characters but space, '\"' and '\\' (RFC 6749 section 3.3)", sc)
		}
		if domain.ServiceScopes.Has(sc) {
			return fmt.Errorf("scope %q is the service's own: declare only the scopes of your APIs", sc)
		}
	}
	return nil
}

// LastUsed records when tokens are used; the recording may be batched.
type LastUsed interface {
	Record(tokenID string, at time.Time)
}

// Observer is told what happens to tokens, for metrics.
type Observer interface {
	TokenCreated()
	// CredentialChecked is told the outcome of each check of a credential.
	CredentialChecked(Check, Outcome)
}

// Check is what a credential was checked for.
type Check string

// The checks.
const (
	CheckExchange          Check = "exchange"            // an API token, for an access token
	CheckBearerAPIToken    Check = "bearer_api_token"    // an API token, as a bearer
	CheckBearerAccessToken Check = "bearer_access_token" // an access token, as a bearer
)

// Outcome is how a credential check ended. The client gets one answer for
// every failure; the operator sees which.
type Outcome string

// The outcomes.
const (
	OutcomeOK          Outcome = "ok"
	OutcomeMalformed   Outcome = "malformed"    // not shaped like the credential (bad checksum, not a compact JWS)
	OutcomeUnknown     Outcome = "unknown"      // no such token
	OutcomeWrongSecret Outcome = "wrong_secret" // a known token ID with the wrong secret
	OutcomeInvalid     Outcome = "invalid"      // an access token that does not verify: signature, key, claims or its own expiry
	OutcomeRevoked     Outcome = "revoked"      // the API token is deleted (or its user is)
	OutcomeExpired     Outcome = "expired"      // the API token is past its expire time
	OutcomeError       Outcome = "error"        // the check could not be made (the database is away, minting failed)
)

// Deps are what the service works with.
type Deps struct {
	Users    domain.Users
	Tokens   domain.Tokens
	Minter   *auth.Minter
	Pages    *pagetoken.Codec
	LastUsed LastUsed // nil: uses are not recorded
	Observer Observer // nil: nothing is told
	Audit    Audit    // nil: events of use are not recorded
	// Federated reads the federated credentials whose access tokens a
	// bearer check meets (nil: those are refused).
	Federated domain.FederatedCredentials
	Clock     func() time.Time
	Rand      io.Reader // crypto/rand.Reader in production
}

// Service implements the token service's operations.
type Service struct {
	deps Deps
	cfg  Config
	// known are the scopes a token may have: the service's and the operator's.
	known domain.Scopes
}

type noLastUsed struct{}

func (noLastUsed) Record(string, time.Time) {}

type noObserver struct{}

func (noObserver) TokenCreated()                    {}
func (noObserver) CredentialChecked(Check, Outcome) {}

// New returns a Service.
func New(cfg Config, deps Deps) *Service {
	if deps.LastUsed == nil {
		deps.LastUsed = noLastUsed{}
	}
	if deps.Observer == nil {
		deps.Observer = noObserver{}
	}
	if deps.Audit == nil {
		deps.Audit = noAudit{}
	}
	cfg.MaxRotationGracePeriod = min(cfg.MaxRotationGracePeriod, MaxGracePeriod)
	known := domain.NewScopes(append(slices.Clone(domain.ServiceScopes), cfg.Scopes...)...)
	return &Service{deps: deps, cfg: cfg, known: known}
}

// KnownScopes returns the scopes a token may have: the service's own and
// the operator's.
func (s *Service) KnownScopes() domain.Scopes { return s.known }

// CreateInput is what a caller asks of Create.
type CreateInput struct {
	UserID     string // empty: the caller
	Note       string
	ExpireTime time.Time // zero: no expiry (or the configured maximum)
	// Scopes are the token's; empty: the caller's (with a password, the
	// service's own scopes).
	Scopes []string
}

// Create creates an API token for in.UserID and returns its plaintext,
// which is never available again, with its stored metadata.
func (s *Service) Create(ctx context.Context, caller *domain.Principal, in CreateInput) (string, *domain.Token, error) {
	if err := caller.MayChangeCredentials(); err != nil {
		return "", nil, err
	}
	if err := domain.CheckText("note", in.Note); err != nil {
		return "", nil, err
	}
	owner, err := s.actingFor(ctx, caller, in.UserID)
	if err != nil {
		return "", nil, err
	}
	scopes, refusedScope, err := s.grantable(caller, in.Scopes)
	if err != nil {
		s.refused(ctx, caller, domain.ActionTokenCreate, domain.SubjectUser(owner), err, refusedScope)
		return "", nil, err
	}
	now := s.deps.Clock()
	expire := in.ExpireTime
	if !expire.IsZero() && !expire.After(now) {
		return "", nil, domain.InvalidField("expire_time", "must be in the future")
	}
	// A token cannot outlive the API token behind the credential it was
	// made with: a leaked expiring token cannot mint a lasting one.
	if limit := caller.TokenExpireTime; !caller.AllScopes && !limit.IsZero() {
		if expire.IsZero() {
			expire = limit
		} else if expire.After(limit) {
			return "", nil, domain.InvalidField("expire_time", "must not be after %s, when the token you authenticate with expires",
				limit.Format(time.RFC3339))
		}
	}
	if max := s.cfg.MaxTokenLifetime; max > 0 {
		limit := now.Add(max)
		if expire.IsZero() {
			expire = limit
		} else if expire.After(limit) {
			return "", nil, domain.InvalidField("expire_time", "must be at most %s from now (the server's --max-token-lifetime)", max)
		}
	}
	plain, err := auth.NewAPIToken(s.deps.Rand)
	if err != nil {
		return "", nil, domain.Wrap(domain.KindInternal, err, "generating token")
	}
	t := &domain.Token{
		ID:         plain.ID,
		UserID:     owner.ID,
		SecretHash: auth.HashSecret(plain.Secret),
		Note:       in.Note,
		CreateTime: now,
		ExpireTime: expire.UTC().Truncate(time.Microsecond),
		Scopes:     scopes,
	}
	switch err := s.deps.Tokens.CreateToken(ctx, t, s.cfg.MaxTokensPerUser, createdEvent(ctx, caller, owner, t)); {
	case err == domain.ErrLimitReached:
		err := &domain.Error{Kind: domain.KindResourceExhausted, Reason: domain.ReasonQuotaExceeded,
			Message: fmt.Sprintf("the user has %d live tokens, the most allowed (the server's --max-tokens-per-user): delete one first", s.cfg.MaxTokensPerUser)}
		s.refused(ctx, caller, domain.ActionTokenCreate, domain.SubjectUser(owner), err, "")
		return "", nil, err
	case domain.KindOf(err) == domain.KindNotFound && owner.ID == caller.User.ID:
		// The caller was deleted since its credential was checked (on
		// another replica, or its cached entry outlived it).
		return "", nil, domain.ErrUnauthenticated
	case err != nil:
		return "", nil, err
	}
	s.deps.Observer.TokenCreated()
	return plain.String(), t, nil
}

// grantable returns the scopes a new token of the caller's gets: those
// asked for, each known and held by the caller (a password holds them all);
// none asked for, the caller's own (with a password, every known scope).
// Refusing, it returns the scope at fault, if one is.
func (s *Service) grantable(caller *domain.Principal, asked []string) (domain.Scopes, string, error) {
	if len(asked) == 0 {
		if caller.AllScopes {
			return s.known, "", nil
		}
		if len(caller.Scopes) == 0 {
			return nil, "", &domain.Error{Kind: domain.KindPermissionDenied, Reason: domain.ReasonInsufficientScope,
				Message: "the token you authenticate with has no scope to give a new token"}
		}
		return caller.Scopes, "", nil
	}
	scopes := domain.NewScopes(asked...)
	if unknown := s.known.Missing(scopes); unknown != "" {
		return nil, unknown, s.unknownScope(unknown)
	}
	if !caller.AllScopes {
		if missing := caller.Scopes.Missing(scopes); missing != "" {
			return nil, missing, domain.InsufficientScope(missing, "the token you authenticate with lacks the scope %q: a new token may have at most its scopes", missing)
		}
	}
	return scopes, "", nil
}

func (s *Service) unknownScope(name string) error {
	e := domain.InvalidField("scopes", "unknown scope %q: the scopes are %s", name, strings.Join(s.known, ", "))
	e.Reason = domain.ReasonInvalidScope
	return e
}

// Get returns a token the caller may see (its own or its machine users',
// or any for an admin), or a not-found error, so existence does not leak.
func (s *Service) Get(ctx context.Context, caller *domain.Principal, id string) (*domain.Token, error) {
	t, err := s.visibleToken(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	if !t.DeleteTime.IsZero() {
		return nil, errTokenNotFound
	}
	return t, nil
}

// Delete deletes a token the caller may see. Deleting a deleted token
// succeeds. Once it returns, the token and access tokens minted from it are
// refused. A token may delete itself, unless the caller holds the secret
// a rotation replaced; another only as it may rotate it (mayActOn).
func (s *Service) Delete(ctx context.Context, caller *domain.Principal, id string) error {
	t, err := s.visibleToken(ctx, caller, id)
	if err != nil {
		return err
	}
	switch {
	case t.ID != caller.TokenID:
		if err := s.mayActOn(caller, t, "delete"); err != nil {
			return err
		}
	case caller.PreviousSecret:
		// A token may delete itself, but not with the secret a rotation
		// replaced: that would lock the owner's new secret out.
		return domain.ErrReplacedSecret
	}
	now := s.deps.Clock()
	ev := domain.NewAuditEvent(ctx, now, domain.ActionTokenDelete, domain.OutcomeSuccess, caller)
	ev.Subject = s.ownerParty(ctx, caller, t)
	ev.With(domain.DetailCause, deleteCause(caller, t, ev.Subject))
	return s.deps.Tokens.DeleteToken(ctx, id, now, ev)
}

// ListInput is what a caller asks of List.
type ListInput struct {
	UserID    string // empty: the caller
	PageSize  int    // 0: pagetoken.DefaultPageSize; clamped to pagetoken.MaxPageSize
	PageToken string
	Reverse   bool
	// ExpireBefore, if set, keeps only tokens that expire before it.
	ExpireBefore time.Time
}

// List returns one page of a user's active tokens and the token of the
// next page ("" on the last page).
func (s *Service) List(ctx context.Context, caller *domain.Principal, in ListInput) ([]*domain.Token, string, error) {
	user, err := s.actingFor(ctx, caller, in.UserID)
	if err != nil {
		return nil, "", err
	}
	userID := user.ID
	now := s.deps.Clock()
	// A page token is good for the caller, listing, user, direction and
	// filter it came from: no one else may continue another's listing.
	query := []string{"tokens", caller.User.ID, userID, strconv.FormatBool(in.Reverse), in.ExpireBefore.Format(time.RFC3339Nano)}
	return pagetoken.List(s.deps.Pages, in.PageSize, in.PageToken, query,
		func(after *domain.Cursor, limit int) ([]*domain.Token, error) {
			return s.deps.Tokens.ListTokens(ctx, domain.TokenQuery{UserID: userID, Now: now, Limit: limit, Reverse: in.Reverse,
				After: after, ExpireBefore: in.ExpireBefore})
		},
		func(t *domain.Token) domain.Cursor { return domain.Cursor{CreateTime: t.CreateTime, ID: t.ID} })
}

// errNotAnAPIToken answers an exchange of something that is not even shaped
// like an API token (an access token, say): by its form alone, so it tells
// nothing about any token's validity.
var errNotAnAPIToken = &domain.Error{Kind: domain.KindUnauthenticated, Reason: domain.ReasonInvalidCredentials,
	Message: domain.ErrUnauthenticated.Message + ": the exchange takes an API token (tks_...), not an access token"}

// Exchanged is what an exchange gives.
type Exchanged struct {
	AccessToken auth.AccessToken
	Scopes      domain.Scopes // the access token's
	// APITokenExpireTime is the API token's expiry (zero: none), for the
	// client's warning.
	APITokenExpireTime time.Time
}

// ExchangeInput is what an exchange asks for.
type ExchangeInput struct {
	APIToken string // the plaintext
	// Scopes are the access token's; none: the API token's but the
	// service's write scopes (WriteScopes), which are given only when
	// asked for by name.
	Scopes []string
	// Resource is the API the access token is for (RFC 8707), its aud:
	// one of the minter's resources; "": this service's own audience.
	Resource string
}

// WriteScopes are the service's scopes an access token carries only when
// an exchange names them: an access token is handed to every API behind
// the gateways, and these are of no use to them.
var WriteScopes = domain.NewScopes(domain.ScopeTokensWrite, domain.ScopeUsersWrite)

// Exchange trades a plaintext API token for a signed access token carrying
// the scopes asked for (none: all the API token's but WriteScopes). The
// token must hold each: more is refused with a KindInvalid error of
// ReasonInvalidScope; an unknown resource, with ReasonInvalidTarget.
// GetAccessToken and the OAuth token endpoint both come here.
func (s *Service) Exchange(ctx context.Context, in ExchangeInput) (Exchanged, error) {
	x, outcome, err := s.exchange(ctx, in)
	s.deps.Observer.CredentialChecked(CheckExchange, outcome)
	if err != nil {
		s.credentialRefused(ctx, domain.ActionAccessTokenMint, "", apiTokenID(in.APIToken), outcome)
	}
	return x, err
}

func (s *Service) exchange(ctx context.Context, in ExchangeInput) (Exchanged, Outcome, error) {
	if !auth.LooksLikeAPIToken(in.APIToken) {
		return Exchanged{}, OutcomeMalformed, errNotAnAPIToken
	}
	t, previous, outcome, err := s.apiToken(ctx, in.APIToken)
	if err != nil {
		return Exchanged{}, outcome, err
	}
	if in.Resource != "" && !s.deps.Minter.IsResource(in.Resource) {
		err := s.unknownResource(in.Resource)
		s.mintRefused(ctx, t, err, "")
		return Exchanged{}, OutcomeOK, err
	}
	held := s.granted(t.Scopes, previous)
	scopes := withoutWriteScopes(held)
	if asked := in.Scopes; len(asked) > 0 {
		scopes = domain.NewScopes(asked...)
		if missing := held.Missing(scopes); missing != "" {
			if !s.known.Has(missing) {
				err := s.unknownScope(missing)
				s.mintRefused(ctx, t, err, missing)
				return Exchanged{}, OutcomeOK, err
			}
			e := domain.InvalidField("scopes", "the API token lacks the scope %q: it has %s", missing, held)
			if previous && s.inForce(t.Scopes).Has(missing) {
				e = domain.InvalidField("scopes", "a secret a rotation replaced is not given %q (it may only read until its grace period ends): use the token's current secret", missing)
			}
			e.Reason = domain.ReasonInvalidScope
			s.mintRefused(ctx, t, e, missing)
			return Exchanged{}, OutcomeOK, e
		}
	}
	now := s.deps.Clock()
	g := auth.Grant{Scopes: scopes, SecretGeneration: t.SecretGeneration, Audience: in.Resource}
	if previous {
		g.SecretGeneration--
		g.NotAfter = t.PreviousSecretExpireTime
	}
	at, err := s.deps.Minter.Mint(t, g, now)
	if err != nil {
		return Exchanged{}, OutcomeError, domain.Wrap(domain.KindInternal, err, "minting access token")
	}
	s.deps.LastUsed.Record(t.ID, now)
	s.minted(ctx, t, at, g, scopes, now)
	return Exchanged{AccessToken: at, Scopes: scopes, APITokenExpireTime: t.ExpireTime}, OutcomeOK, nil
}

// withoutWriteScopes returns held less WriteScopes.
func withoutWriteScopes(held domain.Scopes) domain.Scopes {
	if !slices.ContainsFunc(held, WriteScopes.Has) {
		return held // no copy
	}
	out := make(domain.Scopes, 0, len(held))
	for _, sc := range held {
		if !WriteScopes.Has(sc) {
			out = append(out, sc)
		}
	}
	return out
}

func (s *Service) unknownResource(name string) error {
	var e *domain.Error
	if len(s.deps.Minter.Resources()) == 0 {
		e = domain.InvalidField("resource", "this server mints access tokens for no other API (the operator declares them with --resources)")
	} else {
		e = domain.InvalidField("resource", "unknown resource %q: the resources are %s", name, strings.Join(s.deps.Minter.Resources(), ", "))
	}
	e.Reason = domain.ReasonInvalidTarget
	return e
}

var errTokenNotFound = domain.Errorf(domain.KindNotFound, "token not found")

// visibleToken returns the token, deleted or not, if the caller may see it.
// It reads through the cache: a revocation anywhere reaches it within the
// change feed's bound; its last_used_time may lag by the cache's max age.
func (s *Service) visibleToken(ctx context.Context, caller *domain.Principal, id string) (*domain.Token, error) {
	t, err := s.deps.Tokens.TokenByID(ctx, id)
	if domain.KindOf(err) == domain.KindNotFound {
		return nil, errTokenNotFound
	}
	if err != nil {
		return nil, err
	}
	if t.UserID == caller.User.ID || caller.User.Admin {
		return t, nil
	}
	owner, err := s.deps.Users.UserByID(ctx, t.UserID)
	if err != nil {
		if domain.KindOf(err) == domain.KindNotFound {
			return nil, errTokenNotFound
		}
		return nil, err
	}
	if owner.OwnerID != caller.User.ID {
		return nil, errTokenNotFound
	}
	return t, nil
}

// actingFor returns the user the caller acts for: itself when userID is
// empty, else userID if it is the caller, a machine user the caller owns,
// or anyone for an admin.
func (s *Service) actingFor(ctx context.Context, caller *domain.Principal, userID string) (*domain.User, error) {
	if userID == "" || userID == caller.User.ID {
		return caller.User, nil
	}
	target, err := s.deps.Users.UserByID(ctx, userID)
	switch {
	case domain.KindOf(err) == domain.KindNotFound:
		if caller.User.Admin {
			return nil, domain.Errorf(domain.KindNotFound, "user not found")
		}
		return nil, errPermissionDenied
	case err != nil:
		return nil, err
	case caller.User.Admin || target.OwnerID == caller.User.ID:
		return target, nil
	}
	return nil, errPermissionDenied
}

var errPermissionDenied = domain.Errorf(domain.KindPermissionDenied,
	"you may act only for yourself or a machine user you own (leave the user ID empty for yourself)")
