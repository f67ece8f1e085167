package issuers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
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
	obj, perr := jose.ParseSignedCompact(raw, algorithms)
	if perr != nil {
		// Read again only now, to say why: an alg refused, or no JWT.
		if err := checkAlg(raw); err != nil {
			return nil, err
		}
		return nil, refuse(ReasonMalformed, "the token is not a signed JWT in compact form", perr)
	}
	if len(obj.Signatures) != 1 {
		return nil, refuse(ReasonMalformed, "the token does not have exactly one signature", nil)
	}
	// Decoded once, before any key is looked for: a token whose claims are
	// not of their types is malformed (not a signature failure) and costs
	// no fetch; and what the claim conditions read is what was checked
	// (a payload repeating a member means, for both, its last value).
	var all map[string]any
	if err := json.Unmarshal(obj.UnsafePayloadWithoutVerification(), &all); err != nil || all == nil {
		return nil, refuse(ReasonMalformed, "the token's payload is not a JSON object", err)
	}
	c, cerr := claimsOf(all)
	if cerr != nil {
		return nil, cerr
	}
	ik, ok := s.issuers[c.issuer]
	if !ok {
		if c.issuer == "" {
			return nil, refuse(ReasonMissingClaim, "the token has no iss", nil)
		}
		return nil, refuse(ReasonUntrustedIssuer, fmt.Sprintf("the token's issuer %q is not trusted here", clip(c.issuer)), nil)
	}
	// The key is chosen by the header as go-jose read it, the reading its
	// signature check uses.
	h := obj.Signatures[0].Header
	key, kerr := ik.key(ctx, h.KeyID, h.Algorithm)
	if kerr != nil {
		return nil, kerr
	}
	if _, err := obj.Verify(key.Key); err != nil {
		return nil, refuse(ReasonSignature, fmt.Sprintf("the token's signature does not verify with the key of issuer %s", ik.issuer.URL), err)
	}
	if cerr := s.checkClaims(&c); cerr != nil {
		return nil, cerr
	}
	return &Token{
		Issuer:   c.issuer,
		Subject:  c.subject,
		ID:       c.id,
		Audience: c.audience,
		IssuedAt: *c.issuedAt,
		Expiry:   *c.expiry,
		Claims:   all,
	}, nil
}

// claims are the registered claims (RFC 7519 §4.1) Verify checks.
type claims struct {
	issuer, subject, id         string
	audience                    []string
	expiry, notBefore, issuedAt *time.Time
}

// claimsOf reads the registered claims from a decoded payload: strings,
// aud a string or a list of them, times NumericDates (RFC 7519 §2).
// Anything else is malformed.
func claimsOf(all map[string]any) (claims, *Error) {
	var c claims
	for name, dst := range map[string]*string{"iss": &c.issuer, "sub": &c.subject, "jti": &c.id} {
		v, ok := all[name]
		if !ok {
			continue
		}
		if *dst, ok = v.(string); !ok {
			return c, refuse(ReasonMalformed, fmt.Sprintf("the token's %s is not a string", name), nil)
		}
	}
	switch aud := all["aud"].(type) {
	case nil:
	case string:
		c.audience = []string{aud}
	case []any:
		c.audience = make([]string, len(aud))
		for i, a := range aud {
			s, ok := a.(string)
			if !ok {
				return c, refuse(ReasonMalformed, "the token's aud is not a string or a list of strings", nil)
			}
			c.audience[i] = s
		}
	default:
		return c, refuse(ReasonMalformed, "the token's aud is not a string or a list of strings", nil)
	}
	for name, dst := range map[string]**time.Time{"exp": &c.expiry, "nbf": &c.notBefore, "iat": &c.issuedAt} {
		v, ok := all[name]
		if !ok || v == nil {
			continue
		}
		n, ok := v.(float64)
		// A NumericDate is seconds since the epoch; one outside years 1
		// to 9999 is no date (and would overflow time.Duration's sums).
		if !ok || math.IsNaN(n) || n < -62135596800 || n > 253402300799 {
			return c, refuse(ReasonMalformed, fmt.Sprintf("the token's %s is not a date (seconds since 1970)", name), nil)
		}
		sec, frac := math.Modf(n)
		t := time.Unix(int64(sec), int64(frac*1e9)).UTC()
		*dst = &t
	}
	return c, nil
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
func (s *Set) checkClaims(c *claims) *Error {
	now, leeway := s.cfg.Clock(), s.cfg.Leeway
	switch {
	case c.expiry == nil:
		return refuse(ReasonMissingClaim, "the token has no exp", nil)
	case c.issuedAt == nil:
		return refuse(ReasonMissingClaim, "the token has no iat", nil)
	case c.subject == "":
		return refuse(ReasonMissingClaim, "the token has no sub", nil)
	}
	// RFC 7519 §4.1.4: not accepted on or after exp.
	if exp := *c.expiry; !now.Before(exp.Add(leeway)) {
		return refuse(ReasonExpired, fmt.Sprintf("the token expired at %s", exp.Format(time.RFC3339)), nil)
	}
	// RFC 7519 §4.1.5: not accepted before nbf.
	if c.notBefore != nil && now.Add(leeway).Before(*c.notBefore) {
		return refuse(ReasonNotYetValid, fmt.Sprintf("the token is not valid before %s", c.notBefore.Format(time.RFC3339)), nil)
	}
	// RFC 7519 §4.1.6 leaves iat's use to the verifier: a token from the
	// future is a forgery or a clock far off, and one older than MaxAge a
	// replay of a token its platform gave out long ago (exp alone allows
	// hours for some).
	iat := *c.issuedAt
	if now.Add(leeway).Before(iat) {
		return refuse(ReasonTooOld, fmt.Sprintf("the token was issued in the future, at %s", iat.Format(time.RFC3339)), nil)
	}
	if now.Sub(iat) > s.cfg.MaxAge+leeway {
		return refuse(ReasonTooOld, fmt.Sprintf("the token was issued at %s, more than %s ago", iat.Format(time.RFC3339), s.cfg.MaxAge), nil)
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
