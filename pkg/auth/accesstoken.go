package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// accessTokenType is the JWT typ of RFC 9068 access tokens.
const accessTokenType = "at+jwt"

// AccessToken is a minted access token.
type AccessToken struct {
	JWT        string
	ExpireTime time.Time
	JTI        string // its jti: what a downstream API logs of it, never the token
	// Reused says Mint handed out one it had minted before (MinterConfig.Reuse).
	Reused bool
}

// AccessClaims are what a verified access token says.
type AccessClaims struct {
	UserID  string // sub
	TokenID string // client_id: the API token it was minted from
	KeyID   string // kid: the key that signed it
	Expiry  time.Time
	Issued  time.Time
	JTI     string
	// Scopes are the scope claim's; HasScope is false for a token minted
	// before access tokens carried one.
	Scopes   domain.Scopes
	HasScope bool
	// Audience is its aud: the minter's default audience or one of its
	// resources.
	Audience string
	// SecretGeneration is the generation of the API token's secret it was
	// minted from (0 for a token minted before access tokens carried one).
	SecretGeneration int
}

type claims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	// Scope is RFC 9068 §2.2.3's: space-delimited, as RFC 8693 §4.2 has it.
	Scope *string `json:"scope,omitempty"`
	// SecretGeneration is a private claim (RFC 7519 §4.3): which of its API
	// token's secrets it was minted from; absent for the first.
	SecretGeneration int `json:"secret_gen,omitempty"`
	// Act is RFC 8693 §4.1's actor claim: the workload of another issuer
	// that a federated exchange minted the token for.
	Act *Actor `json:"act,omitempty"`
}

// Actor is the act claim (RFC 8693 §4.1): who acts as the token's sub,
// named by its own issuer's iss and sub.
type Actor struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
}

// Grant is what an access token is minted with, beside its API token.
type Grant struct {
	Scopes domain.Scopes // which the caller has checked the API token holds
	// SecretGeneration is the generation of the API token's secret the
	// caller presented (its current one, or the one before it within a
	// rotation's grace period).
	SecretGeneration int
	// Audience is the aud: "" for the minter's default, else one of its
	// Resources (which the caller has checked).
	Audience string
	// NotAfter, if set, is the latest exp: the end of the grace period of
	// the replaced secret the caller presented, so that no access token
	// of it outlives its grace at the gateways that verify offline; or a
	// federated credential's shorter lifetime.
	NotAfter time.Time
	// Actor, if set, is the act claim: the external workload a federated
	// credential let in.
	Actor *Actor
}

// Minter mints and verifies RFC 9068 JWT access tokens signed ES256.
type Minter struct {
	keys *KeyRing
	cfg  MinterConfig
	// verified remembers access tokens that passed Verify, so a client
	// reusing one costs no signature check until it expires. Keyed by the
	// whole token: a map lookup, where hashing it costs more than the rest.
	verified *lru.Cache[[sha256.Size]byte, verifiedToken]
	// minted remembers the last access token minted for each API token
	// and grant, for cfg.Reuse.
	minted *lru.Cache[mintKey, minted]
	// audiences are the aud values Verify accepts: the default and the
	// resources.
	audiences jwt.Audience
}

type mintKey struct {
	tokenID, scope, audience string
	generation               int
}

// MinterConfig says what the access tokens carry and how long they live.
type MinterConfig struct {
	Issuer   string // iss
	Audience string // aud, unless the exchange names a resource
	// Resources are the other audiences an access token may be minted for
	// (RFC 8707 resource indicators, the identifiers of the APIs behind
	// the gateways), each its only aud.
	Resources []string
	Lifetime  time.Duration // exp - iat, never past the API token's expiry
	// Reuse: an API token exchanged again within this time of its last mint
	// gets the same access token (with the exp it already has) instead of a
	// new signature. 0: mint every time.
	Reuse time.Duration
	// CacheSize bounds the access tokens remembered for reuse, and those
	// remembered as verified (0: DefaultCacheSize): the service sizes them
	// as its token cache (--cache-size), so that a fleet whose tokens the
	// cache holds is neither signed nor verified anew at each use.
	CacheSize int
}

// minted is an access token kept for reuse: times in Unix nanoseconds and
// the key ID shared, as a fleet's memory is per token (issue 22).
type minted struct {
	at, expiry int64
	jwt, jti   string
	kid        string
}

// verifiedToken is what the verified cache keeps of an access token's
// claims: what many tokens share (sub, kid, aud, the scope set) interned,
// times in Unix nanoseconds.
type verifiedToken struct {
	userID, tokenID, keyID, jti, audience string
	expiry, issued                        int64
	scopes                                domain.Scopes
	generation                            int
	hasScope                              bool
}

