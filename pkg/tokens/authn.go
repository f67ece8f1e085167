package tokens

import (
	"context"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// AuthenticateBearer resolves a bearer credential for this service's own
// API, an API token or an access token minted by this service for its own
// audience, to the caller. Every failure is the same
// domain.ErrUnauthenticated.
func (s *Service) AuthenticateBearer(ctx context.Context, bearer string) (*domain.Principal, error) {
	return s.AuthenticateBearerFor(ctx, bearer, ownAudience)
}

// AuthenticateBearerToChange is AuthenticateBearer for a call that makes
// or changes lasting credentials: the token (an API token, or the one an
// access token was minted from) is read from the database
// (CurrentTokenByID), not a cached copy that may predate a rotation or a
// deletion on another replica, so a replaced secret or its access tokens
// cannot pass for current there.
func (s *Service) AuthenticateBearerToChange(ctx context.Context, bearer string) (*domain.Principal, error) {
	check := CheckBearerAccessToken
	if auth.LooksLikeAPIToken(bearer) {
		check = CheckBearerAPIToken
	}
	p, outcome, err := s.authenticateBearer(ctx, check, bearer, ownAudience, s.deps.Tokens.CurrentTokenByID)
	s.deps.Observer.CredentialChecked(check, outcome)
	if err != nil {
		s.bearerRefused(ctx, check, bearer, outcome)
	}
	return p, err
}

// Audience is the aud an access token must have to be accepted.
type Audience string

// AnyAudience accepts an access token minted for any audience this service
// mints for: its own and its resources.
const AnyAudience Audience = ""

// ownAudience is this service's own audience, looked up when an access
// token is checked.
const ownAudience Audience = "\x00own"

// AuthenticateBearerFor is AuthenticateBearer for a gateway protecting
// another API: an access token must have been minted for aud.
func (s *Service) AuthenticateBearerFor(ctx context.Context, bearer string, aud Audience) (*domain.Principal, error) {
	check := CheckBearerAccessToken
	if auth.LooksLikeAPIToken(bearer) {
		check = CheckBearerAPIToken
	}
	p, outcome, err := s.authenticateBearer(ctx, check, bearer, aud, s.deps.Tokens.TokenByID)
	s.deps.Observer.CredentialChecked(check, outcome)
	if err != nil {
		s.bearerRefused(ctx, check, bearer, outcome)
	}
	if p != nil && p.PreviousSecret && aud != ownAudience {
		// A gateway passes the scopes on: not those the service refuses.
		p.Scopes = withoutWriteScopes(p.Scopes) // in force already
	}
	return p, err
}

// bearerRefused records a refused bearer credential (token.authenticate,
// outcome failure): which kind, why, and the API token it names, if it
// names one. Only refusals are recorded: a check that passes is the
// bearer's every call.
func (s *Service) bearerRefused(ctx context.Context, check Check, bearer string, outcome Outcome) {
	if outcome == OutcomeError || outcome == OutcomeOK {
		return
	}
	credential, tokenID := credentialAccessToken, ""
	if check == CheckBearerAPIToken {
		credential, tokenID = credentialAPIToken, apiTokenID(bearer)
	} else if outcome == OutcomeRevoked || outcome == OutcomeExpired {
		// It verified (the minter remembers it: no second signature
		// check), and names the API token it was minted from.
		if claims, err := s.deps.Minter.Verify(bearer, s.deps.Clock()); err == nil {
			tokenID = claims.TokenID
		}
	}
	s.credentialRefused(ctx, domain.ActionTokenAuthenticate, credential, tokenID, outcome)
}

// tokenReader reads a token: TokenByID (cached) or CurrentTokenByID.
type tokenReader func(ctx context.Context, id string) (*domain.Token, error)

func (s *Service) authenticateBearer(ctx context.Context, check Check, bearer string, aud Audience, read tokenReader) (*domain.Principal, Outcome, error) {
	if check == CheckBearerAPIToken {
		if aud != AnyAudience && aud != ownAudience {
			// A gateway route that names the API it protects takes
			// access tokens minted for that API, not the lasting API
			// token itself.
			return nil, OutcomeInvalid, domain.ErrUnauthenticated
		}
		t, previous, outcome, err := s.readAPIToken(ctx, bearer, read)
		if err != nil {
			return nil, outcome, err
		}
		s.deps.LastUsed.Record(t.ID, s.deps.Clock())
		return s.principal(ctx, t, t.Scopes, t.ExpireTime, previous)
	}
	t, claims, previous, outcome, err := s.readAccessToken(ctx, bearer, read)
	if err != nil {
		return nil, outcome, err
	}
	// An access token minted for one API (RFC 8707) is that API's
	// credential, no other's.
	if aud == ownAudience {
		aud = Audience(s.deps.Minter.Audience())
	}
	if aud != AnyAudience && claims.Audience != string(aud) {
		return nil, OutcomeInvalid, domain.ErrUnauthenticated
	}
	s.deps.LastUsed.Record(t.ID, s.deps.Clock())
	scopes := t.Scopes // an access token minted before the scope claim
	if claims.HasScope {
		scopes = claims.Scopes
	}
	p, outcome, err := s.principal(ctx, t, scopes, claims.Expiry, previous)
	if p != nil {
		p.AccessToken = true
	}
	return p, outcome, err
}

// accessToken checks an access token minted here: it verifies, and the API
// token it was minted from is active and still has the secret it was minted
// from, or had it before a rotation whose grace period is not over
// (previous). The access tokens of a replaced secret are refused as a
// deleted token's are: this service checks; gateways verifying offline
// honour them until their exp.
func (s *Service) accessToken(ctx context.Context, raw string) (t *domain.Token, _ auth.AccessClaims, previous bool, _ Outcome, _ error) {
	return s.readAccessToken(ctx, raw, s.deps.Tokens.TokenByID)
}

// readAccessToken is accessToken reading its API token with read.
func (s *Service) readAccessToken(ctx context.Context, raw string, read tokenReader) (t *domain.Token, _ auth.AccessClaims, previous bool, _ Outcome, _ error) {
	now := s.deps.Clock()
	claims, err := s.deps.Minter.Verify(raw, now)
	if err != nil {
		if strings.Count(raw, ".") != 2 { // not even a compact JWS
			return nil, claims, false, OutcomeMalformed, domain.ErrUnauthenticated
		}
		return nil, claims, false, OutcomeInvalid, domain.ErrUnauthenticated
	}
	if domain.IsFederatedCredentialID(claims.TokenID) {
		// Minted by a federated exchange: in force while its credential is.
		read = s.federatedToken
	}
	if t, err = read(ctx, claims.TokenID); err != nil {
		return nil, claims, false, failed(err, OutcomeRevoked), unauthenticated(err)
	}
	if claims.SecretGeneration > t.SecretGeneration {
		// Minted from a secret newer than the cached token's: another
		// replica rotated it. Ask the database.
		if t, err = s.deps.Tokens.FreshTokenByID(ctx, claims.TokenID); err != nil {
			return nil, claims, false, failed(err, OutcomeRevoked), unauthenticated(err)
		}
	}
	if t.UserID != claims.UserID { // signed by us, so never: but not trusted
		return nil, claims, false, OutcomeInvalid, domain.ErrUnauthenticated
	}
	switch gen := claims.SecretGeneration; {
	case gen == t.SecretGeneration:
	case gen == t.SecretGeneration-1 && t.PreviousSecretHash != nil && now.Before(t.PreviousSecretExpireTime):
		previous = true
	default:
		return nil, claims, false, OutcomeRevoked, domain.ErrUnauthenticated
	}
	if outcome := activeAt(t, now); outcome != OutcomeOK {
		return nil, claims, false, outcome, domain.ErrUnauthenticated
	}
	return t, claims, previous, OutcomeOK, nil
}

// apiToken checks a plaintext API token: well formed with a valid checksum
// (before any database read), known, matching secret, not deleted or expired.
// One read: a token outlives neither its user (deleting a user deletes its
// tokens) nor its expiry. previous says the secret was the one a rotation
// replaced, still within its grace period.
func (s *Service) apiToken(ctx context.Context, plaintext string) (t *domain.Token, previous bool, _ Outcome, _ error) {
	return s.readAPIToken(ctx, plaintext, s.deps.Tokens.TokenByID)
}

// readAPIToken is apiToken reading the token with read.
func (s *Service) readAPIToken(ctx context.Context, plaintext string, read tokenReader) (t *domain.Token, previous bool, _ Outcome, _ error) {
	parsed, ok := auth.ParseAPIToken(plaintext)
	if !ok {
		return nil, false, OutcomeMalformed, domain.ErrUnauthenticated
	}
	t, err := read(ctx, parsed.ID)
	if err != nil {
		return nil, false, failed(err, OutcomeUnknown), unauthenticated(err)
	}
	now := s.deps.Clock()
	current, previous := secretMatches(t, parsed.Secret, now)
	if !current && !previous {
		// The cached token may predate a rotation on another replica:
		// ask the database before refusing.
		if t, err = s.deps.Tokens.FreshTokenByID(ctx, parsed.ID); err != nil {
			return nil, false, failed(err, OutcomeUnknown), unauthenticated(err)
		}
		if current, previous = secretMatches(t, parsed.Secret, now); !current && !previous {
			return nil, false, OutcomeWrongSecret, domain.ErrUnauthenticated
		}
	}
	if outcome := activeAt(t, now); outcome != OutcomeOK {
		return nil, false, outcome, domain.ErrUnauthenticated
	}
	return t, !current, OutcomeOK, nil
}

// secretMatches reports whether secret is t's current one, and whether it is
// its previous one within the grace period a rotation gave it; each compared
// in constant time.
func secretMatches(t *domain.Token, secret string, now time.Time) (current, previous bool) {
	current = auth.SecretMatches(secret, t.SecretHash)
	previous = t.PreviousSecretHash != nil && now.Before(t.PreviousSecretExpireTime) &&
		auth.SecretMatches(secret, t.PreviousSecretHash)
	return current, previous
}

// activeAt says whether t may be used at now, or why not.
func activeAt(t *domain.Token, now time.Time) Outcome {
	switch {
	case t.ActiveAt(now):
		return OutcomeOK
	case t.DeleteTime.IsZero():
		return OutcomeExpired
	default:
		return OutcomeRevoked
	}
}

// failed is the outcome of a failed read: notFound if there is no such
// row, OutcomeError if the read itself failed.
func failed(err error, notFound Outcome) Outcome {
	if domain.KindOf(err) == domain.KindNotFound {
		return notFound
	}
	return OutcomeError
}

// inForce returns the scopes of scopes the server still knows: one the
// operator has taken out of --scopes stops working at once, though the
// tokens that carry it keep it stored.
func (s *Service) inForce(scopes domain.Scopes) domain.Scopes {
	if s.known.Missing(scopes) == "" {
		return scopes // the usual case: no copy
	}
	var out domain.Scopes
	for _, sc := range scopes {
		if s.known.Has(sc) {
			out = append(out, sc)
		}
	}
	return out
}

// principal is the caller behind t, with the credential's scopes and expiry;
// previous: the credential is (or was minted from) a replaced secret.
func (s *Service) principal(ctx context.Context, t *domain.Token, scopes domain.Scopes, expire time.Time, previous bool) (*domain.Principal, Outcome, error) {
	u, err := s.deps.Users.UserByID(ctx, t.UserID)
	if err != nil {
		return nil, failed(err, OutcomeRevoked), unauthenticated(err)
	}
	// A replaced secret keeps its scopes here, so that a write is refused
	// for what it is (domain.ErrReplacedSecret), not for a missing scope.
	generation := t.SecretGeneration
	if previous {
		generation--
	}
	return &domain.Principal{User: u, TokenID: t.ID, TokenGeneration: generation, Scopes: s.inForce(scopes), TokenExpireTime: t.ExpireTime, ExpireTime: expire,
		PreviousSecret: previous}, OutcomeOK, nil
}

// granted is what a credential may do of scopes, as an exchange mints it
// and introspection and Envoy's Check tell a gateway: those in force, and
// of a replaced secret's (and its access tokens') none of the service's
// WriteScopes, which the service refuses it, so that no gateway or verifier
// grants them either.
func (s *Service) granted(scopes domain.Scopes, previous bool) domain.Scopes {
	if scopes = s.inForce(scopes); previous {
		return withoutWriteScopes(scopes)
	}
	return scopes
}

// unauthenticated turns a not-found into the one unauthenticated answer and
// lets other failures (the database is down) through as they are.
func unauthenticated(err error) error {
	if domain.KindOf(err) == domain.KindNotFound {
		return domain.ErrUnauthenticated
	}
	return err
}
