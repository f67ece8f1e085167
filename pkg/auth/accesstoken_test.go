package auth

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func mustMinter(t testing.TB) *Minter {
	t.Helper()
	return NewMinter(KeyRingOf(mustKeySet(t)), MinterConfig{Issuer: "https://issuer", Audience: "https://aud", Lifetime: 15 * time.Minute})
}

func mustKeySet(t testing.TB) *KeySet {
	t.Helper()
	k, err := NewSigningKey(rand.Reader, now)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := NewKeySet([]*domain.SigningKey{k}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestMintFollowsRFC9068(t *testing.T) {
	m := mustMinter(t)
	api := &domain.Token{ID: "tokTTTTTTTTTTTTT", UserID: "userUUUUUUUUUUUU"}
	at, err := m.Mint(api, Grant{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !at.ExpireTime.Equal(now.Add(15 * time.Minute)) {
		t.Errorf("expire time %v, want now+15m", at.ExpireTime)
	}
	parts := strings.Split(at.JWT, ".")
	var header, claims map[string]any
	mustDecode(t, parts[0], &header)
	mustDecode(t, parts[1], &claims)
	if header["typ"] != "at+jwt" || header["alg"] != "ES256" || header["kid"] != m.keys.Current().signing.KeyID {
		t.Errorf("header %v", header)
	}
	for k, want := range map[string]any{"iss": "https://issuer", "sub": api.UserID, "aud": "https://aud", "client_id": api.ID,
		"iat": float64(now.Unix()), "exp": float64(now.Add(15 * time.Minute).Unix())} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	if jti, _ := claims["jti"].(string); len(jti) < 16 {
		t.Errorf("jti %q", jti)
	}
	got, err := m.Verify(at.JWT, now.Add(time.Minute))
	if err != nil || got.UserID != api.UserID || got.TokenID != api.ID {
		t.Errorf("Verify = %+v, %v", got, err)
	}
}

func TestMintNeverOutlivesTheAPIToken(t *testing.T) {
	m := mustMinter(t)
	api := &domain.Token{ID: "tokTTTTTTTTTTTTT", UserID: "u", ExpireTime: now.Add(5 * time.Minute)}
	at, err := m.Mint(api, Grant{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !at.ExpireTime.Equal(api.ExpireTime) {
		t.Errorf("access token expires %v, after its API token's %v", at.ExpireTime, api.ExpireTime)
	}
}

func TestVerifyRefuses(t *testing.T) {
	m := mustMinter(t)
	other := mustMinter(t)
	api := &domain.Token{ID: "tokTTTTTTTTTTTTT", UserID: "u"}
	good, _ := m.Mint(api, Grant{}, now)
	foreign, _ := other.Mint(api, Grant{}, now)
	signWith := func(key jose.SigningKey, c any, typ string) string {
		s, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jwt.Signed(s).Claims(c).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	sign := func(c any, typ string) string {
		return signWith(jose.SigningKey{Algorithm: jose.ES256, Key: m.keys.Current().signing}, c, typ)
	}
	valid := claims{Claims: jwt.Claims{Issuer: "https://issuer", Subject: "u", Audience: jwt.Audience{"https://aud"},
		Expiry: jwt.NewNumericDate(now.Add(time.Minute)), IssuedAt: jwt.NewNumericDate(now)}, ClientID: "tokTTTTTTTTTTTTT"}
	with := func(f func(*claims)) claims { c := valid; f(&c); return c }
	// The key-confusion attack: HS256 with the public key, as a verifier that
	// trusts the header's alg would check it, in each form the key is published.
	kid := m.keys.Current().signing.KeyID
	pub := m.keys.Current().public[kid]
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	hs256 := func(secret []byte) string {
		return signWith(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: secret, KeyID: kid}}, valid, "at+jwt")
	}
	header := `{"alg":"none","typ":"at+jwt"}`
	body := strings.Split(good.JWT, ".")[1]
	cases := map[string]string{
		"alg none":         base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + body + ".",
		"another key":      foreign.JWT,
		"HS256, PEM key":   hs256(pemKey),
		"HS256, DER key":   hs256(der),
		"HS256, JWK key":   hs256(jwkJSON),
		"unknown kid":      signWith(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: m.keys.Current().signing.Key, KeyID: "no-such-kid"}}, valid, "at+jwt"),
		"expired":          sign(with(func(c *claims) { c.Expiry = jwt.NewNumericDate(now) }), "at+jwt"),
		"issued in future": sign(with(func(c *claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) }), "at+jwt"),
		"not yet valid":    sign(with(func(c *claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }), "at+jwt"),
		"wrong iss":        sign(with(func(c *claims) { c.Issuer = "https://evil" }), "at+jwt"),
		"wrong aud":        sign(with(func(c *claims) { c.Audience = jwt.Audience{"https://other"} }), "at+jwt"),
		"typ JWT":          sign(valid, "JWT"),
		"no client_id":     sign(with(func(c *claims) { c.ClientID = "" }), "at+jwt"),
		"truncated":        good.JWT[:len(good.JWT)-2],
		"padded":           good.JWT + "==",
		"garbage":          "not.a.jwt",
		"empty":            "",
	}
	if _, err := m.Verify(sign(valid, "at+jwt"), now); err != nil {
		t.Fatalf("the valid control case fails: %v", err)
	}
	// Control: the forged token does verify for anyone who lets the header pick HS256.
	if forged, err := jwt.ParseSigned(cases["HS256, PEM key"], []jose.SignatureAlgorithm{jose.HS256}); err != nil {
		t.Fatal(err)
	} else if err := forged.Claims(pemKey, &claims{}); err != nil {
		t.Fatalf("the HS256 forgery is not well made: %v", err)
	}
	for name, raw := range cases {
		if _, err := m.Verify(raw, now); err != domain.ErrUnauthenticated {
			t.Errorf("%s: Verify = %v, want ErrUnauthenticated", name, err)
		}
	}
}

func TestLoadKeysCreatesOnceAndKeeps(t *testing.T) {
	// A fake Keys store is enough here: the real stores are tested in store.
	st := &memKeys{}
	ks1, err := LoadKeys(t.Context(), st, rand.Reader, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ks2, err := LoadKeys(t.Context(), st, rand.Reader, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.keys) != 1 || string(ks1.JWKS()) != string(ks2.JWKS()) {
		t.Errorf("second load made another key or another JWKS: %d keys", len(st.keys))
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(ks1.JWKS(), &set); err != nil || len(set.Keys) != 1 || !set.Keys[0].IsPublic() {
		t.Errorf("JWKS %s: %v", ks1.JWKS(), err)
	}
}

// memKeys is a domain.Keys in memory. fail, if set, fails every call;
// beforeAdd, if set, runs as AddSigningKey starts (another replica's add).
type memKeys struct {
	keys      []*domain.SigningKey
	fail      error
	beforeAdd func()
	events    []*domain.AuditEvent // written with the changes, as the store does
}

func (m *memKeys) SigningKeys(_ context.Context) ([]*domain.SigningKey, error) {
	return slices.Clone(m.keys), m.fail
}
func (m *memKeys) AddSigningKey(_ context.Context, k *domain.SigningKey, ifNoneSince time.Time, events ...*domain.AuditEvent) (bool, error) {
	if m.beforeAdd != nil {
		m.beforeAdd()
	}
	if m.fail != nil {
		return false, m.fail
	}
	for _, have := range m.keys {
		if have.CreateTime.After(ifNoneSince) {
			return false, nil
		}
	}
	m.keys = append(m.keys, k)
	m.events = append(m.events, events...)
	return true, nil
}
func (m *memKeys) DeleteSigningKeys(_ context.Context, ids []string, events ...*domain.AuditEvent) error {
	if m.fail != nil {
		return m.fail
	}
	n := len(m.keys)
	m.keys = slices.DeleteFunc(m.keys, func(k *domain.SigningKey) bool { return slices.Contains(ids, k.ID) })
	if len(m.keys) < n {
		m.events = append(m.events, events...)
	}
	return nil
}
func (m *memKeys) Secret(context.Context, string, []byte) ([]byte, error) { return nil, nil }

func mustDecode(t *testing.T, part string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// A remembered access token is still refused from its exp on.
func TestVerifiedTokensAreRememberedOnlyUntilTheyExpire(t *testing.T) {
	m := mustMinter(t)
	at, err := m.Mint(&domain.Token{ID: "tokTTTTTTTTTTTTT", UserID: "u"}, Grant{}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, when := range []time.Time{now, now.Add(time.Minute)} { // the second from memory
		if _, err := m.Verify(at.JWT, when); err != nil {
			t.Fatalf("Verify at %v: %v", when, err)
		}
	}
	if _, err := m.Verify(at.JWT, at.ExpireTime); err != domain.ErrUnauthenticated {
		t.Errorf("a remembered token at its exp: %v, want ErrUnauthenticated", err)
	}
}

func BenchmarkMint(b *testing.B) {
	m := mustMinter(b)
	api := &domain.Token{ID: "tokTTTTTTTTTTTTT", UserID: "userUUUUUUUUUUUU"}
	for b.Loop() {
		if _, err := m.Mint(api, Grant{}, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	m := mustMinter(b)
	api := &domain.Token{ID: "tokTTTTTTTTTTTTT", UserID: "userUUUUUUUUUUUU"}
	b.Run("first use", func(b *testing.B) {
		fresh := make([]string, 0, 1024)
		for range cap(fresh) {
			at, _ := m.Mint(api, Grant{}, now)
			fresh = append(fresh, at.JWT)
		}
		i := 0
		for b.Loop() {
			m.verified.Purge()
			if _, err := m.Verify(fresh[i%len(fresh)], now); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("reused", func(b *testing.B) {
		at, _ := m.Mint(api, Grant{}, now)
		for b.Loop() {
			if _, err := m.Verify(at.JWT, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestMintReusesWithinTheWindow(t *testing.T) {
	ks := mustKeySet(t)
	m := NewMinter(KeyRingOf(ks), MinterConfig{Issuer: "https://issuer", Audience: "https://aud", Lifetime: 15 * time.Minute, Reuse: time.Minute})
	a := &domain.Token{ID: "tokAAAAAAAAAAAAA", UserID: "u"}
	b := &domain.Token{ID: "tokBBBBBBBBBBBBB", UserID: "u"}
	mint := func(tok *domain.Token, at time.Time) AccessToken {
		t.Helper()
		got, err := m.Mint(tok, Grant{}, at)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := mint(a, now)
	if first.Reused || first.JTI == "" {
		t.Errorf("a first mint: Reused %v, jti %q; want a new token with a jti", first.Reused, first.JTI)
	}
	if again := mint(a, now.Add(59*time.Second)); again.JWT != first.JWT || again.JTI != first.JTI || !again.Reused {
		t.Errorf("a second exchange within the reuse window minted a new token (or did not say it was reused: %v)", again.Reused)
	}
	if other := mint(b, now.Add(time.Second)); other.JWT == first.JWT {
		t.Error("another API token got the same access token")
	}
	later := mint(a, now.Add(time.Minute))
	if later.JWT == first.JWT || later.Reused || later.JTI == first.JTI {
		t.Error("the reuse window did not end")
	}
	if !later.ExpireTime.Equal(now.Add(time.Minute + 15*time.Minute)) {
		t.Errorf("a fresh token after the window expires %v", later.ExpireTime)
	}

	// Without reuse, every exchange signs anew.
	m0 := NewMinter(KeyRingOf(ks), MinterConfig{Issuer: "https://issuer", Audience: "https://aud", Lifetime: 15 * time.Minute})
	x, _ := m0.Mint(a, Grant{}, now)
	y, _ := m0.Mint(a, Grant{}, now)
	if x.JWT == y.JWT {
		t.Error("Reuse 0 returned the same token twice")
	}
}

// A verified access token answers from the cache exactly as it verified,
// and the cache keeps one copy of what a fleet's tokens share: the user,
// the key, the audience, the scope set (issue 22's bytes per token).
func TestVerifiedTokensAnswerAsVerifiedAndShare(t *testing.T) {
	m := mustMinter(t)
	var first []AccessClaims
	for _, id := range []string{"tokAAAAAAAAAAAAA", "tokBBBBBBBBBBBBB"} {
		api := &domain.Token{ID: id, UserID: "userUUUUUUUUUUUU"}
		at, err := m.Mint(api, Grant{Scopes: domain.NewScopes("tokens:read", "orders:read"), SecretGeneration: 2}, now)
		if err != nil {
			t.Fatal(err)
		}
		want, err := m.verify(at.JWT, now)
		if err != nil {
			t.Fatal(err)
		}
		c1, err1 := m.Verify(at.JWT, now) // verifies, then caches
		c2, err2 := m.Verify(strings.Clone(at.JWT), now.Add(time.Second))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		for _, got := range []AccessClaims{c1, c2} {
			if got.UserID != want.UserID || got.TokenID != want.TokenID || got.KeyID != want.KeyID || got.JTI != want.JTI ||
				!got.Expiry.Equal(want.Expiry) || !got.Issued.Equal(want.Issued) || !slices.Equal(got.Scopes, want.Scopes) ||
				got.HasScope != want.HasScope || got.Audience != want.Audience || got.SecretGeneration != want.SecretGeneration {
				t.Errorf("Verify = %+v, want %+v", got, want)
			}
		}
		first = append(first, c2)
	}
	a, b := first[0], first[1]
	if unsafe.StringData(a.UserID) != unsafe.StringData(b.UserID) || unsafe.StringData(a.KeyID) != unsafe.StringData(b.KeyID) ||
		unsafe.StringData(a.Audience) != unsafe.StringData(b.Audience) || &a.Scopes[0] != &b.Scopes[0] {
		t.Error("two cached access tokens of one user hold copies of what they share")
	}
}
