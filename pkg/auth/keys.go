package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// KeySet holds the service's ES256 keys at one moment: the key that signs,
// and the keys published as the JWKS, which verify.
type KeySet struct {
	signing jose.JSONWebKey
	signer  jose.Signer
	public  map[string]*ecdsa.PublicKey
	jwks    []byte
	keys    []KeyState
	// expired lists the stored keys no token they signed can still be
	// valid for: the next rotation deletes them.
	expired []string
	// newest is when the newest stored key was created.
	newest time.Time
}

// KeyState is where a stored key stands.
type KeyState struct {
	ID           string
	State        string // "signing", "pending" (published, signs later), "published" (verifies), "expired"
	CreateTime   time.Time
	ActivateTime time.Time
}

// LoadKeys reads the signing keys from the store, creating the first one if
// there is none, so every replica on one database signs with the same keys,
// and returns them as they are at now. A key is published until verifyFor
// after its successor starts signing.
func LoadKeys(ctx context.Context, store domain.Keys, rnd io.Reader, now time.Time, verifyFor time.Duration) (*KeySet, error) {
	keys, err := store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		k, err := NewSigningKey(rnd, now)
		if err != nil {
			return nil, err
		}
		// Another replica may add the first key at the same moment: one of
		// the two is added, and both read it back.
		if _, err := store.AddSigningKey(ctx, k, time.Time{}); err != nil {
			return nil, err
		}
		if keys, err = store.SigningKeys(ctx); err != nil {
			return nil, err
		}
	}
	return NewKeySet(keys, now, verifyFor)
}

// NewSigningKey generates an ES256 key with a random kid, signing at once.
func NewSigningKey(rnd io.Reader, now time.Time) (*domain.SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding signing key: %w", err)
	}
	kid, err := RandomID(rnd)
	if err != nil {
		return nil, err
	}
	return &domain.SigningKey{ID: kid, Algorithm: string(jose.ES256), PrivateDER: der, CreateTime: now}, nil
}

// NewKeySet builds the key set of stored keys (oldest first) as it is at
// now: the key activated last signs (a key not activated yet is published
// but does not sign, so gateways have it before they meet it); a key leaves
// the JWKS verifyFor after a newer key started signing, when no token it
// signed can still be valid.
func NewKeySet(keys []*domain.SigningKey, now time.Time, verifyFor time.Duration) (*KeySet, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("no signing keys")
	}
	ks := &KeySet{public: make(map[string]*ecdsa.PublicKey, len(keys))}
	var set jose.JSONWebKeySet
	var signing *ecdsa.PrivateKey
	var signingKey *domain.SigningKey
	for i, k := range keys {
		ks.newest = k.CreateTime
		state := KeyState{ID: k.ID, State: "published", CreateTime: k.CreateTime, ActivateTime: k.Activation()}
		if k.Activation().After(now) {
			state.State = "pending"
		}
		if superseded(k, keys[i+1:], now, verifyFor) {
			state.State = "expired"
			ks.keys = append(ks.keys, state)
			ks.expired = append(ks.expired, k.ID)
			continue
		}
		ks.keys = append(ks.keys, state)
		if IsSealed(k.PrivateDER) {
			return nil, fmt.Errorf("signing key %s: %w", k.ID, ErrSealed)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(k.PrivateDER)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
		}
		priv, ok := parsed.(*ecdsa.PrivateKey)
		if !ok || k.Algorithm != string(jose.ES256) {
			return nil, fmt.Errorf("signing key %s: not an ES256 key", k.ID)
		}
		ks.public[k.ID] = &priv.PublicKey
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &priv.PublicKey, KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"})
		if !k.Activation().After(now) && (signingKey == nil || !k.Activation().Before(signingKey.Activation())) {
			signing, signingKey = priv, k
		}
	}
	if signingKey == nil {
		return nil, fmt.Errorf("no signing key is active yet")
	}
	for i := range ks.keys {
		if ks.keys[i].ID == signingKey.ID {
			ks.keys[i].State = "signing"
		}
	}
	ks.signing = jose.JSONWebKey{Key: signing, KeyID: signingKey.ID, Algorithm: signingKey.Algorithm}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ks.signing},
		(&jose.SignerOptions{}).WithType(accessTokenType))
	if err != nil {
		return nil, fmt.Errorf("creating signer: %w", err)
	}
	ks.signer = signer
	if ks.jwks, err = json.Marshal(set); err != nil {
		return nil, fmt.Errorf("encoding JWKS: %w", err)
	}
	return ks, nil
}

