package auth

import (
	"context"
	"io"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// LoadKeys reads the signing keys from the store, creating the first one if
// there is none, and returns them as they are at now (see NewKeySet): what
// KeyRing.Load does, as a value the tests can hold.
func LoadKeys(ctx context.Context, store domain.Keys, rnd io.Reader, now time.Time, verifyFor time.Duration) (*KeySet, error) {
	keys, err := loadKeys(ctx, store, rnd, now, domain.AuditParty{})
	if err != nil {
		return nil, err
	}
	return NewKeySet(keys, now, verifyFor)
}
