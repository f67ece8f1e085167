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

// KeySet holds the service's ES256 keys: the newest signs, all verify, and
// all are published as the JWKS.
type KeySet struct {
	signing jose.JSONWebKey
	signer  jose.Signer
	public  map[string]*ecdsa.PublicKey
	jwks    []byte
}

// LoadKeys reads the signing keys from the store, creating the first one if
// there is none, so every replica on one database signs with the same keys.
func LoadKeys(ctx context.Context, store domain.Keys, rnd io.Reader, now time.Time) (*KeySet, error) {
	keys, err := store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		k, err := NewSigningKey(rnd, now)
		if err != nil {
			return nil, err
		}
		// Another replica may add its own first key at the same moment; both
		// are kept and published, and every replica signs with the newest.
		if err := store.AddSigningKey(ctx, k); err != nil && domain.KindOf(err) != domain.KindConflict {
			return nil, err
		}
		if keys, err = store.SigningKeys(ctx); err != nil {
			return nil, err
		}
	}
	return NewKeySet(keys)
}

// NewSigningKey generates an ES256 key with a random kid.
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

// NewKeySet builds a key set from stored keys, oldest first; the last one signs.
func NewKeySet(keys []*domain.SigningKey) (*KeySet, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("no signing keys")
	}
	ks := &KeySet{public: make(map[string]*ecdsa.PublicKey, len(keys))}
	var set jose.JSONWebKeySet
	for _, k := range keys {
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
		ks.signing = jose.JSONWebKey{Key: priv, KeyID: k.ID, Algorithm: k.Algorithm}
	}
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

// JWKS returns the public keys as a JSON Web Key Set document.
func (ks *KeySet) JWKS() []byte { return ks.jwks }

// KeyRing holds the KeySet in use. It is empty until Load reads the keys
// from the store, and Load may run again to take up keys added since.
type KeyRing struct {
	store domain.Keys
	rnd   io.Reader
	set   atomic.Pointer[KeySet]
}

// NewKeyRing returns an empty KeyRing over store; Load fills it.
func NewKeyRing(store domain.Keys, rnd io.Reader) *KeyRing {
	return &KeyRing{store: store, rnd: rnd}
}

// KeyRingOf returns a KeyRing holding ks, with no store to load from.
func KeyRingOf(ks *KeySet) *KeyRing {
	r := &KeyRing{}
	r.set.Store(ks)
	return r
}

// Load reads the keys from the store (creating the first one if there is
// none) and puts them in use.
func (r *KeyRing) Load(ctx context.Context, now time.Time) error {
	ks, err := LoadKeys(ctx, r.store, r.rnd, now)
	if err != nil {
		return err
	}
	r.set.Store(ks)
	return nil
}

// Current returns the KeySet in use, or nil before Load.
func (r *KeyRing) Current() *KeySet { return r.set.Load() }

// JWKS returns the public keys as a JWK set, or nil before Load.
func (r *KeyRing) JWKS() []byte {
	if ks := r.Current(); ks != nil {
		return ks.JWKS()
	}
	return nil
}
