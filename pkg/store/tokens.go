package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// CreateToken implements domain.Tokens. The token is inserted in a
// transaction that holds its user's row: the quota is checked there, so
// concurrent creates cannot pass it together, and a user being deleted
// cannot leave it behind.
func (s *Store) CreateToken(ctx context.Context, t *domain.Token, maxLive int, events ...*domain.AuditEvent) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	release, err := s.takeUserTurn(db, t.UserID)
	if err != nil {
		return classify(err, "token")
	}
	defer release()
	err = s.transaction(db, func(tx *gorm.DB) error {
		// The events first: they need no lock, and written while the
		// user's row is held they made every create of one user wait one
		// more round trip for the others (a quarter of the throughput).
		if err := insertAuditEvents(tx, events); err != nil {
			return err
		}
		if err := s.lockUser(tx, t.UserID); err != nil {
			return err
		}
		if maxLive > 0 {
			var n int64
			err := tx.Model(&tokenRow{}).
				Where("user_id = ? AND delete_time IS NULL AND (expire_time IS NULL OR expire_time > ?)", t.UserID, t.CreateTime.UTC()).
				Count(&n).Error
			if err != nil {
				return err
			}
			if n >= int64(maxLive) {
				return domain.ErrLimitReached
			}
		}
		return tx.Create(tokenToRow(t)).Error
	})
	return classify(err, "token")
}

// TokenByID implements domain.Tokens.
func (s *Store) TokenByID(ctx context.Context, id string) (*domain.Token, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var r tokenRow
	if err := db.Where("id = ?", id).Take(&r).Error; err != nil {
		return nil, classify(err, "token")
	}
	return r.toDomain(), nil
}

// FreshTokenByID implements domain.Tokens: the store has no cache.
func (s *Store) FreshTokenByID(ctx context.Context, id string) (*domain.Token, error) {
	return s.TokenByID(ctx, id)
}

// CurrentTokenByID implements domain.Tokens: the store has no cache.
func (s *Store) CurrentTokenByID(ctx context.Context, id string) (*domain.Token, error) {
	return s.TokenByID(ctx, id)
}

// RotateSecret implements domain.Tokens.
func (s *Store) RotateSecret(ctx context.Context, id string, fromGeneration int, hash []byte, previousUntil, now time.Time, events ...*domain.AuditEvent) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	// GORM writes a map's columns in name order, and MySQL assigns left
	// to right: previous_secret_hash takes the old secret_hash before
	// secret_hash changes (SQL's own rule, and SQLite's, reads old values
	// throughout). TestRotateSecret checks both. The generation makes it a
	// compare-and-swap: a caller who read the token before another
	// rotation (a replica's stale cache) rotates nothing.
	var rotated int64
	err := s.transaction(db, func(tx *gorm.DB) error {
		res := tx.Model(&tokenRow{}).
			Where("id = ? AND secret_generation = ? AND delete_time IS NULL AND (expire_time IS NULL OR expire_time > ?)", id, fromGeneration, now.UTC()).
			Updates(map[string]any{
				"previous_secret_hash":        gorm.Expr("secret_hash"),
				"previous_secret_expire_time": nullTime(previousUntil),
				"secret_hash":                 hash,
				"secret_generation":           gorm.Expr("secret_generation + 1"),
			})
		rotated = res.RowsAffected
		if res.Error != nil || rotated == 0 {
			return res.Error
		}
		if err := insertAuditEvents(tx, events); err != nil {
			return err
		}
		return recordChanges(tx, domain.ChangedToken, id)
	})
	if err != nil {
		return classify(err, "token")
	}
	if rotated == 1 {
		return nil
	}
	var live int64
	err = db.Model(&tokenRow{}).
		Where("id = ? AND delete_time IS NULL AND (expire_time IS NULL OR expire_time > ?)", id, now.UTC()).
		Count(&live).Error
	switch {
	case err != nil:
		return classify(err, "token")
	case live > 0:
		return domain.ErrSecretChanged
	}
	return domain.Errorf(domain.KindNotFound, "token not found")
}

// EndGrace implements domain.Tokens.
func (s *Store) EndGrace(ctx context.Context, id string, generation int, events ...*domain.AuditEvent) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	err := s.transaction(db, func(tx *gorm.DB) error {
		res := tx.Model(&tokenRow{}).
			Where("id = ? AND secret_generation = ? AND previous_secret_hash IS NOT NULL", id, generation).
			Updates(map[string]any{"previous_secret_hash": nil, "previous_secret_expire_time": nil})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		if err := insertAuditEvents(tx, events); err != nil {
			return err
		}
		return recordChanges(tx, domain.ChangedToken, id)
	})
	return classify(err, "token")
}