// superseded reports whether a key newer than k started signing verifyFor
// or more before now: every token k signed has expired since.
func superseded(k *domain.SigningKey, newer []*domain.SigningKey, now time.Time, verifyFor time.Duration) bool {
	for _, n := range newer {
		if n.Activation().After(k.Activation()) && !now.Before(n.Activation().Add(verifyFor)) {
			return true
		}
	}
	return false
}

// JWKS returns the published keys as a JSON Web Key Set document.
func (ks *KeySet) JWKS() []byte { return ks.jwks }

// SigningKeyID returns the kid of the key that signs.
func (ks *KeySet) SigningKeyID() string { return ks.signing.KeyID }

// Keys returns where each stored key stands, oldest first.
func (ks *KeySet) Keys() []KeyState { return ks.keys }

// Newest returns the kid of the newest stored key.
func (ks *KeySet) Newest() string { return ks.keys[len(ks.keys)-1].ID }

// Rotation says how signing keys follow each other.
type Rotation struct {
	// Period is how often a new key is made (0: only by `keys rotate`).
	Period time.Duration
	// PropagationDelay is how long a new key is published before it signs:
	// at least the JWKS's max-age plus the replicas' reload interval, so
	// that no gateway meets a kid it has not been able to fetch.
	PropagationDelay time.Duration
	// VerifyFor is how long a key stays published after its successor
	// starts signing: at least the access tokens' lifetime (plus the
	// reload interval, a replica's lag in taking the new key up).
	VerifyFor time.Duration
}

// VerifyFor is how long a key must stay published after its successor
// starts signing, for access tokens living tokenLifetime on replicas that
// reload their keys every reload: a replica may sign with the old key for a
// reload interval after the switch, and clocks drift (a minute's margin).
func VerifyFor(tokenLifetime, reload time.Duration) time.Duration {
	return tokenLifetime + reload + time.Minute
}

// KeyRing holds the KeySet in use. It is empty until Load reads the keys
// from the store; Load runs again to take up keys added since, and Rotate
// adds keys and deletes expired ones.
type KeyRing struct {
	store    domain.Keys
	rnd      io.Reader
	rotation Rotation
	set      atomic.Pointer[KeySet]
}

// NewKeyRing returns an empty KeyRing over store; Load fills it.
func NewKeyRing(store domain.Keys, rnd io.Reader, rotation Rotation) *KeyRing {
	return &KeyRing{store: store, rnd: rnd, rotation: rotation}
}

// KeyRingOf returns a KeyRing holding ks, with no store to load from.
func KeyRingOf(ks *KeySet) *KeyRing {
	r := &KeyRing{}
	r.set.Store(ks)
	return r
}

// Load reads the keys from the store (creating the first one if there is
// none) and puts them in use as they are at now.
func (r *KeyRing) Load(ctx context.Context, now time.Time) error {
	ks, err := LoadKeys(ctx, r.store, r.rnd, now, r.rotation.VerifyFor)
	if err != nil {
		return err
	}
	r.set.Store(ks)
	return nil
}

// Rotate adds a new key, published now and signing after the propagation
// delay, when the newest key is a rotation period old (force: in any case,
// as `tokenservice keys rotate` does); deletes the keys no valid token can
// need; and loads the result. Any number of replicas may rotate at once:
// one key is added between them. It reports whether it added a key.
func (r *KeyRing) Rotate(ctx context.Context, now time.Time, force bool) (bool, error) {
	if err := r.Load(ctx, now); err != nil {
		return false, err
	}
	ifNoneSince := now
	if !force {
		if r.rotation.Period <= 0 || now.Sub(r.Current().newest) < r.rotation.Period {
			return false, r.store.DeleteSigningKeys(ctx, r.Current().expired)
		}
		ifNoneSince = now.Add(-r.rotation.Period)
	}
	k, err := NewSigningKey(r.rnd, now)
	if err != nil {
		return false, err
	}
	k.ActivateTime = now.Add(r.rotation.PropagationDelay)
	added, err := r.store.AddSigningKey(ctx, k, ifNoneSince)
	if err != nil {
		return false, err
	}
	if err := r.store.DeleteSigningKeys(ctx, r.Current().expired); err != nil {
		return added, err
	}
	return added, r.Load(ctx, now)
}

// Current returns the KeySet in use, or nil before Load.
func (r *KeyRing) Current() *KeySet { return r.set.Load() }

// JWKS returns the published keys as a JWK set, or nil before Load.
func (r *KeyRing) JWKS() []byte {
	if ks := r.Current(); ks != nil {
		return ks.JWKS()
	}
	return nil
}
