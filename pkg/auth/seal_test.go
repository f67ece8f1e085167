package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

func mustKEK(t *testing.T) []byte {
	t.Helper()
	kek, err := ParseKeyEncryptionKey([]byte(" " + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return kek
}

func TestSealedKeys(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		st := storetest.MustOpen(t, driver)
		sealed, err := NewSealedKeys(st, mustKEK(t), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ks, err := LoadKeys(ctx, sealed, rand.Reader, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		secret, err := sealed.Secret(ctx, "page_token_mac", []byte("a secret of fifty-two bytes, as the server makes..."))
		if err != nil {
			t.Fatal(err)
		}
		if string(secret) != "a secret of fifty-two bytes, as the server makes..." {
			t.Errorf("secret read back as %q", secret)
		}

		// What the database holds is sealed.
		raw, err := st.SigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := sealed.SigningKeys(ctx)
		if len(raw) != 1 || !IsSealed(raw[0].PrivateDER) || bytes.Contains(raw[0].PrivateDER, plain[0].PrivateDER) {
			t.Error("the signing key is stored in the clear")
		}
		rawSecret, err := st.Secret(ctx, "page_token_mac", []byte("ignored: the name is taken"))
		if err != nil {
			t.Fatal(err)
		}
		if !IsSealed(rawSecret) || bytes.Contains(rawSecret, secret) {
			t.Error("the server secret is stored in the clear")
		}

		// The same key-encryption key reads the same keys back.
		again, err := LoadKeys(ctx, sealed, rand.Reader, now, time.Hour)
		if err != nil || again.signing.KeyID != ks.signing.KeyID {
			t.Fatalf("reloading: %v, kid %v vs %v", err, again.signing.KeyID, ks.signing.KeyID)
		}

		// Without it, or with another, nothing is misread.
		if _, err := LoadKeys(ctx, st, rand.Reader, now, time.Hour); !errors.Is(err, ErrSealed) {
			t.Errorf("loading sealed keys without the key-encryption key: %v, want ErrSealed", err)
		}
		other, _ := NewSealedKeys(st, bytes.Repeat([]byte{8}, 32), rand.Reader)
		if _, err := LoadKeys(ctx, other, rand.Reader, now, time.Hour); !errors.Is(err, ErrSealed) {
			t.Errorf("loading with another key-encryption key: %v, want ErrSealed", err)
		}
		if _, err := other.Secret(ctx, "page_token_mac", []byte("x")); !errors.Is(err, ErrSealed) {
			t.Errorf("reading the secret with another key-encryption key: %v, want ErrSealed", err)
		}
	})
}

// A sealed value is bound to its row: moved to another, it does not open.
func TestSealedValuesAreBoundToTheirRow(t *testing.T) {
	s, err := NewSealedKeys(nil, mustKEK(t), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.seal([]byte("der"), "signing_key:a")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.open(v, "signing_key:a"); err != nil || string(got) != "der" {
		t.Fatalf("open: %q, %v", got, err)
	}
	if _, err := s.open(v, "signing_key:b"); !errors.Is(err, ErrSealed) {
		t.Errorf("opened under another row: %v", err)
	}
}

// Keys stored before a key-encryption key was configured are still read,
// and new ones are sealed.
func TestSealedKeysReadKeysStoredInTheClear(t *testing.T) {
	ctx := context.Background()
	st := storetest.MustOpen(t, "sqlite")
	first, err := LoadKeys(ctx, st, rand.Reader, now, time.Hour) // no sealing yet
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := NewSealedKeys(st, mustKEK(t), rand.Reader)
	again, err := LoadKeys(ctx, sealed, rand.Reader, now, time.Hour)
	if err != nil || again.signing.KeyID != first.signing.KeyID {
		t.Fatalf("a clear key under sealing: %v", err)
	}
	k, _ := NewSigningKey(rand.Reader, now)
	if _, err := sealed.AddSigningKey(ctx, k, now); err != nil {
		t.Fatal(err)
	}
	raw, _ := st.SigningKeys(ctx)
	var sealedCount int
	for _, r := range raw {
		if IsSealed(r.PrivateDER) {
			sealedCount++
		}
	}
	if sealedCount != 1 {
		t.Errorf("%d of %d keys sealed, want the new one", sealedCount, len(raw))
	}
	if _, err := ParseKeyEncryptionKey([]byte("c2hvcnQ=")); err == nil {
		t.Error("a short key-encryption key was accepted")
	}
}