// CountExpiring implements domain.Tokens; the tokens_expire_time index serves it.
func (s *Store) CountExpiring(ctx context.Context, from, to time.Time) (int64, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var n int64
	err := db.Model(&tokenRow{}).
		Where("expire_time >= ? AND expire_time < ? AND delete_time IS NULL", from.UTC(), to.UTC()).
		Count(&n).Error
	return n, classify(err, "token")
}

// ListTokens implements domain.Tokens with keyset pagination on
// (create_time, id), which the tokens_list index serves; no OFFSET.
func (s *Store) ListTokens(ctx context.Context, q domain.TokenQuery) ([]*domain.Token, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	db = db.
		Where("user_id = ? AND delete_time IS NULL AND (expire_time IS NULL OR expire_time > ?)", q.UserID, q.Now.UTC())
	if !q.ExpireBefore.IsZero() {
		db = db.Where("expire_time < ?", q.ExpireBefore.UTC())
	}
	db, order := keyset(db, q.After, q.Reverse)
	var rows []tokenRow
	if err := db.Order(order).Limit(q.Limit).Find(&rows).Error; err != nil {
		return nil, classify(err, "token")
	}
	tokens := make([]*domain.Token, len(rows))
	for i := range rows {
		tokens[i] = rows[i].toDomain()
	}
	return tokens, nil
}

// DeleteToken implements domain.Tokens.
func (s *Store) DeleteToken(ctx context.Context, id string, at time.Time, events ...*domain.AuditEvent) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	var deleted int64
	err := s.transaction(db, func(tx *gorm.DB) error {
		res := tx.Model(&tokenRow{}).
			Where("id = ? AND delete_time IS NULL", id).
			Update("delete_time", at.UTC())
		deleted = res.RowsAffected
		if res.Error != nil || deleted == 0 {
			return res.Error
		}
		if err := insertAuditEvents(tx, events); err != nil {
			return err
		}
		return recordChanges(tx, domain.ChangedToken, id)
	})
	if err != nil {
		return classify(err, "token")
	}
	if deleted == 0 {
		// Already deleted (keep its first delete time) or no such token.
		_, err := s.TokenByID(ctx, id)
		return err
	}
	return nil
}

// keyset continues a (create_time, id) ordered listing after the cursor and
// returns the ORDER BY that goes with it.
func keyset(db *gorm.DB, after *domain.Cursor, reverse bool) (*gorm.DB, string) {
	cmp, dir := ">", "ASC"
	if reverse {
		cmp, dir = "<", "DESC"
	}
	if after != nil {
		// "(create_time, id) after the cursor", spelt so that both SQLite
		// and MySQL start an index range scan at the cursor: the first
		// condition alone is a range on the listing's index; with only the
		// OR, SQLite scanned the user's tokens from the start (page 1,000 of
		// 100,000 cost 55 times page 1).
		at := after.CreateTime.UTC()
		db = db.Where("create_time "+cmp+"= ? AND (create_time "+cmp+" ? OR id "+cmp+" ?)", at, at, after.ID)
	}
	return db, "create_time " + dir + ", id " + dir
}

// lastUsedBatch bounds the ids in one UPDATE.
const lastUsedBatch = 500

// WriteLastUsed implements domain.LastUsedWriter: it sets each token's
// last-used time, never moving one back in time, with one UPDATE per
// distinct time and batch of ids, all in one transaction.
func (s *Store) WriteLastUsed(ctx context.Context, uses map[string]time.Time) error {
	byTime := map[time.Time][]string{}
	for id, at := range uses {
		at = at.UTC()
		byTime[at] = append(byTime[at], id)
	}
	db, cancel := s.bound(ctx)
	defer cancel()
	err := s.transaction(db, func(tx *gorm.DB) error {
		for at, ids := range byTime {
			for len(ids) > 0 {
				n := min(len(ids), lastUsedBatch)
				err := tx.Model(&tokenRow{}).
					Where("id IN ? AND (last_used_time IS NULL OR last_used_time < ?)", ids[:n], at).
					Update("last_used_time", at).Error
				if err != nil {
					return err
				}
				ids = ids[n:]
			}
		}
		return nil
	})
	return classify(err, "token")
}
