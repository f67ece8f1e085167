package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
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

// lastUsedChunk bounds the tokens one last-used statement, and so one
// transaction, writes. A flush of up to that many tokens (MaxPending in
// pkg/lastused is 100,000; 40,000 distinct tokens a flush interval is the
// scale issue 22 measures) is one statement whatever the number of tokens
// or of distinct times; a bigger one is one statement per chunk, each its
// own transaction. The bound is for Galera: a transaction's write set is
// certified and applied on every node as one unit, and a causal read
// (wsrep_sync_wait) on another node waits until it is applied, so an
// unbounded write set would stall requests cluster-wide while it applies
// (a 40,000-token UPDATE took 0.15 to 0.7 s on a single, busy MariaDB 10.11:
// BenchmarkWriteLastUsed; how long a node takes to apply 25,000 rows was
// not measured). It also keeps the statement (its JSON argument
// interpolated, about 48 bytes a token) well inside max_allowed_packet
// (16 MiB by default).
const lastUsedChunk = 25_000

// The last-used UPDATE joins tokens against ONE parameter, a JSON document
// of the uses, instead of one UPDATE per distinct time and batch of 500 ids
// (issue 22 part 3: at 40,000 distinct tokens those cost 35% of exchange
// throughput). It sets a time only where the stored one is NULL or older,
// so a flush never moves a time back, whichever replica's batch commits
// last. The JSON times are spelt as each driver binds a time.Time, so the
// comparison and the stored value are what an UPDATE with a time argument
// makes them: MariaDB/MySQL parse them into the DATETIME(6) column type;
// SQLite keeps times as text (glebarez/go-sqlite's
// "2006-01-02 15:04:05.999999999-07:00", UTC, so text order is time order)
// and compares them as text.
//
// Each driver gets the document shape it reads fastest (40,000 tokens over
// 30 distinct seconds, on the test machine):
//   - MySQL/MariaDB: [[id, time], ...], in the order of the ids, through
//     JSON_TABLE (MySQL 8.0.4+, MariaDB 10.6+; not TiDB), 0.15 s in the
//     mariadb client (0.47 s in random order); the same ids grouped by
//     time under a NESTED PATH took 1.1 s on MariaDB 10.11.
//   - SQLite: {time: [id, ...], ...} through json_each and UPDATE ... FROM
//     (SQLite 3.33+), 0.09 s: the time is the outer json_each's key, a
//     plain column; reading it out of each group's array (value ->> 0) made
//     SQLite parse the group again for every id, 1.0 s, and a flat array of
//     pairs took 0.3 s.
//
// Both plans read the document's rows and look each token up by primary
// key (EXPLAIN: eq_ref on PRIMARY; SEARCH tokens USING INDEX
// sqlite_autoindex_tokens_1). The ids are compared in the table's own
// collation (utf8mb4_bin) so that MySQL can use the key. STRAIGHT_JOIN
// and FORCE INDEX keep that plan: MariaDB estimates JSON_TABLE at 40 rows,
// and with the table's statistics stale (a table just filled, as the
// benchmark's, counted a handful of rows) it put tokens first and read the
// whole document again for every token (EXPLAIN: t ALL, then j ALL), or,
// with the document first, scanned tokens for every id: 40,000 times
// 40,000 rows, past the query timeout (the benchmark failed so, once).
const (
	lastUsedMySQL = "UPDATE JSON_TABLE(?, '$[*]' COLUMNS (" +
		"id VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[0]', " +
		"at DATETIME(6) PATH '$[1]')) j " +
		"STRAIGHT_JOIN tokens t FORCE INDEX (PRIMARY) ON t.id = j.id " +
		"SET t.last_used_time = j.at " +
		"WHERE t.last_used_time IS NULL OR t.last_used_time < j.at"
	lastUsedSQLite = "UPDATE tokens SET last_used_time = j.at " +
		"FROM (SELECT g.key AS at, i.value AS id FROM json_each(?) g, json_each(g.value) i) j " +
		"WHERE tokens.id = j.id AND (tokens.last_used_time IS NULL OR tokens.last_used_time < j.at)"
	// sqliteTimeFormat is how glebarez/go-sqlite writes a time.Time.
	sqliteTimeFormat = "2006-01-02 15:04:05.999999999-07:00"
	mysqlTimeFormat  = "2006-01-02 15:04:05.999999"
)

