package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
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
	states  []KeyState
}

// KeyStatus is where a stored key stands in its rotation.
type KeyStatus string

// A key is pending, then signing, then published (it verifies the tokens
// it signed), then expired (no token it signed can still be valid; the next
// rotation deletes it).
const (
	KeyPending   KeyStatus = "pending"
	KeySigning   KeyStatus = "signing"
	KeyPublished KeyStatus = "published"
	KeyExpired   KeyStatus = "expired"
)

// KeyState is where one stored key stands.
type KeyState struct {
	ID           string
	Status       KeyStatus
	CreateTime   time.Time
	ActivateTime time.Time
}

// KeyStates works out where each stored key (oldest first) stands at now,
// from the keys' times alone. The key activated last signs; a key not yet
// activated is pending; a key is expired verifyFor after a key activated
// later than it started signing (verifyFor <= 0: never, for a caller that
// does not know the tokens' lifetime). If no key is activated yet (an
// operator deleted the signing key), the first pending key to activate
// signs at once: better than no key, or the deleted one.
func KeyStates(keys []*domain.SigningKey, now time.Time, verifyFor time.Duration) []KeyState {
	states := make([]KeyState, len(keys))
	signing, firstPending := -1, -1
	for i, k := range keys {
		states[i] = KeyState{ID: k.ID, Status: KeyPublished, CreateTime: k.CreateTime, ActivateTime: k.Activation()}
		switch {
		case k.Activation().After(now):
			states[i].Status = KeyPending
			if firstPending < 0 || k.Activation().Before(keys[firstPending].Activation()) {
				firstPending = i
			}
		case signing < 0 || !k.Activation().Before(keys[signing].Activation()):
			signing = i
		}
		if verifyFor > 0 && superseded(k, keys, now, verifyFor) {
			states[i].Status = KeyExpired
		}
	}
	if signing < 0 {
		signing = firstPending
	}
	if signing >= 0 {
		states[signing].Status = KeySigning
	}
	return states
}

// superseded reports whether a key activated after k started signing
// verifyFor or more before now: every token k signed has expired since.
func superseded(k *domain.SigningKey, keys []*domain.SigningKey, now time.Time, verifyFor time.Duration) bool {
	for _, n := range keys {
		if n.Activation().After(k.Activation()) && !now.Before(n.Activation().Add(verifyFor)) {
			return true
		}
	}
	return false
}

