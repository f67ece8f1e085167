package verifier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Claims are what an accepted access token says (RFC 9068 §2.2).
type Claims struct {
	Subject   string   // sub: the user the token acts for
	ClientID  string   // client_id: the API token it was minted from
	Issuer    string   // iss
	Audience  []string // aud
	ID        string   // jti
	Expiry    time.Time
	IssuedAt  time.Time
	NotBefore time.Time // zero if the token has no nbf
	// Scopes are the token's scope claim (RFC 9068 §2.2.3, RFC 8693 §4.2:
	// space-separated), in its order; none if it has no scope.
	Scopes []string
	// Raw holds every claim as decoded JSON, for claims not named above.
	Raw map[string]any
}

// accessTokenClaims is the token's payload as go-jose decodes it.
type accessTokenClaims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

// Verify checks an access token and returns its claims. Every error wraps
// ErrInvalidToken; the detail is for logs, not for the token's bearer.
//
// A token signed with a key the Verifier does not know makes it fetch the
// keys again, at most once per Config.MinRefreshInterval, with ctx's values
// but not its deadline (other requests may be waiting for the same fetch):
// Verify returns when ctx ends, and the fetch goes on.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	// RFC 9068 §4 and RFC 8725 §3.1: the algorithm is fixed in advance.
	// Parsing refuses any other alg, so "none", and HS256 keyed with the
	// public key, never reach a key.
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: %d signatures", ErrInvalidToken, len(tok.Headers))
	}
	h := tok.Headers[0]
	// RFC 9068 §4 (and RFC 8725 §3.11): explicit typing, so an ID token or
	// any other JWT signed with the same key is not taken for an access token.
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isAccessTokenType(typ) {
		return nil, fmt.Errorf("%w: typ %q is not at+jwt", ErrInvalidToken, clip(typ))
	}
	// RFC 7515 §4.1.4: the kid picks the key; this issuer always sets one.
	if h.KeyID == "" {
		return nil, fmt.Errorf("%w: no kid", ErrInvalidToken)
	}
	key, err := v.keys.key(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	var c accessTokenClaims
	var raw map[string]any
	if err := tok.Claims(key, &c, &raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if err := v.checkClaims(&c, time.Now()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	claims := &Claims{
		Subject:   c.Subject,
		ClientID:  c.ClientID,
		Issuer:    c.Issuer,
		Audience:  c.Audience,
		ID:        c.ID,
		Expiry:    c.Expiry.Time(),
		IssuedAt:  c.IssuedAt.Time(),
		NotBefore: c.NotBefore.Time(),
		Scopes:    strings.Fields(c.Scope),
		Raw:       raw,
	}
	return claims, nil
}

// checkClaims applies RFC 9068 §4's checks of iss, aud and the times, and
// requires the claims RFC 9068 §2.2 makes mandatory. go-jose's
// Claims.Validate is not used: it skips an empty expectation and accepts a
// token with no exp.
func (v *Verifier) checkClaims(c *accessTokenClaims, now time.Time) error {
	switch {
	// RFC 9068 §4: iss must match exactly (RFC 7519 §4.1.1: case-sensitive).
	case c.Issuer != v.cfg.Issuer:
		return fmt.Errorf("iss %q is not %q", c.Issuer, v.cfg.Issuer)
	// RFC 9068 §4 and RFC 7519 §4.1.3: aud must name this service.
	case !c.Audience.Contains(v.cfg.Audience):
		return fmt.Errorf("aud %q does not contain %q", c.Audience, v.cfg.Audience)
	// RFC 9068 §2.2: sub, client_id, exp, iat and jti are required.
	case c.Subject == "":
		return errors.New("no sub")
	case c.ClientID == "":
		return errors.New("no client_id")
	case c.ID == "":
		return errors.New("no jti")
	case c.Expiry == nil:
		return errors.New("no exp")
	case c.IssuedAt == nil:
		return errors.New("no iat")
	}
	leeway := v.cfg.Leeway
	// RFC 7519 §4.1.4: not accepted on or after exp (give or take the leeway).
	if exp := c.Expiry.Time(); !now.Before(exp.Add(leeway)) {
		return fmt.Errorf("expired at %s", exp.UTC().Format(time.RFC3339))
	}
	// RFC 7519 §4.1.5: not accepted before nbf.
	if nbf := c.NotBefore; nbf != nil && now.Add(leeway).Before(nbf.Time()) {
		return fmt.Errorf("not valid before %s", nbf.Time().UTC().Format(time.RFC3339))
	}
	// RFC 7519 §4.1.6 leaves a future iat to the verifier: the issuer never
	// mints one, so it is a forgery or a clock far off.
	if iat := c.IssuedAt.Time(); now.Add(leeway).Before(iat) {
		return fmt.Errorf("issued in the future, at %s", iat.UTC().Format(time.RFC3339))
	}
	return nil
}

// isAccessTokenType accepts "at+jwt" and its full media type,
// case-insensitively, as RFC 9068 §4 asks (media types are case-insensitive).
func isAccessTokenType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == "at+jwt" || typ == "application/at+jwt"
}

// HasScope says whether the token was granted scope.
func (c *Claims) HasScope(scope string) bool {
	return slices.Contains(c.Scopes, scope)
}

// claimsKey is the context key of the Claims the Middleware and the
// interceptors accepted.
type claimsKey struct{}

// ContextWithClaims returns ctx carrying c, as the Middleware and the
// interceptors pass it on; tests of handlers use it to fake an accepted token.
func ContextWithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFromContext returns the claims of the access token the Middleware or
// an interceptor accepted for this request.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}
