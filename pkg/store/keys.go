package store

import (
	"context"
	"strconv"
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
func (s *Store) AddSigningKey(ctx context.Context, k *domain.SigningKey, ifNoneSince time.Time, events ...*domain.AuditEvent) (bool, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	// The lock row exists before any transaction takes it.
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&lockRow{Name: keysLock}).Error; err != nil {
		return false, classify(err, "signing key")
	}
	added := false
	err := s.transaction(db, func(tx *gorm.DB) error {
		added = false
		if err := s.lock(tx, keysLock); err != nil {
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
		return insertAuditEvents(tx, events)
	})
	return added, classify(err, "signing key")
}

// DeleteSigningKeys implements domain.Keys.
func (s *Store) DeleteSigningKeys(ctx context.Context, ids []string, events ...*domain.AuditEvent) error {
	if len(ids) == 0 {
		return nil
	}
	db, cancel := s.bound(ctx)
	defer cancel()
	return classify(s.transaction(db, func(tx *gorm.DB) error {
		res := tx.Where("id IN ?", ids).Delete(&signingKeyRow{})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		return insertAuditEvents(tx, events)
	}), "signing key")
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

var _ domain.Resealer = (*Store)(nil)

// RewriteSealed implements domain.Resealer: in one transaction holding the
// keysLock row (so no key is added meanwhile), every signing key's private
// key and every server secret is read, passed through rewrite and written
// back. rewrite failing for any value writes none.
func (s *Store) RewriteSealed(ctx context.Context, rewrite func(v domain.SealedValue) ([]byte, error), events ...*domain.AuditEvent) (int, error) {
	// Thousands of rows at most, each rewrite microseconds: the query
	// timeout bounds the whole transaction.
	db, cancel := s.bound(ctx)
	defer cancel()
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&lockRow{Name: keysLock}).Error; err != nil {
		return 0, classify(err, "signing key")
	}
	n := 0
	var rewriteErr error // returned as it is: it says which value and why
	rewriteOne := func(v domain.SealedValue) ([]byte, error) {
		out, err := rewrite(v)
		rewriteErr = err
		return out, err
	}
	err := s.transaction(db, func(tx *gorm.DB) error {
		n, rewriteErr = 0, nil
		if err := s.lock(tx, keysLock); err != nil {
			return err
		}
		var keys []signingKeyRow
		if err := tx.Order("id").Find(&keys).Error; err != nil {
			return err
		}
		for _, k := range keys {
			value, err := rewriteOne(domain.SealedValue{Kind: domain.SealedSigningKey, Name: k.ID, Value: k.PrivateDER})
			if err != nil {
				return err
			}
			if err := tx.Model(&signingKeyRow{}).Where("id = ?", k.ID).Update("private_der", value).Error; err != nil {
				return err
			}
			n++
		}
		var secrets []secretRow
		if err := tx.Order("name").Find(&secrets).Error; err != nil {
			return err
		}
		for _, sec := range secrets {
			value, err := rewriteOne(domain.SealedValue{Kind: domain.SealedSecret, Name: sec.Name, Value: sec.Value})
			if err != nil {
				return err
			}
			if err := tx.Model(&secretRow{}).Where("name = ?", sec.Name).Update("value", value).Error; err != nil {
				return err
			}
			n++
		}
		counted := make([]*domain.AuditEvent, len(events))
		for i, e := range events {
			counted[i] = e.Clean().With("values", strconv.Itoa(n))
		}
		return insertAuditEvents(tx, counted)
	})
	if rewriteErr != nil {
		return 0, rewriteErr
	}
	if err != nil {
		return 0, classify(err, "signing key")
	}
	return n, nil
}

// lock takes the named row of the locks table until tx ends, by writing it
// (see lockUser: a write conflicts across a cluster's nodes). SQLite
// transactions begin IMMEDIATE (see sqliteDSN): they hold the database's
// write lock already.
func (s *Store) lock(tx *gorm.DB, name string) error {
	if s.driver != DriverMySQL {
		return nil
	}
	return tx.Exec("UPDATE locks SET lock_version = lock_version + 1 WHERE name = ?", name).Error
}
