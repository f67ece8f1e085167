package auth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

func publishedKIDs(t *testing.T, r *KeyRing) []string {
	t.Helper()
	var set struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal(r.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func statuses(states []KeyState) []KeyStatus {
	var out []KeyStatus
	for _, s := range states {
		out = append(out, s.Status)
	}
	return out
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// A rotation publishes the new key first, signs with it after the
// propagation delay, keeps the old key published until no token it signed
// can be valid, then deletes it; remembered tokens and reused access tokens
// follow the keys.
func TestRotation(t *testing.T) {
	ctx := context.Background()
	store := &memKeys{}
	rot := Rotation{Period: 30 * 24 * time.Hour, PropagationDelay: 10 * time.Minute, VerifyFor: 20 * time.Minute}
	ring := NewKeyRing(store, rand.Reader, rot)
	minter := NewMinter(ring, MinterConfig{Issuer: "https://issuer", Audience: "https://aud", Lifetime: 15 * time.Minute, Reuse: time.Minute})
	tok := &domain.Token{ID: "tokTTTTTTTTTTTTT", UserID: "u"}

	if added, err := ring.Rotate(ctx, t0, false); err != nil || added != nil {
		t.Fatalf("the first load: added %v, %v (the first key is made by the load, not a rotation)", added, err)
	}
	k1 := ring.Current().SigningKeyID()
	if added, _ := ring.Rotate(ctx, t0.Add(29*24*time.Hour), false); added != nil {
		t.Fatal("rotated before the period")
	}

	due := t0.Add(rot.Period)
	added, err := ring.Rotate(ctx, due, false)
	if err != nil || added == nil {
		t.Fatalf("rotation due: added %v, %v", added, err)
	}
	k2 := added.ID
	if !added.ActivateTime.Equal(due.Add(rot.PropagationDelay)) || ring.Current().SigningKeyID() != k1 || !slices.Equal(publishedKIDs(t, ring), []string{k1, k2}) {
		t.Fatalf("right after rotating: signing %s, published %v, new key signs from %v; want %s signing, both published",
			ring.Current().SigningKeyID(), publishedKIDs(t, ring), added.ActivateTime, k1)
	}
	if _, err := ring.Rotate(ctx, due.Add(time.Second), false); err != nil || len(store.keys) != 2 {
		t.Fatalf("a second rotation in the same period: %v, %d keys", err, len(store.keys))
	}
	old, err := minter.Mint(tok, Grant{}, due.Add(rot.PropagationDelay-30*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	active := due.Add(rot.PropagationDelay)
	if err := ring.Load(ctx, active); err != nil {
		t.Fatal(err)
	}
	if ring.Current().SigningKeyID() != k2 {
		t.Fatalf("after the propagation delay %s signs, want %s", ring.Current().SigningKeyID(), k2)
	}
	// Within the reuse window, but the old key's token is not handed out
	// once the new key signs.
	if fresh, _ := minter.Mint(tok, Grant{}, active.Add(10*time.Second)); fresh.JWT == old.JWT {
		t.Error("a token of the replaced key was reused after the new key started signing")
	}
	// The old key still verifies its tokens while they can be valid.
	if err := ring.Load(ctx, active.Add(rot.VerifyFor-time.Second)); err != nil || !slices.Contains(publishedKIDs(t, ring), k1) {
		t.Fatalf("the old key left the JWKS before its tokens expired: %v, %v", publishedKIDs(t, ring), err)
	}
	if _, err := minter.Verify(old.JWT, active.Add(time.Minute)); err != nil {
		t.Errorf("a token of the replaced key, still valid: %v", err)
	}

	// Then it leaves: published no more, deleted by the next rotation, and a
	// remembered token of it no longer verifies.
	gone := active.Add(rot.VerifyFor)
	if _, err := ring.Rotate(ctx, gone, false); err != nil {
		t.Fatal(err)
	}
	if kids := publishedKIDs(t, ring); !slices.Equal(kids, []string{k2}) || len(store.keys) != 1 {
		t.Errorf("after the old key's tokens expired: published %v, %d stored; want only %s", kids, len(store.keys), k2)
	}
	if _, err := minter.Verify(old.JWT, active.Add(time.Minute)); err != domain.ErrUnauthenticated {
		t.Errorf("a remembered token of a key that is gone: %v, want refused", err)
	}
}

// Two replicas find a rotation due at the same moment: the store adds the
// key of the first, refuses the second's, and both use the first's.
func TestRotationRaceAddsOneKey(t *testing.T) {
	ctx := context.Background()
	store := &memKeys{}
	rot := Rotation{Period: time.Hour, PropagationDelay: 10 * time.Minute, VerifyFor: 20 * time.Minute}
	a, b := NewKeyRing(store, rand.Reader, rot), NewKeyRing(store, rand.Reader, rot)
	if _, err := a.Rotate(ctx, t0, false); err != nil {
		t.Fatal(err)
	}
	var first *domain.SigningKey
	store.beforeAdd = func() { // b's add runs while a's, loaded the same keys, is due too
		store.beforeAdd = nil
		if first, _ = a.Rotate(ctx, t0.Add(time.Hour), false); first == nil {
			t.Fatal("the first replica did not rotate")
		}
	}
	if added, err := b.Rotate(ctx, t0.Add(time.Hour), false); err != nil || added != nil {
		t.Fatalf("the second replica: added %v, %v; want nothing", added, err)
	}
	if len(store.keys) != 2 || !slices.Contains(publishedKIDs(t, b), first.ID) {
		t.Errorf("%d keys stored, the second replica publishes %v; want 2, with %s", len(store.keys), publishedKIDs(t, b), first.ID)
	}
}

// `keys rotate` rotates whatever the period, and a ring that does not know
// the tokens' lifetime (VerifyFor 0) never deletes a key.
func TestForcedRotation(t *testing.T) {
	ctx := context.Background()
	store := &memKeys{}
	ring := NewKeyRing(store, rand.Reader, Rotation{PropagationDelay: time.Minute})
	if _, err := ring.Rotate(ctx, t0, false); err != nil {
		t.Fatal(err)
	}
	if added, _ := ring.Rotate(ctx, t0.Add(time.Hour), false); added != nil {
		t.Error("a rotation period of 0 rotated on its own")
	}
	for i := range 3 {
		if added, err := ring.Rotate(ctx, t0.Add(time.Duration(i+1)*time.Hour), true); err != nil || added == nil {
			t.Fatalf("a forced rotation: added %v, %v", added, err)
		}
	}
	if got := statuses(ring.Current().States()); len(store.keys) != 4 ||
		!slices.Equal(got, []KeyStatus{KeyPublished, KeyPublished, KeySigning, KeyPending}) {
		t.Errorf("after three forced rotations an hour apart: %d keys stored, %v", len(store.keys), got)
	}
}

// Where each key stands, from its times alone.
func TestKeyStates(t *testing.T) {
	key := func(id string, created, activates time.Duration) *domain.SigningKey {
		k := &domain.SigningKey{ID: id, CreateTime: t0.Add(created)}
		if activates != 0 {
			k.ActivateTime = t0.Add(activates)
		}
		return k
	}
	const verifyFor = time.Hour
	for _, tc := range []struct {
		name string
		keys []*domain.SigningKey
		at   time.Duration
		want []KeyStatus
	}{
		{"one key, stored before activate times existed", []*domain.SigningKey{key("a", 0, 0)}, time.Hour, []KeyStatus{KeySigning}},
		{"a new key waits", []*domain.SigningKey{key("a", 0, 0), key("b", time.Hour, 2*time.Hour)}, 90 * time.Minute,
			[]KeyStatus{KeySigning, KeyPending}},
		{"then signs at its activate time", []*domain.SigningKey{key("a", 0, 0), key("b", time.Hour, 2*time.Hour)}, 2 * time.Hour,
			[]KeyStatus{KeyPublished, KeySigning}},
		{"the old key expires verifyFor later", []*domain.SigningKey{key("a", 0, 0), key("b", time.Hour, 2*time.Hour)}, 3 * time.Hour,
			[]KeyStatus{KeyExpired, KeySigning}},
		{"keys activating out of creation order: the last activated signs, the other expires",
			[]*domain.SigningKey{key("a", 0, 0), key("b", time.Hour, 5*time.Hour), key("c", 2*time.Hour, 2*time.Hour)}, 5*time.Hour + 30*time.Minute,
			[]KeyStatus{KeyExpired, KeySigning, KeyPublished}},
		{"no key active (the signing key deleted): the first pending signs",
			[]*domain.SigningKey{key("b", time.Hour, 3*time.Hour), key("c", 2*time.Hour, 2*time.Hour+time.Minute)}, 90 * time.Minute,
			[]KeyStatus{KeyPending, KeySigning}},
	} {
		if got := statuses(KeyStates(tc.keys, t0.Add(tc.at), verifyFor)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// Not knowing the tokens' lifetime, nothing expires.
	keys := []*domain.SigningKey{key("a", 0, 0), key("b", time.Hour, 2*time.Hour)}
	if got := statuses(KeyStates(keys, t0.Add(1000*time.Hour), 0)); !slices.Equal(got, []KeyStatus{KeyPublished, KeySigning}) {
		t.Errorf("verifyFor 0: %v", got)
	}
}

// With the store away, a ring moves the keys it holds on in time: the
// pending key starts signing and the expired one leaves the JWKS, as on the
// replicas that reach the store.
func TestRefreshWithoutTheStore(t *testing.T) {
	ctx := context.Background()
	store := &memKeys{}
	rot := Rotation{PropagationDelay: 10 * time.Minute, VerifyFor: 20 * time.Minute}
	ring := NewKeyRing(store, rand.Reader, rot)
	if err := ring.Refresh(t0); err == nil {
		t.Error("Refresh before any load did not fail")
	}
	if _, err := ring.Rotate(ctx, t0, false); err != nil {
		t.Fatal(err)
	}
	k1 := ring.Current().SigningKeyID()
	added, err := ring.Rotate(ctx, t0.Add(time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	store.fail = errors.New("database away")
	if _, err := ring.Rotate(ctx, added.ActivateTime, false); err == nil {
		t.Fatal("Rotate with the store away did not fail")
	}
	if err := ring.Refresh(added.ActivateTime); err != nil || ring.Current().SigningKeyID() != added.ID {
		t.Errorf("refreshed at the new key's activate time: signing %s, %v; want %s", ring.Current().SigningKeyID(), err, added.ID)
	}
	if err := ring.Refresh(added.ActivateTime.Add(rot.VerifyFor)); err != nil || slices.Contains(publishedKIDs(t, ring), k1) {
		t.Errorf("refreshed past the old key's expiry: published %v, %v", publishedKIDs(t, ring), err)
	}
}

// keys delete: a key other than the signing one goes; the signing key only
// with force, and its successor then signs at once; never the only key.
func TestDeleteSigningKey(t *testing.T) {
	ctx := context.Background()
	store := &memKeys{}
	ring := NewKeyRing(store, rand.Reader, Rotation{PropagationDelay: 10 * time.Minute, VerifyFor: time.Hour})
	if _, err := ring.Rotate(ctx, t0, false); err != nil {
		t.Fatal(err)
	}
	k1 := ring.Current().SigningKeyID()
	if err := DeleteSigningKey(ctx, store, k1, t0, true, domain.AuditParty{}); err == nil || len(store.keys) != 1 {
		t.Errorf("deleting the only key: %v, %d keys left", err, len(store.keys))
	}
	if err := DeleteSigningKey(ctx, store, "nosuchkey", t0, true, domain.AuditParty{}); err == nil {
		t.Error("deleting an unknown key did not fail")
	}
	k2, err := ring.Rotate(ctx, t0, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := DeleteSigningKey(ctx, store, k1, t0, false, domain.AuditParty{}); !errors.Is(err, ErrSigningKeyInUse) || len(store.keys) != 2 {
		t.Errorf("deleting the signing key without force: %v, %d keys left", err, len(store.keys))
	}
	if err := DeleteSigningKey(ctx, store, k1, t0, true, domain.AuditParty{}); err != nil {
		t.Fatal(err)
	}
	if err := ring.Load(ctx, t0.Add(time.Minute)); err != nil || ring.Current().SigningKeyID() != k2.ID || !slices.Equal(publishedKIDs(t, ring), []string{k2.ID}) {
		t.Errorf("after deleting the signing key: %v, signing %s, published %v; want %s alone", err, ring.Current().SigningKeyID(), publishedKIDs(t, ring), k2.ID)
	}
	// A pending key goes without force.
	k3, _ := ring.Rotate(ctx, t0.Add(time.Hour), true)
	if err := DeleteSigningKey(ctx, store, k3.ID, t0.Add(time.Hour), false, domain.AuditParty{}); err != nil || len(store.keys) != 1 {
		t.Errorf("deleting a pending key: %v, %d keys left", err, len(store.keys))
	}
}

// keyEvents is what the audit trail holds of key events: action, actor
// kind and details.
func keyEvents(events []*domain.AuditEvent) []string {
	var out []string
	for _, e := range events {
		b, _ := json.Marshal(e.Details)
		out = append(out, string(e.Action)+" by "+e.Actor.Kind+" "+string(b))
	}
	return out
}

// Each addition, retirement and deletion of a key is recorded with the
// change, as the ring's actor: the first key, a rotation (the key it
// replaces retires when the new one signs), an expired key deleted, a key
// deleted by keys delete.
func TestKeyChangesAreRecorded(t *testing.T) {
	ctx := context.Background()
	store := &memKeys{}
	service := domain.AuditParty{Kind: domain.ActorService}
	ring := NewKeyRing(store, rand.Reader, Rotation{Period: time.Hour, PropagationDelay: 10 * time.Minute, VerifyFor: 20 * time.Minute, Actor: service})
	if _, err := ring.Rotate(ctx, t0, false); err != nil {
		t.Fatal(err)
	}
	k1 := ring.Current().SigningKeyID()
	k2, err := ring.Rotate(ctx, t0.Add(time.Hour), false)
	if err != nil || k2 == nil {
		t.Fatalf("due rotation: %v, %v", k2, err)
	}
	// k1 expires 20 minutes after k2 signs (at 1h10m).
	if _, err := ring.Rotate(ctx, t0.Add(time.Hour+31*time.Minute), false); err != nil {
		t.Fatal(err)
	}
	k3, err := ring.Rotate(ctx, t0.Add(time.Hour+32*time.Minute), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := DeleteSigningKey(ctx, store, k3.ID, t0.Add(time.Hour+33*time.Minute), false, domain.AuditParty{Kind: domain.ActorOperator}); err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	want := []string{
		`signing_key.add by service {"activate_time":"` + at(0) + `","kid":"` + k1 + `"}`,
		`signing_key.add by service {"activate_time":"` + at(70*time.Minute) + `","kid":"` + k2.ID + `"}`,
		`signing_key.retire by service {"kid":"` + k1 + `","replaced_by":"` + k2.ID + `","retire_time":"` + at(70*time.Minute) + `"}`,
		`signing_key.delete by service {"kid":"` + k1 + `","reason":"expired"}`,
		`signing_key.add by service {"activate_time":"` + at(102*time.Minute) + `","kid":"` + k3.ID + `"}`,
		`signing_key.retire by service {"kid":"` + k2.ID + `","replaced_by":"` + k3.ID + `","retire_time":"` + at(102*time.Minute) + `"}`,
		`signing_key.delete by operator {"forced":"false","kid":"` + k3.ID + `","state":"pending"}`,
	}
	if diff := cmp.Diff(want, keyEvents(store.events)); diff != "" {
		t.Errorf("key events (-want +got):\n%s", diff)
	}
	for _, e := range store.events {
		if !e.Time.After(t0.Add(-time.Second)) || e.Outcome != domain.OutcomeSuccess || e.Subject != (domain.AuditParty{}) {
			t.Errorf("%s: time %v, outcome %q, subject %+v", e.Action, e.Time, e.Outcome, e.Subject)
		}
	}
}