func loadKeys(ctx context.Context, store domain.Keys, rnd io.Reader, now time.Time, actor domain.AuditParty) ([]*domain.SigningKey, error) {
	keys, err := store.SigningKeys(ctx)
	if err != nil || len(keys) > 0 {
		return keys, err
	}
	k, err := NewSigningKey(rnd, now)
	if err != nil {
		return nil, err
	}
	// Another replica may add the first key at the same moment: one of the
	// two is added (with its event), and both read it back.
	if _, err := store.AddSigningKey(ctx, k, time.Time{}, keyEvent(ctx, domain.ActionSigningKeyAdd, actor, k.ID, now).
		With("activate_time", k.CreateTime.UTC().Format(time.RFC3339))); err != nil {
		return nil, err
	}
	return store.SigningKeys(ctx)
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
// now (see KeyStates): the signing key signs; every key but the expired ones
// is published, pending ones included, so gateways have a key before they
// meet it.
func NewKeySet(keys []*domain.SigningKey, now time.Time, verifyFor time.Duration) (*KeySet, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("no signing keys")
	}
	ks := &KeySet{public: make(map[string]*ecdsa.PublicKey, len(keys)), states: KeyStates(keys, now, verifyFor)}
	var set jose.JSONWebKeySet
	for i, k := range keys {
		if ks.states[i].Status == KeyExpired {
			continue
		}
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
		if ks.states[i].Status == KeySigning {
			ks.signing = jose.JSONWebKey{Key: priv, KeyID: k.ID, Algorithm: k.Algorithm}
		}
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

// JWKS returns the published keys as a JSON Web Key Set document.
func (ks *KeySet) JWKS() []byte { return ks.jwks }

// SigningKeyID returns the kid of the key that signs.
func (ks *KeySet) SigningKeyID() string { return ks.signing.KeyID }

// SigningKeyActivation returns when the key that signs started signing.
func (ks *KeySet) SigningKeyActivation() time.Time {
	for _, st := range ks.states {
		if st.Status == KeySigning {
			return st.ActivateTime
		}
	}
	return time.Time{}
}

// States returns where each stored key stands, oldest first.
func (ks *KeySet) States() []KeyState { return slices.Clone(ks.states) }

// Rotation says how signing keys follow each other.
type Rotation struct {
	// Period is how often a new key is made (0: only by `keys rotate`).
	Period time.Duration
	// PropagationDelay is how long a new key is published before it signs
	// (see CheckPropagation).
	PropagationDelay time.Duration
	// Actor is who the audit trail records as adding, retiring and
	// deleting keys: the service for serve's own rotation, the operator
	// for tokenservice keys rotate.
	Actor domain.AuditParty
	// VerifyFor is how long a key stays published after its successor
	// starts signing (see VerifyFor); then the key is deleted. 0: keys
	// are never deleted, for a ring that does not know the tokens' lifetime.
	VerifyFor time.Duration
}

// CheckPropagation refuses a propagation delay during which a gateway could
// still hold a JWKS fetched before a replica published the new key: that
// replica takes up to a reload interval to publish it, and the gateway
// keeps its copy for the JWKS's max-age. The delay should also cover the
// clocks' skew between replicas; the default (10m against 5m + 1m) leaves
// four minutes for it.
func CheckPropagation(delay, jwksMaxAge, reload time.Duration) error {
	if jwksMaxAge <= 0 || reload <= 0 {
		return fmt.Errorf("the JWKS max-age (%s) and the key reload interval (%s) must be positive", jwksMaxAge, reload)
	}
	if delay < jwksMaxAge+reload {
		return fmt.Errorf("the key propagation delay (%s) must be at least the JWKS max-age plus the key reload interval (%s): "+
			"a gateway could meet the new key before it can fetch it", delay, jwksMaxAge+reload)
	}
	return nil
}

// VerifyFor is how long a key must stay published after its successor
// starts signing, for access tokens living tokenLifetime on replicas that
// reload their keys every reload: a replica may sign with the old key for a
// reload interval after the switch, and clocks drift (a minute's margin).
func VerifyFor(tokenLifetime, reload time.Duration) time.Duration {
	return tokenLifetime + reload + time.Minute
}

// KeyRing holds the KeySet in use. It is empty until Load reads the keys
// from the store; Load runs again to take up keys added since, Refresh
// moves the keys it holds on to now without the store, and Rotate adds keys
// and deletes expired ones.
type KeyRing struct {
	store    domain.Keys
	rnd      io.Reader
	rotation Rotation

	mu   sync.Mutex           // serializes Load and Refresh
	keys []*domain.SigningKey // as last loaded
	set  atomic.Pointer[KeySet]
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
	keys, err := loadKeys(ctx, r.store, r.rnd, now, r.rotation.Actor)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.use(keys, now)
}

// Refresh puts the keys last loaded in use as they are at now, without the
// store: while the database is away, a pending key still starts signing
// and an expired key still leaves the JWKS on time, as on the replicas that
// can reach it.
func (r *KeyRing) Refresh(now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		return fmt.Errorf("no signing keys loaded")
	}
	return r.use(r.keys, now)
}

func (r *KeyRing) use(keys []*domain.SigningKey, now time.Time) error {
	ks, err := NewKeySet(keys, now, r.rotation.VerifyFor)
	if err != nil {
		return err
	}
	r.keys = keys
	r.set.Store(ks)
	return nil
}

// Rotate loads the keys, and adds a new one (published now, signing after
// the propagation delay) when the newest key is a rotation period old
// (force: in any case, as `tokenservice keys rotate` does); then deletes
// the expired keys (if the ring knows when keys expire) and loads the
// result. Any number of replicas may rotate at once: one key is added
// between them, and each loads it. It returns the key it added, or nil.
func (r *KeyRing) Rotate(ctx context.Context, now time.Time, force bool) (*domain.SigningKey, error) {
	if err := r.Load(ctx, now); err != nil {
		return nil, err
	}
	var added *domain.SigningKey
	due, ifNoneSince := r.due(now, force)
	if due {
		k, err := NewSigningKey(r.rnd, now)
		if err != nil {
			return nil, err
		}
		k.ActivateTime = now.Add(r.rotation.PropagationDelay)
		ok, err := r.store.AddSigningKey(ctx, k, ifNoneSince, r.addEvents(ctx, k, now)...)
		if err != nil {
			return nil, err
		}
		if ok {
			added = k
		}
	}
	var expired []string
	for _, st := range r.Current().states {
		if st.Status == KeyExpired {
			expired = append(expired, st.ID)
		}
	}
	if !due && len(expired) == 0 {
		return nil, nil
	}
	// One at a time: a replica deleting the same key at once deletes
	// nothing, and so records nothing.
	for _, id := range expired {
		ev := keyEvent(ctx, domain.ActionSigningKeyDel, r.rotation.Actor, id, now).With("reason", "expired")
		if err := r.store.DeleteSigningKeys(ctx, []string{id}, ev); err != nil {
			return added, err
		}
	}
	return added, r.Load(ctx, now)
}

// addEvents are the events of adding k at now: its addition, and the
// retirement of the key it replaces (the newest before it), which stops
// signing when k starts.
func (r *KeyRing) addEvents(ctx context.Context, k *domain.SigningKey, now time.Time) []*domain.AuditEvent {
	activate := k.ActivateTime.UTC().Format(time.RFC3339)
	events := []*domain.AuditEvent{keyEvent(ctx, domain.ActionSigningKeyAdd, r.rotation.Actor, k.ID, now).With("activate_time", activate)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.keys); n > 0 {
		old := r.keys[n-1].ID
		events = append(events, keyEvent(ctx, domain.ActionSigningKeyRet, r.rotation.Actor, old, now).
			With("retire_time", activate).With("replaced_by", k.ID))
	}
	return events
}

// keyEvent is an event about the signing key kid (the detail "kid").
func keyEvent(ctx context.Context, action domain.AuditAction, actor domain.AuditParty, kid string, now time.Time) *domain.AuditEvent {
	return (&domain.AuditEvent{Time: now, Action: action, Outcome: domain.OutcomeSuccess, Actor: actor, Origin: domain.OriginFromContext(ctx)}).
		With("kid", kid)
}

// due reports whether a rotation is due at now, and since when no key may
// have been created for it to go ahead (the store checks, so that replicas
// rotating at once add one key).
func (r *KeyRing) due(now time.Time, force bool) (bool, time.Time) {
	if force {
		return true, now
	}
	if r.rotation.Period <= 0 {
		return false, time.Time{}
	}
	r.mu.Lock()
	newest := r.keys[len(r.keys)-1].CreateTime
	r.mu.Unlock()
	return now.Sub(newest) >= r.rotation.Period, now.Add(-r.rotation.Period)
}

// StoredKeys are the signing keys as stored, to see and delete: not to
// sign with or add to (their private keys may be sealed).
type StoredKeys interface {
	SigningKeys(ctx context.Context) ([]*domain.SigningKey, error)
	DeleteSigningKeys(ctx context.Context, ids []string, events ...*domain.AuditEvent) error
}

// ErrSigningKeyInUse is DeleteSigningKey's refusal of the key that signs.
var ErrSigningKeyInUse = errors.New("the key signs the access tokens now")

// DeleteSigningKey deletes the stored key kid at now, withdrawing it from
// every replica's JWKS at their next reload (a leaked key, say). It refuses
// the only key, and the key that signs unless force: then the key activated
// before it signs again if it is still published, else the first pending
// key signs at once, possibly before every gateway has it. The safe course
// is to rotate and delete the old key once the new one signs.
//
// The audit trail records actor deleting it (details: kid, the key's state,
// forced).
func DeleteSigningKey(ctx context.Context, store StoredKeys, kid string, now time.Time, force bool, actor domain.AuditParty) error {
	keys, err := store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(keys, func(k *domain.SigningKey) bool { return k.ID == kid })
	switch {
	case i < 0:
		return fmt.Errorf("no signing key %q", kid)
	case len(keys) == 1:
		return fmt.Errorf("%s is the only signing key: rotate first", kid)
	}
	state := KeyStates(keys, now, 0)[i].Status
	if state == KeySigning && !force {
		return fmt.Errorf("%s: %w", kid, ErrSigningKeyInUse)
	}
	ev := keyEvent(ctx, domain.ActionSigningKeyDel, actor, kid, now).With("state", string(state)).With("forced", strconv.FormatBool(force))
	return store.DeleteSigningKeys(ctx, []string{kid}, ev)
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
