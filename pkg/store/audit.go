package store

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

var _ domain.AuditLog = (*Store)(nil)

// auditEventRow is a row of audit_events. ID orders the rows as written
// (on a cluster each node's ids interleave); Seq, given when the row is
// sealed, is the trail's order.
type auditEventRow struct {
	ID              int64 `gorm:"primaryKey;autoIncrement"`
	Seq             int64
	ChainHash       []byte
	ContentHash     []byte
	Time            time.Time
	Action          string
	Outcome         string
	ActorKind       string
	ActorUserID     string
	ActorUsername   string
	ActorOwnerID    string
	ActorPersonID   string
	ActorTokenID    string
	SubjectUserID   string
	SubjectUsername string
	SubjectOwnerID  string
	SubjectPersonID string
	SubjectTokenID  string
	ClientAddress   string
	UserAgent       string
	RequestID       string
	TraceID         string
	Details         sql.NullString
}

func (auditEventRow) TableName() string { return "audit_events" }

// auditColumns are the columns an insert writes, in auditValues' order.
const auditColumns = "seq, chain_hash, content_hash, time, action, outcome, actor_kind, actor_user_id, actor_username, actor_owner_id, actor_person_id, actor_token_id, " +
	"subject_user_id, subject_username, subject_owner_id, subject_person_id, subject_token_id, client_address, user_agent, request_id, trace_id, details"

const auditColumnCount = 22

// auditValues returns the values of a Clean event for auditColumns.
func auditValues(e *domain.AuditEvent) []any {
	details := sql.NullString{String: e.DetailsJSON()}
	details.Valid = details.String != ""
	return []any{0, unsealedHash, e.ContentHashWith(details.String), e.Time, string(e.Action), string(e.Outcome),
		e.Actor.Kind, e.Actor.UserID, e.Actor.Username, e.Actor.OwnerID, e.Actor.Person(), e.Actor.TokenID,
		e.Subject.UserID, e.Subject.Username, e.Subject.OwnerID, e.Subject.Person(), e.Subject.TokenID,
		e.Origin.ClientAddress, e.Origin.UserAgent, e.Origin.RequestID, e.Origin.TraceID, details}
}

// auditSelect reads every column of auditEventRow, in scanEvents' order.
const auditSelect = "SELECT id, " + auditColumns + " FROM audit_events "

// scanEvents runs a query of auditSelect on db's connection (or
// transaction) and scans its rows: by hand, not through GORM's
// reflection, which cost audit verify twice the time.
func scanEvents(db *gorm.DB, query string, args ...any) ([]auditEventRow, error) {
	return queryEvents(db, func(r *auditEventRow) []any {
		return []any{&r.ID, &r.Seq, &r.ChainHash, &r.ContentHash, &r.Time, &r.Action, &r.Outcome,
			&r.ActorKind, &r.ActorUserID, &r.ActorUsername, &r.ActorOwnerID, &r.ActorPersonID, &r.ActorTokenID,
			&r.SubjectUserID, &r.SubjectUsername, &r.SubjectOwnerID, &r.SubjectPersonID, &r.SubjectTokenID,
			&r.ClientAddress, &r.UserAgent, &r.RequestID, &r.TraceID, &r.Details}
	}, query, args...)
}

// scanSealing reads what sealing needs of up to limit unsealed events:
// not their content, whose hash they carry.
func scanSealing(tx *gorm.DB, limit int) ([]auditEventRow, error) {
	return queryEvents(tx, func(r *auditEventRow) []any { return []any{&r.ID, &r.ContentHash, &r.Action} },
		"SELECT id, content_hash, action FROM audit_events WHERE seq = 0 ORDER BY id LIMIT ?", limit)
}

