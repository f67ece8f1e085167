package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// SigningKeys implements domain.Keys.
func (s *Store) SigningKeys(ctx context.Context) ([]*domain.SigningKey, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var rows []signingKeyRow
	if err := db.Order("create_time, id").Find(&rows).Error; err != nil {
		return nil, classify(err, "signing key")
	}
	keys := make([]*domain.SigningKey, len(rows))
	for i, r := range rows {
		keys[i] = &domain.SigningKey{ID: r.ID, Algorithm: r.Algorithm, PrivateDER: r.PrivateDER,
			CreateTime: r.CreateTime.UTC(), ActivateTime: fromNullTime(r.ActivateTime)}
	}
	return keys, nil
}

// keysLock is the row of the locks table that AddSigningKey holds, so that
// replicas adding keys at once take turns.
const keysLock = "signing_keys"

// AddSigningKey implements domain.Keys: in one transaction holding the
// keysLock row, it adds k unless a key created after ifNoneSince exists.
func (s *Store) AddSigningKey(ctx context.Context, k *domain.SigningKey, ifNoneSince time.Time) (bool, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	// The lock row exists before any transaction takes it.
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&lockRow{Name: keysLock}).Error; err != nil {
		return false, classify(err, "signing key")
	}
	added := false
	err := db.Transaction(func(tx *gorm.DB) error {
		lock := "SELECT name FROM locks WHERE name = ?"
		if s.driver == DriverMySQL {
			lock += " FOR UPDATE"
		}
		var held []string
		if err := tx.Raw(lock, keysLock).Scan(&held).Error; err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&signingKeyRow{}).Where("create_time > ?", ifNoneSince.UTC()).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		row := &signingKeyRow{ID: k.ID, Algorithm: k.Algorithm, PrivateDER: k.PrivateDER,
			CreateTime: k.CreateTime.UTC(), ActivateTime: nullTime(k.ActivateTime)}
		if err := tx.Create(row).Error; err != nil {
			return err
		}
		added = true
		return nil
	})
	return added, classify(err, "signing key")
}

// DeleteSigningKeys implements domain.Keys.
func (s *Store) DeleteSigningKeys(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	db, cancel := s.bound(ctx)
	defer cancel()
	return classify(db.Where("id IN ?", ids).Delete(&signingKeyRow{}).Error, "signing key")
}

// Secret implements domain.Keys: insert-if-absent, then read back whichever
// value won.
func (s *Store) Secret(ctx context.Context, name string, value []byte) ([]byte, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&secretRow{Name: name, Value: value}).Error; err != nil {
		return nil, classify(err, "secret")
	}
	var r secretRow
	if err := db.Where("name = ?", name).Take(&r).Error; err != nil {
		return nil, classify(err, "secret")
	}
	return r.Value, nil
}
