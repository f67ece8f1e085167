package store

import (
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

// transactionAttempts bounds how often a transaction that lost a conflict
// is run again; conflictBackoff is the first pause between attempts,
// doubled each time up to maxConflictBackoff, with jitter: under a burst of
// writes to one row from every node of a cluster, about a second at most.
const (
	transactionAttempts = 12
	conflictBackoff     = 2 * time.Millisecond
	maxConflictBackoff  = 100 * time.Millisecond
)

// transaction runs fn in a transaction, and runs it again, a few times after
// a short pause, when it lost a conflict: a deadlock, or, on a
// multi-primary cluster (Galera), a certification failure, which the server
// reports as a deadlock (1213) at any statement or at commit. fn must set
// what it returns afresh each time it runs. Any other error, or the last
// attempt's, is returned as it is.
func (s *Store) transaction(db *gorm.DB, fn func(tx *gorm.DB) error) error {
	s.txStats.transactions.Add(1)
	backoff := conflictBackoff
	for attempt := 1; ; attempt++ {
		err := db.Transaction(fn)
		if err == nil || !lostConflict(err) {
			return err
		}
		s.txStats.conflicts.Add(1)
		if attempt == transactionAttempts {
			s.txStats.gaveUp.Add(1)
			return err
		}
		if ctx := db.Statement.Context; ctx != nil && ctx.Err() != nil {
			return err
		}
		time.Sleep(backoff/2 + rand.N(backoff))
		backoff = min(2*backoff, maxConflictBackoff)
	}
}

// lostConflict reports whether err is a transaction's lost conflict with
// another: a deadlock (on Galera, also a certification failure) or a lock
// wait timeout.
func lostConflict(err error) bool {
	var myErr *mysqldriver.MySQLError
	return errors.As(err, &myErr) && (myErr.Number == 1213 || myErr.Number == 1205)
}

// TransactionStats counts the store's write transactions since it opened.
type TransactionStats struct {
	Transactions uint64 // write transactions begun (each counted once, however often it ran)
	Conflicts    uint64 // attempts that lost a conflict (each one ran again, or gave up)
	GaveUp       uint64 // transactions that lost a conflict on every attempt
}

type txCounters struct{ transactions, conflicts, gaveUp atomic.Uint64 }

// TransactionStats returns the counts so far: on a multi-primary cluster,
// Conflicts over Transactions is the share of writes that lost a
// certification and ran again.
func (s *Store) TransactionStats() TransactionStats {
	return TransactionStats{
		Transactions: s.txStats.transactions.Load(),
		Conflicts:    s.txStats.conflicts.Load(),
		GaveUp:       s.txStats.gaveUp.Load(),
	}
}