// WriteLastUsed implements domain.LastUsedWriter: it sets each token's
// last-used time (kept to the microsecond, the column's precision), never
// moving one back in time, in one statement per lastUsedChunk tokens, each
// in a transaction of its own (a lost conflict runs that chunk again; the
// chunks written before a failure stay written, and writing them again is
// harmless). Unknown ids are ignored. On a MySQL server without JSON_TABLE
// (the first flush finds out), it writes as before issue 22 part 3.
func (s *Store) WriteLastUsed(ctx context.Context, uses map[string]time.Time) error {
	if len(uses) == 0 {
		return nil
	}
	if s.noJSONTable.Load() {
		db, cancel := s.bound(ctx)
		defer cancel()
		return classify(s.writeLastUsedPerTime(db, uses), "token")
	}
	query, docs := lastUsedMySQL, lastUsedPairs(uses, lastUsedChunk)
	if s.driver == DriverSQLite {
		query, docs = lastUsedSQLite, lastUsedByTime(uses, lastUsedChunk)
	}
	for _, doc := range docs {
		// Each chunk has the query timeout of its own: a flush of
		// MaxPending tokens is four chunks, and under load the four
		// together could outlast one timeout, fail, and come back
		// bigger at the next flush.
		db, cancel := s.bound(ctx)
		err := s.transaction(db, func(tx *gorm.DB) error {
			return tx.Exec(query, doc).Error
		})
		if s.driver == DriverMySQL && unsupported(err) {
			// A server without JSON_TABLE (MySQL before 8.0.4,
			// MariaDB before 10.6, TiDB): the statements of old
			// from now on; the chunks written stay written.
			s.noJSONTable.Store(true)
			err = s.writeLastUsedPerTime(db, uses)
			cancel()
			return classify(err, "token")
		}
		cancel()
		if err != nil {
			return classify(err, "token")
		}
	}
	return nil
}

// unsupported reports whether err is the server not knowing the SQL: a
// syntax error (1064) or an unknown function (1305).
func unsupported(err error) bool {
	var myErr *mysqldriver.MySQLError
	return errors.As(err, &myErr) && (myErr.Number == 1064 || myErr.Number == 1305)
}

// lastUsedBatch bounds the ids in one UPDATE of writeLastUsedPerTime.
const lastUsedBatch = 500

// writeLastUsedPerTime is WriteLastUsed for a server without JSON_TABLE:
// one UPDATE per distinct time and lastUsedBatch ids, all in one
// transaction, as before issue 22 part 3 (40,000 tokens over 30 distinct
// seconds: 90 statements, 2 s on MariaDB 10.11).
func (s *Store) writeLastUsedPerTime(db *gorm.DB, uses map[string]time.Time) error {
	byTime := map[time.Time][]string{}
	for id, at := range uses {
		at = at.UTC()
		byTime[at] = append(byTime[at], id)
	}
	return s.transaction(db, func(tx *gorm.DB) error {
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
}

// lastUsedPairs spells uses as JSON documents [[id, time], ...] of at most
// chunk ids each, the times UTC in MySQL's format, in the order of the ids.
// The UPDATE visits the rows in the document's order: in the primary key's
// order InnoDB wrote 40,000 of them in 0.15 s, in the map's (random) order
// 0.47 s; and two replicas' flushes over the same tokens take the rows'
// locks in the same order, so they wait for one another rather than
// deadlock.
func lastUsedPairs(uses map[string]time.Time, chunk int) []string {
	ids := make([]string, 0, len(uses))
	for id := range uses {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var docs []string
	b := make([]byte, 0, min(len(uses), chunk)*48+2)
	n := 0
	for _, id := range ids {
		at := uses[id]
		if n == chunk {
			docs = append(docs, string(append(b, ']')))
			b, n = b[:0], 0
		}
		if n == 0 {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendJSONString(b, id)
		b = append(b, ',', '"')
		b = at.UTC().Truncate(time.Microsecond).AppendFormat(b, mysqlTimeFormat)
		b = append(b, '"', ']')
		n++
	}
	if n > 0 {
		docs = append(docs, string(append(b, ']')))
	}
	return docs
}

// lastUsedByTime spells uses as JSON documents {time: [id, ...], ...} of
// at most chunk ids each, the times UTC in SQLite's format: a time's ids
// split between documents appear under it in each.
func lastUsedByTime(uses map[string]time.Time, chunk int) []string {
	byTime := map[time.Time][]string{}
	for id, at := range uses {
		at = at.UTC().Truncate(time.Microsecond)
		byTime[at] = append(byTime[at], id)
	}
	times := make([]time.Time, 0, len(byTime))
	for at := range byTime {
		times = append(times, at)
	}
	slices.SortFunc(times, time.Time.Compare)
	for _, ids := range byTime {
		slices.Sort(ids) // the rows in key order, as in lastUsedPairs
	}
	var docs []string
	var b []byte
	n := 0
	for _, at := range times {
		ids := byTime[at]
		for len(ids) > 0 {
			if n == chunk {
				docs = append(docs, string(append(b, '}')))
				b, n = b[:0], 0
			}
			if n == 0 {
				b = append(b, '{')
			} else {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = at.AppendFormat(b, sqliteTimeFormat)
			b = append(b, '"', ':', '[')
			k := min(len(ids), chunk-n)
			for i, id := range ids[:k] {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, id)
			}
			b = append(b, ']')
			ids, n = ids[k:], n+k
		}
	}
	if n > 0 {
		docs = append(docs, string(append(b, '}')))
	}
	return docs
}

// appendJSONString appends s as a JSON string: the store's ids need no
// escaping; anything else goes through encoding/json (and, if it is not
// a token's id, matches no row).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