func newVerifiedToken(c AccessClaims) verifiedToken {
	v := verifiedToken{userID: domain.Intern(c.UserID), tokenID: c.TokenID, keyID: domain.Intern(c.KeyID),
		jti: c.JTI, audience: domain.Intern(c.Audience), expiry: c.Expiry.UnixNano(),
		scopes: c.Scopes.Interned(), generation: c.SecretGeneration, hasScope: c.HasScope}
	if !c.Issued.IsZero() {
		v.issued = c.Issued.UnixNano()
	}
	return v
}

func (v *verifiedToken) claims() AccessClaims {
	c := AccessClaims{UserID: v.userID, TokenID: v.tokenID, KeyID: v.keyID, Expiry: time.Unix(0, v.expiry),
		JTI: v.jti, Scopes: v.scopes, HasScope: v.hasScope, Audience: v.audience, SecretGeneration: v.generation}
	if v.issued != 0 {
		c.Issued = time.Unix(0, v.issued)
	}
	return c
}

var errNoKeys = errors.New("signing keys not loaded")

// DefaultCacheSize is MinterConfig.CacheSize's default.
const DefaultCacheSize = 10000

// NewMinter returns a Minter signing with the keys in use in keys.
func NewMinter(keys *KeyRing, cfg MinterConfig) *Minter {
	size := cfg.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	verified, _ := lru.New[[sha256.Size]byte, verifiedToken](size) // size > 0: cannot fail
	mintedTokens, _ := lru.New[mintKey, minted](size)
	audiences := append(jwt.Audience{cfg.Audience}, cfg.Resources...)
	return &Minter{keys: keys, cfg: cfg, verified: verified, minted: mintedTokens, audiences: audiences}
}

// IsResource reports whether aud is one of the resources tokens may be
// minted for.
func (m *Minter) IsResource(aud string) bool { return slices.Contains(m.cfg.Resources, aud) }

// Resources returns the resources tokens may be minted for.
func (m *Minter) Resources() []string { return m.cfg.Resources }

// Lifetime returns the access tokens' lifetime.
func (m *Minter) Lifetime() time.Duration { return m.cfg.Lifetime }

// Audience returns the default audience: this service's own.
func (m *Minter) Audience() string { return m.cfg.Audience }

// Mint returns an access token for the API token t with grant g, valid from
// now for the configured lifetime but never past t's own expiry: the one
// minted for t and this grant less than Reuse ago by the key that signs now,
// if any, else a new one.
func (m *Minter) Mint(t *domain.Token, g Grant, now time.Time) (AccessToken, error) {
	ks := m.keys.Current()
	if ks == nil {
		return AccessToken{}, errNoKeys
	}
	scope := g.Scopes.String()
	aud := g.Audience
	if aud == "" {
		aud = m.cfg.Audience
	}
	key := mintKey{tokenID: t.ID, scope: scope, audience: aud, generation: g.SecretGeneration}
	if m.cfg.Reuse > 0 {
		if prev, ok := m.minted.Get(key); ok && prev.kid == ks.SigningKeyID() {
			at, expiry := time.Unix(0, prev.at), time.Unix(0, prev.expiry)
			if !now.Before(at) && now.Sub(at) < m.cfg.Reuse && now.Before(expiry) {
				return AccessToken{JWT: prev.jwt, ExpireTime: expiry, JTI: prev.jti, Reused: true}, nil
			}
		}
	}
	at, err := m.mint(ks, t, scope, aud, g, now)
	if err == nil && m.cfg.Reuse > 0 {
		// The key's strings shared: t.ID is the cache's, the scope set's
		// and the audience's are interned.
		key.scope, key.audience = domain.Intern(scope), domain.Intern(aud)
		m.minted.Add(key, minted{at: now.UnixNano(), expiry: at.ExpireTime.UnixNano(), jwt: at.JWT, jti: at.JTI,
			kid: ks.SigningKeyID()})
	}
	return at, err
}

// Forget drops the access tokens remembered for reuse for the API token id,
// so the next exchange mints anew (after a secret rotation, say).
func (m *Minter) Forget(id string) {
	for _, key := range m.minted.Keys() {
		if key.tokenID == id {
			m.minted.Remove(key)
		}
	}
}

