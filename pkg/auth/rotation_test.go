package auth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"slices"
	"testing"
	"time"

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
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	if added, err := ring.Rotate(ctx, t0, false); err != nil || added {
		t.Fatalf("the first load: added %v, %v (the first key is made by the load, not a rotation)", added, err)
	}
	k1 := ring.Current().SigningKeyID()
	if added, _ := ring.Rotate(ctx, t0.Add(29*24*time.Hour), false); added {
		t.Fatal("rotated before the period")
	}

	due := t0.Add(rot.Period)
	if added, err := ring.Rotate(ctx, due, false); err != nil || !added {
		t.Fatalf("rotation due: added %v, %v", added, err)
	}
	k2 := ring.Current().Newest()
	if k2 == k1 || ring.Current().SigningKeyID() != k1 || !slices.Equal(publishedKIDs(t, ring), []string{k1, k2}) {
		t.Fatalf("right after rotating: signing %s, published %v; want %s signing, both published", ring.Current().SigningKeyID(), publishedKIDs(t, ring), k1)
	}
	// A second replica rotating at the same moment adds nothing.
	if added, _ := NewKeyRing(store, rand.Reader, rot).Rotate(ctx, due.Add(time.Second), false); added || len(store.keys) != 2 {
		t.Fatalf("a second rotation in the same period added a key (%d keys)", len(store.keys))
	}
	old, err := minter.Mint(tok, due.Add(9*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := minter.Verify(old.JWT, due.Add(9*time.Minute)); err != nil {
		t.Fatalf("a token of the old key: %v", err)
	}

	active := due.Add(rot.PropagationDelay)
	if err := ring.Load(ctx, active); err != nil {
		t.Fatal(err)
	}
	if ring.Current().SigningKeyID() != k2 {
		t.Fatalf("after the propagation delay %s signs, want %s", ring.Current().SigningKeyID(), k2)
	}
	// Reuse does not hand out the old key's token once the new key signs.
	fresh, _ := minter.Mint(tok, active.Add(10*time.Second))
	if fresh.JWT == old.JWT {
		t.Error("a token of the retired key was reused after the new key started signing")
	}
	// The old key still verifies its tokens while they can be valid.
	if err := ring.Load(ctx, active.Add(rot.VerifyFor-time.Second)); err != nil || !slices.Contains(publishedKIDs(t, ring), k1) {
		t.Fatalf("the old key left the JWKS before its tokens expired: %v, %v", publishedKIDs(t, ring), err)
	}
	if _, err := minter.Verify(old.JWT, active.Add(time.Minute)); err != nil {
		t.Errorf("a token of the retired key, still valid: %v", err)
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

// `keys rotate` rotates whatever the period: Rotate with force.
func TestForcedRotation(t *testing.T) {
	ctx := context.Background()
	store := &memKeys{}
	ring := NewKeyRing(store, rand.Reader, Rotation{PropagationDelay: time.Minute, VerifyFor: time.Hour})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := ring.Rotate(ctx, t0, false); err != nil {
		t.Fatal(err)
	}
	if added, _ := ring.Rotate(ctx, t0.Add(time.Hour), false); added {
		t.Error("a rotation period of 0 rotated on its own")
	}
	if added, err := ring.Rotate(ctx, t0.Add(time.Hour), true); err != nil || !added || len(store.keys) != 2 {
		t.Errorf("a forced rotation: added %v, %v, %d keys", added, err, len(store.keys))
	}
	states := ring.Current().Keys()
	if states[0].State != "signing" || states[1].State != "pending" {
		t.Errorf("states after a forced rotation: %+v", states)
	}
}
