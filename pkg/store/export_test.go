package store

import (
	"testing"
	"time"

	"gorm.io/gorm"
)

// CountStatements counts the statements s sends from now on, through
// every GORM processor (a transaction's BEGIN and COMMIT are not counted).
func CountStatements(tb testing.TB, s *Store) func() int {
	tb.Helper()
	n := 0
	count := func(*gorm.DB) { n++ }
	cb := s.db.Callback()
	name := "test:count_statements"
	for _, err := range []error{
		cb.Create().After("gorm:create").Register(name, count),
		cb.Query().After("gorm:query").Register(name, count),
		cb.Update().After("gorm:update").Register(name, count),
		cb.Delete().After("gorm:delete").Register(name, count),
		cb.Row().After("gorm:row").Register(name, count),
		cb.Raw().After("gorm:raw").Register(name, count),
	} {
		if err != nil {
			tb.Fatal(err)
		}
	}
	return func() int { return n }
}

// InsertTokens inserts bare tokens of userID with ids, fast (many rows a
// statement), for tests of scale.
func InsertTokens(tb testing.TB, s *Store, userID string, ids []string, created time.Time) {
	tb.Helper()
	rows := make([]tokenRow, len(ids))
	for i, id := range ids {
		rows[i] = tokenRow{ID: id, UserID: userID, SecretHash: make([]byte, 32), CreateTime: created}
	}
	// SQLite allows 32,766 variables a statement: 11 columns a row.
	if err := s.db.CreateInBatches(rows, 2000).Error; err != nil {
		tb.Fatal(err)
	}
}

// LastUsedChunk is lastUsedChunk, for tests.
const LastUsedChunk = lastUsedChunk

// LastUsedTimes returns every token's last-used time (zero: none).
func LastUsedTimes(tb testing.TB, s *Store) map[string]time.Time {
	tb.Helper()
	var rows []tokenRow
	if err := s.db.Select("id", "last_used_time").Find(&rows).Error; err != nil {
		tb.Fatal(err)
	}
	got := make(map[string]time.Time, len(rows))
	for _, r := range rows {
		got[r.ID] = fromNullTime(r.LastUsedTime)
	}
	return got
}

// WithoutJSONTable makes s write last-used times as for a server without
// JSON_TABLE.
func WithoutJSONTable(s *Store) { s.noJSONTable.Store(true) }
