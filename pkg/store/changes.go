package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

var _ domain.Changes = (*Store)(nil)

// changeRow is a row of changes, the feed every replica follows to drop
// what it cached of a credential that ended or narrowed (domain.Changes).
type changeRow struct {
	Seq  int64     `gorm:"primaryKey;autoIncrement:false"`
	Kind string    `gorm:"size:24;not null"`
	Ref  string    `gorm:"size:64;not null"`
	Time time.Time `gorm:"not null;precision:6;index:changes_time"`
}

func (changeRow) TableName() string { return "changes" }

// recordChanges appends a change of kind for each of ids in tx. It must be
// the transaction's last write: it updates the one row of change_sequence,
// which every such transaction updates, so they commit one at a time, in
// the order of their sequence numbers, and a reader never sees a number
// before a smaller one. (Auto-increment ids would not do: an id is taken at
// the insert, and a transaction holding a smaller one can commit after a
// reader saw a larger one, which the reader's cursor would then pass over.)
// The row is held from this update to the commit: a moment.
func recordChanges(tx *gorm.DB, kind domain.ChangeKind, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := tx.Exec("UPDATE change_sequence SET seq = seq + ? WHERE id = 1", len(ids)).Error; err != nil {
		return err
	}
	var last int64
	if err := tx.Raw("SELECT seq FROM change_sequence WHERE id = 1").Scan(&last).Error; err != nil {
		return err
	}
	at := time.Now().UTC()
	rows := make([]changeRow, len(ids))
	first := last - int64(len(ids)) + 1
	for i, id := range ids {
		rows[i] = changeRow{Seq: first + int64(i), Kind: string(kind), Ref: id, Time: at}
	}
	return tx.CreateInBatches(rows, statementRows(tx)).Error
}

// LastChange implements domain.Changes.
func (s *Store) LastChange(ctx context.Context) (int64, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var last int64
	err := db.Raw("SELECT seq FROM change_sequence WHERE id = 1").Scan(&last).Error
	return last, classify(err, "change")
}

// ChangesAfter implements domain.Changes: one range read of the primary key.
func (s *Store) ChangesAfter(ctx context.Context, seq int64, limit int) ([]domain.Change, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	rows, err := db.Statement.ConnPool.QueryContext(db.Statement.Context,
		"SELECT seq, kind, ref FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", seq, limit)
	if err != nil {
		return nil, classify(err, "change")
	}
	defer rows.Close()
	var out []domain.Change
	for rows.Next() {
		var c domain.Change
		if err := rows.Scan(&c.Seq, &c.Kind, &c.ID); err != nil {
			return nil, classify(err, "change")
		}
		out = append(out, c)
	}
	return out, classify(rows.Err(), "change")
}

// PruneChanges implements domain.Changes.
func (s *Store) PruneChanges(ctx context.Context, cutoff time.Time) (int64, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var n int64
	err := s.transaction(db, func(tx *gorm.DB) error {
		res := tx.Where("time < ?", cutoff.UTC()).Delete(&changeRow{})
		n = res.RowsAffected
		return res.Error
	})
	return n, classify(err, "change")
}
