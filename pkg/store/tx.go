package store

import (
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

// A transaction that lost a conflict runs again after a pause that starts
// at conflictBackoff and doubles up to maxConflictBackoff, with jitter, for
// as long as its deadline leaves time (every store call has one: the query
// timeout), and at most transactionAttempts times. Under a burst of writes
// to one row from every node of a cluster (120 creates for one user at
// once, as TestQuotasHoldAcrossNodes makes), an unlucky transaction can
// lose a dozen rounds in a row: giving up after a fixed dozen failed about
// one run in 40; the deadline is the bound that matters to the caller.
const (
	transactionAttempts = 100
	conflictBackoff     = 2 * time.Millisecond
	maxConflictBackoff  = 100 * time.Millisecond
)

// transaction runs fn in a transaction, and runs it again, after a short
// pause, when it lost a conflict: a deadlock, or, on a multi-primary
// cluster (Galera), a certification failure, which the server reports as a
// deadlock (1213) at any statement or at commit. fn must set what it
// returns afresh each time it runs. Any other error, or the last attempt's
// (its deadline too near for another, or the attempts spent), is returned
// as it is.
func (s *Store) transaction(db *gorm.DB, fn func(tx *gorm.DB) error) error {
	s.txStats.begun.Add(1)
	ctx := db.Statement.Context
	backoff := conflictBackoff
	for attempt := 1; ; attempt++ {
		err := db.Transaction(fn)
		if errors.Is(err, sql.ErrTxDone) && ctx != nil && ctx.Err() != nil {
			// database/sql rolled the transaction back when its deadline
			// passed between statements, and the commit said so: the
			// database did not answer in time.
			return ctx.Err()
		}
		if err == nil || !lostConflict(err) {
			return err
		}
		s.txStats.conflicts.Add(1)
		pause := backoff/2 + rand.N(backoff)
		if attempt == transactionAttempts || !timeLeft(db, pause) || !sleep(ctx, pause) {
			s.txStats.gaveUp.Add(1)
			return err
		}
		backoff = min(2*backoff, maxConflictBackoff)
	}
}

// sleep pauses for d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	if ctx == nil {
		time.Sleep(d)
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// timeLeft reports whether db's context leaves time for a pause and one
// more attempt (the pause again).
func timeLeft(db *gorm.DB, pause time.Duration) bool {
	ctx := db.Statement.Context
	if ctx == nil {
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) > 2*pause
}

// lostConflict reports whether err is a transaction's lost conflict with
// another: a deadlock (on Galera, also a certification failure), a lock
// wait timeout, or TiDB's write conflict (9007, its optimistic mode's
// answer at commit; its default pessimistic mode answers 1213 and 1205).
func lostConflict(err error) bool {
	var myErr *mysqldriver.MySQLError
	return errors.As(err, &myErr) && conflictErrors[myErr.Number]
}

var conflictErrors = map[uint16]bool{
	1205: true, // ER_LOCK_WAIT_TIMEOUT
	1213: true, // ER_LOCK_DEADLOCK, and Galera's certification failure
	9007: true, // TiDB's ErrWriteConflict
}

// TransactionStats counts the store's write transactions since it opened.
type TransactionStats struct {
	Begun     uint64 // write transactions, each counted once however often it ran
	Conflicts uint64 // attempts that lost a conflict (each one ran again, or gave up)
	GaveUp    uint64 // transactions that lost a conflict on every attempt
}

type txCounters struct{ begun, conflicts, gaveUp atomic.Uint64 }

// TransactionStats returns the counts so far: on a multi-primary cluster,
// Conflicts over Begun is the share of writes that lost a
// certification and ran again.
func (s *Store) TransactionStats() TransactionStats {
	return TransactionStats{
		Begun:     s.txStats.begun.Load(),
		Conflicts: s.txStats.conflicts.Load(),
		GaveUp:    s.txStats.gaveUp.Load(),
	}
}