func (m *Minter) mint(ks *KeySet, t *domain.Token, scope, aud string, g Grant, now time.Time) (AccessToken, error) {
	exp := now.Add(m.cfg.Lifetime)
	if !t.ExpireTime.IsZero() && t.ExpireTime.Before(exp) {
		exp = t.ExpireTime
	}
	if !g.NotAfter.IsZero() && g.NotAfter.Before(exp) {
		exp = g.NotAfter
	}
	c := claims{
		Claims: jwt.Claims{
			Issuer:   m.cfg.Issuer,
			Subject:  t.UserID,
			Audience: jwt.Audience{aud},
			Expiry:   jwt.NewNumericDate(exp),
			IssuedAt: jwt.NewNumericDate(now),
			ID:       rand.Text(),
		},
		ClientID:         t.ID,
		Scope:            &scope,
		SecretGeneration: g.SecretGeneration,
		Act:              g.Actor,
	}
	// Sign the JSON directly: jwt.Signed(...).Claims(c) would marshal, parse
	// and marshal the claims again (a fifth of Mint's time).
	payload, err := json.Marshal(c)
	if err != nil {
		return AccessToken{}, fmt.Errorf("encoding access token claims: %w", err)
	}
	obj, err := ks.signer.Sign(payload)
	if err != nil {
		return AccessToken{}, fmt.Errorf("signing access token: %w", err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		return AccessToken{}, fmt.Errorf("signing access token: %w", err)
	}
	// NumericDate has whole seconds: report the expiry the token carries.
	return AccessToken{JWT: raw, ExpireTime: c.Expiry.Time(), JTI: c.ID}, nil
}

// Verify checks an access token's signature (ES256 only, by a known kid), its
// typ, issuer, audience and times. Any failure is domain.ErrUnauthenticated.
//
// A token that passed is remembered until its exp: the same string verifies
// again without a signature check (its exp is still checked against now,
// and its key against the keys published now: a key rotated out takes its
// tokens with it).
func (m *Minter) Verify(raw string, now time.Time) (AccessClaims, error) {
	// Keyed by the token's SHA-256: the token itself, read from a
	// request, would keep its ~700 bytes alive in the cache.
	key := sha256.Sum256([]byte(raw))
	if v, ok := m.verified.Get(key); ok {
		if ks := m.keys.Current(); now.UnixNano() < v.expiry && ks != nil && ks.public[v.keyID] != nil {
			return v.claims(), nil
		}
		m.verified.Remove(key)
		return AccessClaims{}, domain.ErrUnauthenticated
	}
	c, err := m.verify(raw, now)
	if err == nil {
		m.verified.Add(key, newVerifiedToken(c))
	}
	return c, err
}

func (m *Minter) verify(raw string, now time.Time) (AccessClaims, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(tok.Headers) != 1 {
		return AccessClaims{}, domain.ErrUnauthenticated
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isAccessTokenType(typ) {
		return AccessClaims{}, domain.ErrUnauthenticated
	}
	ks := m.keys.Current()
	if ks == nil {
		return AccessClaims{}, domain.ErrUnauthenticated
	}
	key, ok := ks.public[h.KeyID]
	if !ok {
		return AccessClaims{}, domain.ErrUnauthenticated
	}
	var c claims
	if err := tok.Claims(key, &c); err != nil {
		return AccessClaims{}, domain.ErrUnauthenticated
	}
	// RFC 7519 §4.1.4: valid only before exp (go-jose also accepts exp itself).
	if c.Expiry == nil || !now.Before(c.Expiry.Time()) || c.Subject == "" || c.ClientID == "" {
		return AccessClaims{}, domain.ErrUnauthenticated
	}
	if err := c.ValidateWithLeeway(jwt.Expected{
		Issuer:      m.cfg.Issuer,
		AnyAudience: m.audiences,
		Time:        now,
	}, 0); err != nil {
		return AccessClaims{}, domain.ErrUnauthenticated
	}
	// One aud, as this service mints them: a token naming several is
	// not one of ours.
	if len(c.Audience) != 1 || c.SecretGeneration < 0 {
		return AccessClaims{}, domain.ErrUnauthenticated
	}
	ac := AccessClaims{UserID: c.Subject, TokenID: c.ClientID, KeyID: h.KeyID, Expiry: c.Expiry.Time(), JTI: c.ID,
		Audience: c.Audience[0], SecretGeneration: c.SecretGeneration}
	if c.IssuedAt != nil {
		ac.Issued = c.IssuedAt.Time()
	}
	if c.Scope != nil {
		ac.Scopes, ac.HasScope = domain.ParseScopes(*c.Scope), true
	}
	return ac, nil
}

// isAccessTokenType accepts "at+jwt" and its full media type, case-insensitively (RFC 9068 §4).
func isAccessTokenType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == accessTokenType || typ == "application/"+accessTokenType
}
