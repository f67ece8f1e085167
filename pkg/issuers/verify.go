package issuers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Token is what a verified token says.
type Token struct {
	Issuer   string   // iss: one of the trusted issuers
	Subject  string   // sub
	ID       string   // jti; empty if the token has none
	Audience []string // aud, as a list even when the token has one string
	IssuedAt time.Time
	Expiry   time.Time
	// Claims is the whole payload as encoding/json decodes it into an
	// `any` (numbers are float64), for claim conditions.
	Claims map[string]any
}

// algorithms are the signature algorithms Verify accepts: those GitHub
// Actions, GitLab, Kubernetes and the clouds sign with. Never "none" or
// HMAC (RFC 8725 §3.1): a public key used as an HMAC secret is the classic
// forgery.
var algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// maxTokenBytes bounds a token before it is decoded: platform tokens are a
// few kilobytes.
const maxTokenBytes = 64 << 10

// Verify verifies raw, a compact JWS JWT, and returns its claims. In order:
// its form and header alg (RS256, ES256 or EdDSA); iss, read from the
// unverified payload, must be trusted, else it is refused without any
// fetch; the issuer's key for the header's kid (a token without kid may use
// the JWKS's only key), fetched if needed; the signature; exp required and
// not past, nbf not in the future, iat required and neither in the future
// nor older than Config.MaxAge (each with Config.Leeway); sub required.
// Header parameters naming keys or their location (jku, x5u, jwk, x5c) are
// ignored: only the trusted issuer's JWKS is used. The audience is not
// checked: that is the caller's.
//
// A fetch Verify causes outlives ctx (other callers may be waiting for it)
// but Verify returns when ctx ends. Every error is an *Error.
func (s *Set) Verify(ctx context.Context, raw string) (*Token, error) {
	if len(raw) > maxTokenBytes {
		return nil, refuse(ReasonMalformed, fmt.Sprintf("the token is longer than %d bytes", maxTokenBytes), nil)
	}
	if err := checkAlg(raw); err != nil {
		return nil, err
	}
	tok, perr := jwt.ParseSigned(raw, algorithms)
	if perr != nil {
		return nil, refuse(ReasonMalformed, "the token is not a signed JWT in compact form", perr)
	}
	if len(tok.Headers) != 1 {
		return nil, refuse(ReasonMalformed, "the token does not have exactly one signature", nil)
	}
	// Decoded before any key is looked for, so a token whose claims are
	// not of their types is malformed (not a signature failure) and costs
	// no fetch.
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified, new(map[string]any)); err != nil {
		return nil, refuse(ReasonMalformed, "the token's payload is not a JSON object of valid claims", err)
	}
	ik, ok := s.issuers[unverified.Issuer]
	if !ok {
		if unverified.Issuer == "" {
			return nil, refuse(ReasonMissingClaim, "the token has no iss", nil)
		}
		return nil, refuse(ReasonUntrustedIssuer, fmt.Sprintf("the token's issuer %q is not trusted here", clip(unverified.Issuer)), nil)
	}
	// The key is chosen by the header as go-jose read it, the reading its
	// signature check uses.
	h := tok.Headers[0]
	key, kerr := ik.key(ctx, h.KeyID, h.Algorithm)
	if kerr != nil {
		return nil, kerr
	}
	var c jwt.Claims
	var all map[string]any
	if err := tok.Claims(key.Key, &c, &all); err != nil {
		// The payload decoded above, so only the signature can fail here.
		return nil, refuse(ReasonSignature, fmt.Sprintf("the token's signature does not verify with the key of issuer %s", ik.issuer.URL), err)
	}
	if cerr := s.checkClaims(&c); cerr != nil {
		return nil, cerr
	}
	return &Token{
		Issuer:   c.Issuer,
		Subject:  c.Subject,
		ID:       c.ID,
		Audience: []string(c.Audience),
		IssuedAt: c.IssuedAt.Time(),
		Expiry:   c.Expiry.Time(),
		Claims:   all,
	}, nil
}

// checkAlg refuses a token that is not three base64url parts with a JSON
// header, or whose alg is not one of algorithms. go-jose refuses those too;
// reading the alg first tells unsupported_alg from malformed.
func checkAlg(raw string) *Error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return refuse(ReasonMalformed, "the token is not a JWT in compact form (three parts separated by dots)", nil)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return refuse(ReasonMalformed, "the token's header is not base64url", err)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return refuse(ReasonMalformed, "the token's header is not a JSON object", err)
	}
	if !slices.Contains(algorithms, jose.SignatureAlgorithm(h.Alg)) {
		return refuse(ReasonUnsupportedAlg, fmt.Sprintf("the token's alg %q is not accepted (RS256, ES256 or EdDSA)", clip(h.Alg)), nil)
	}
	return nil
}

// checkClaims applies the time rules and requires exp, iat and sub.
// go-jose's Claims.Validate is not used: it accepts a token with no exp.
func (s *Set) checkClaims(c *jwt.Claims) *Error {
	now, leeway := s.cfg.Clock(), s.cfg.Leeway
	switch {
	case c.Expiry == nil:
		return refuse(ReasonMissingClaim, "the token has no exp", nil)
	case c.IssuedAt == nil:
		return refuse(ReasonMissingClaim, "the token has no iat", nil)
	case c.Subject == "":
		return refuse(ReasonMissingClaim, "the token has no sub", nil)
	}
	// RFC 7519 §4.1.4: not accepted on or after exp.
	if exp := c.Expiry.Time(); !now.Before(exp.Add(leeway)) {
		return refuse(ReasonExpired, fmt.Sprintf("the token expired at %s", exp.UTC().Format(time.RFC3339)), nil)
	}
	// RFC 7519 §4.1.5: not accepted before nbf.
	if c.NotBefore != nil && now.Add(leeway).Before(c.NotBefore.Time()) {
		return refuse(ReasonNotYetValid, fmt.Sprintf("the token is not valid before %s", c.NotBefore.Time().UTC().Format(time.RFC3339)), nil)
	}
	// RFC 7519 §4.1.6 leaves iat's use to the verifier: a token from the
	// future is a forgery or a clock far off, and one older than MaxAge a
	// replay of a token its platform gave out long ago (exp alone allows
	// hours for some).
	iat := c.IssuedAt.Time()
	if now.Add(leeway).Before(iat) {
		return refuse(ReasonTooOld, fmt.Sprintf("the token was issued in the future, at %s", iat.UTC().Format(time.RFC3339)), nil)
	}
	if now.Sub(iat) > s.cfg.MaxAge+leeway {
		return refuse(ReasonTooOld, fmt.Sprintf("the token was issued at %s, more than %s ago", iat.UTC().Format(time.RFC3339), s.cfg.MaxAge), nil)
	}
	return nil
}

// maxQuotedBytes bounds what of a value the token's bearer chose (its iss,
// kid, alg) goes into a message.
const maxQuotedBytes = 64

// clip returns s cut to its first maxQuotedBytes bytes (at a character
// boundary), saying how long it was. Messages quote it with %q, so control
// characters cannot forge a log line.
func clip(s string) string {
	if len(s) <= maxQuotedBytes {
		return s
	}
	n := maxQuotedBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:n], len(s))
}