// queryEvents runs query on db's connection (or transaction) and scans
// each row into the fields of a row that fields names, in the query's order.
func queryEvents(db *gorm.DB, fields func(*auditEventRow) []any, query string, args ...any) ([]auditEventRow, error) {
	rows, err := db.Statement.ConnPool.QueryContext(db.Statement.Context, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []auditEventRow
	for rows.Next() {
		var r auditEventRow
		if err := rows.Scan(fields(&r)...); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// unsealedHash is the chain hash of an event not sealed yet: its
// column's size, so that sealing rewrites it in place.
var unsealedHash = make([]byte, 32)

func (r *auditEventRow) toDomain() *domain.AuditEvent {
	e := &domain.AuditEvent{
		Seq:       r.Seq,
		Time:      r.Time.UTC(),
		Action:    domain.AuditAction(r.Action),
		Outcome:   domain.AuditOutcome(r.Outcome),
		Actor:     domain.AuditParty{Kind: r.ActorKind, UserID: r.ActorUserID, Username: r.ActorUsername, OwnerID: r.ActorOwnerID, TokenID: r.ActorTokenID},
		Subject:   domain.AuditParty{UserID: r.SubjectUserID, Username: r.SubjectUsername, OwnerID: r.SubjectOwnerID, TokenID: r.SubjectTokenID},
		Origin:    domain.Origin{ClientAddress: r.ClientAddress, UserAgent: r.UserAgent, RequestID: r.RequestID, TraceID: r.TraceID},
		ChainHash: r.ChainHash,
	}
	if r.Details.Valid {
		if err := json.Unmarshal([]byte(r.Details.String), &e.Details); err != nil || e.Details == nil {
			// Not what the store writes: keep it as it is, so that it
			// hashes as something else than any event written.
			e.Details = map[string]string{"(unreadable)": r.Details.String}
		}
	}
	return e
}

// statementRows bounds the rows one statement writes: SQLite's driver
// binds each parameter by searching all of them (a statement of 500 rows,
// 11,000 parameters, spent most of its time there); MySQL takes 500 rows
// (under a megabyte) in one packet.
func statementRows(tx *gorm.DB) int {
	if tx.Dialector.Name() == DriverSQLite {
		return 40
	}
	return 500
}

// insertAuditEvents writes events in tx, statementRows at a time. Each is
// Cleaned first, so what is read back hashes as what was written.
func insertAuditEvents(tx *gorm.DB, events []*domain.AuditEvent) error {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", auditColumnCount), ", ") + ")"
	for n := statementRows(tx); len(events) > 0; events = events[min(n, len(events)):] {
		batch := events[:min(n, len(events))]
		var sb strings.Builder
		sb.WriteString("INSERT INTO audit_events (" + auditColumns + ") VALUES ")
		args := make([]any, 0, len(batch)*auditColumnCount)
		for i, e := range batch {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(row)
			args = append(args, auditValues(e.Clean())...)
		}
		// Straight to the connection (or transaction): GORM's own Exec
		// would parse the statement for its placeholders, for nothing.
		if _, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context, sb.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// AppendAuditEvents implements domain.AuditLog.
func (s *Store) AppendAuditEvents(ctx context.Context, events []*domain.AuditEvent) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	return classify(insertAuditEvents(db, events), "audit event")
}

// auditChainRow is the one row of audit_chain: the last sealed event,
// and where the trail starts (retention moves it).
type auditChainRow struct {
	ID          int
	LastSeq     int64
	LastHash    []byte
	FirstSeq    int64
	AnchorHash  []byte
	AnchorJWS   string `gorm:"column:anchor_jws"`
	LockVersion int64
}

func (auditChainRow) TableName() string { return "audit_chain" }

// lockChain takes the chain's row for the transaction (written, so that
// sealers on two nodes of a cluster conflict) and returns it.
func lockChain(tx *gorm.DB) (*auditChainRow, error) {
	if err := tx.Exec("UPDATE audit_chain SET lock_version = lock_version + 1 WHERE id = 1").Error; err != nil {
		return nil, err
	}
	var c auditChainRow
	if err := tx.Where("id = 1").Take(&c).Error; err != nil {
		return nil, err
	}
	return &c, nil
}

// SealAuditEvents implements domain.AuditLog. Sealers on several replicas
// take turns on the chain's row; each seals what it finds unsealed.
func (s *Store) SealAuditEvents(ctx context.Context, limit int, whole bool) ([]*domain.AuditEvent, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var pending []int64
	if err := db.Raw("SELECT id FROM audit_events WHERE seq = 0 LIMIT 1").Scan(&pending).Error; err != nil {
		return nil, classify(err, "audit event")
	}
	if len(pending) == 0 {
		return nil, nil
	}
	var sealed []*domain.AuditEvent
	err := s.transaction(db, func(tx *gorm.DB) error {
		sealed = nil
		chain, err := lockChain(tx)
		if err != nil {
			return err
		}
		var rows []auditEventRow
		if whole {
			rows, err = scanEvents(tx, auditSelect+"WHERE seq = 0 ORDER BY id LIMIT ?", limit)
		} else {
			rows, err = scanSealing(tx, limit)
		}
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		seq, prev := chain.LastSeq, chain.LastHash
		for i := range rows {
			r := &rows[i]
			seq++
			prev = domain.ChainHash(prev, seq, r.ContentHash)
			r.Seq, r.ChainHash = seq, prev
			if whole {
				sealed = append(sealed, r.toDomain())
			} else {
				sealed = append(sealed, &domain.AuditEvent{Seq: seq, Action: domain.AuditAction(r.Action), ChainHash: prev})
			}
		}
		n := statementRows(tx)
		for todo := rows; len(todo) > 0; todo = todo[min(n, len(todo)):] {
			if err := setSeqs(tx, todo[:min(n, len(todo))]); err != nil {
				return err
			}
		}
		return tx.Exec("UPDATE audit_chain SET last_seq = ?, last_hash = ? WHERE id = 1", seq, prev).Error
	})
	if err != nil {
		return nil, classify(err, "audit event")
	}
	return sealed, nil
}

// setSeqs writes the rows' sequence numbers and chain hashes, in one statement.
func setSeqs(tx *gorm.DB, rows []auditEventRow) error {
	var seqCase, hashCase strings.Builder
	args := make([]any, 0, 5*len(rows))
	for _, r := range rows {
		seqCase.WriteString(" WHEN ? THEN ?")
		args = append(args, r.ID, r.Seq)
	}
	for _, r := range rows {
		hashCase.WriteString(" WHEN ? THEN ?")
		args = append(args, r.ID, r.ChainHash)
	}
	for _, r := range rows {
		args = append(args, r.ID)
	}
	in := strings.TrimSuffix(strings.Repeat("?, ", len(rows)), ", ")
	_, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context,
		"UPDATE audit_events SET seq = CASE id"+seqCase.String()+" END, chain_hash = CASE id"+hashCase.String()+" END WHERE id IN ("+in+")", args...)
	return err
}

// auditOrder is the events' order for a query.
func auditOrder(q domain.AuditQuery) string {
	if q.AfterSeq > 0 {
		return "seq"
	}
	return "seq DESC"
}

// ListAuditEvents implements domain.AuditLog. Events visible to a person
// are those of either party: each party's index is read for the page, and
// the two merged.
func (s *Store) ListAuditEvents(ctx context.Context, q domain.AuditQuery) ([]*domain.AuditEvent, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	// Sealed, and up to the chain's head: a row written past it by hand
	// (audit verify names it) is not listed as an event.
	base := db.Model(&auditEventRow{}).Where("seq > 0 AND seq <= (SELECT last_seq FROM audit_chain WHERE id = 1)")
	if q.ActorID != "" {
		base = base.Where("actor_user_id = ?", q.ActorID)
	}
	if q.SubjectUserID != "" {
		base = base.Where("subject_user_id = ?", q.SubjectUserID)
	}
	if q.TokenID != "" {
		base = base.Where("subject_token_id = ?", q.TokenID)
	}
	if q.Action != "" {
		base = base.Where("action = ?", string(q.Action))
	}
	if !q.StartTime.IsZero() {
		base = base.Where("time >= ?", q.StartTime.UTC())
	}
	if !q.EndTime.IsZero() {
		base = base.Where("time < ?", q.EndTime.UTC())
	}
	if q.BeforeSeq > 0 {
		base = base.Where("seq < ?", q.BeforeSeq)
	}
	if q.AfterSeq > 0 {
		base = base.Where("seq > ?", q.AfterSeq)
	}
	find := func(cond string) ([]auditEventRow, error) {
		var rows []auditEventRow
		tx := base.Session(&gorm.Session{})
		if cond != "" {
			tx = tx.Where(cond, q.VisibleTo)
		}
		err := tx.Order(auditOrder(q)).Limit(q.Limit).Find(&rows).Error
		return rows, err
	}
	var rows []auditEventRow
	if q.VisibleTo == "" {
		r, err := find("")
		if err != nil {
			return nil, classify(err, "audit event")
		}
		rows = r
	} else {
		actor, subject := "actor_user_id = ?", "subject_user_id = ?"
		if q.VisibleToPerson {
			actor, subject = "actor_person_id = ?", "subject_person_id = ?"
		}
		for _, cond := range []string{actor, subject} {
			r, err := find(cond)
			if err != nil {
				return nil, classify(err, "audit event")
			}
			rows = append(rows, r...)
		}
		slices.SortFunc(rows, func(a, b auditEventRow) int {
			if q.AfterSeq > 0 {
				return cmp.Compare(a.Seq, b.Seq)
			}
			return cmp.Compare(b.Seq, a.Seq)
		})
		rows = slices.CompactFunc(rows, func(a, b auditEventRow) bool { return a.Seq == b.Seq })
		if len(rows) > q.Limit {
			rows = rows[:q.Limit]
		}
	}
	out := make([]*domain.AuditEvent, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// AuditChain implements domain.AuditTrail.
func (s *Store) AuditChain(ctx context.Context) (domain.AuditChain, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var c auditChainRow
	if err := db.Where("id = 1").Take(&c).Error; err != nil {
		return domain.AuditChain{}, classify(err, "audit chain")
	}
	return domain.AuditChain{FirstSeq: c.FirstSeq, AnchorHash: c.AnchorHash, AnchorJWS: c.AnchorJWS, LastSeq: c.LastSeq, LastHash: c.LastHash}, nil
}

// AuditEventsFrom implements domain.AuditTrail: sealed events from seq
// on, oldest first, as stored, whatever their order by seq says.
func (s *Store) AuditEventsFrom(ctx context.Context, seq int64, limit int) ([]*domain.AuditEvent, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	rows, err := scanEvents(db, auditSelect+"WHERE seq >= ? ORDER BY seq LIMIT ?", seq, limit)
	if err != nil {
		return nil, classify(err, "audit event")
	}
	out := make([]*domain.AuditEvent, len(rows))
	for i := range rows {
		out[i] = rows[i].toDomain()
	}
	return out, nil
}

// auditCheckpointRow is a row of audit_checkpoints.
type auditCheckpointRow struct {
	Seq       int64 `gorm:"primaryKey;autoIncrement:false"`
	ChainHash []byte
	Time      time.Time
	JWS       string `gorm:"column:jws"`
}

func (auditCheckpointRow) TableName() string { return "audit_checkpoints" }

// AddAuditCheckpoint implements domain.AuditTrail. A checkpoint of a
// sequence number that has one already is ignored: replicas write them
// independently.
func (s *Store) AddAuditCheckpoint(ctx context.Context, c domain.AuditCheckpoint) error {
	db, cancel := s.bound(ctx)
	defer cancel()
	r := &auditCheckpointRow{Seq: c.Seq, ChainHash: c.ChainHash, Time: c.Time.UTC(), JWS: c.JWS}
	return classify(db.Clauses(clause.OnConflict{DoNothing: true}).Create(r).Error, "audit checkpoint")
}

// AuditCheckpoints implements domain.AuditTrail.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]domain.AuditCheckpoint, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var rows []auditCheckpointRow
	if err := db.Order("seq").Find(&rows).Error; err != nil {
		return nil, classify(err, "audit checkpoint")
	}
	out := make([]domain.AuditCheckpoint, len(rows))
	for i, r := range rows {
		out[i] = domain.AuditCheckpoint{Seq: r.Seq, ChainHash: r.ChainHash, Time: r.Time.UTC(), JWS: r.JWS}
	}
	return out, nil
}

// LastAuditCheckpoint implements domain.AuditTrail.
func (s *Store) LastAuditCheckpoint(ctx context.Context, atMost int64) (domain.AuditCheckpoint, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var rows []auditCheckpointRow
	if err := db.Where("seq <= ?", atMost).Order("seq DESC").Limit(1).Find(&rows).Error; err != nil {
		return domain.AuditCheckpoint{}, classify(err, "audit checkpoint")
	}
	if len(rows) == 0 {
		return domain.AuditCheckpoint{}, nil
	}
	r := rows[0]
	return domain.AuditCheckpoint{Seq: r.Seq, ChainHash: r.ChainHash, Time: r.Time.UTC(), JWS: r.JWS}, nil
}

// TrimAuditEvents implements domain.AuditTrail. It deletes, from the
// start of the trail, up to limit events written before cutoff, and
// moves the anchor past them; it stops at the first event of cutoff or
// later, and deletes nothing of a stretch whose chain does not verify
// (that is evidence, for audit verify).
func (s *Store) TrimAuditEvents(ctx context.Context, cutoff time.Time, limit int, sign func(firstSeq int64, anchorHash []byte) (string, error)) (int, error) {
	db, cancel := s.bound(ctx)
	defer cancel()
	var deleted int
	err := s.transaction(db, func(tx *gorm.DB) error {
		deleted = 0
		chain, err := lockChain(tx)
		if err != nil {
			return err
		}
		var rows []auditEventRow
		if err := tx.Where("seq >= ?", chain.FirstSeq).Order("seq").Limit(limit).Find(&rows).Error; err != nil {
			return err
		}
		prev, last := chain.AnchorHash, chain.FirstSeq-1
		for i := range rows {
			r := &rows[i]
			if !r.Time.Before(cutoff) {
				break
			}
			want := domain.ChainHash(prev, last+1, r.toDomain().ContentHash())
			if r.Seq != last+1 || !bytes.Equal(want, r.ChainHash) {
				return fmt.Errorf("%w at sequence number %d", domain.ErrAuditChainBroken, last+1)
			}
			prev, last = r.ChainHash, r.Seq
			deleted++
		}
		if deleted == 0 {
			return nil
		}
		if err := tx.Exec("DELETE FROM audit_events WHERE seq >= ? AND seq <= ?", chain.FirstSeq, last).Error; err != nil {
			return err
		}
		if err := tx.Exec("DELETE FROM audit_checkpoints WHERE seq <= ?", last).Error; err != nil {
			return err
		}
		jws, err := sign(last+1, prev)
		if err != nil {
			return err
		}
		return tx.Exec("UPDATE audit_chain SET first_seq = ?, anchor_hash = ?, anchor_jws = ? WHERE id = 1", last+1, prev, jws).Error
	})
	if err != nil {
		return 0, classify(err, "audit event")
	}
	return deleted, nil
}
