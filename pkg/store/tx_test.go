package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// A transaction that lost a conflict (a deadlock; on Galera, a certification
// failure) runs again while its deadline leaves time; any other error is
// returned at once.
func TestTransactionRetriesLostConflicts(t *testing.T) {
	s := openTemp(t)
	deadlock := &mysqldriver.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}
	other := errors.New("not a conflict")
	const deadline = 300 * time.Millisecond // a short one; DefaultQueryTimeout otherwise
	for name, tc := range map[string]struct {
		fails     int // the first fails attempts return failWith
		failWith  error
		wantRuns  int // 0: as many as the deadline leaves time for, more than 3
		wantError error
		timeout   time.Duration
	}{
		"succeeds at once":             {0, nil, 1, nil, 0},
		"two conflicts, then done":     {2, deadlock, 3, nil, 0},
		"a dozen conflicts, then done": {12, deadlock, 13, nil, 0},
		"conflicts until the deadline": {transactionAttempts, deadlock, 0, deadlock, deadline},
		"another error":                {99, other, 1, other, 0},
	} {
		if tc.timeout == 0 {
			tc.timeout = DefaultQueryTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
		runs, before, start := 0, s.TransactionStats(), time.Now()
		err := s.transaction(s.db.WithContext(ctx), func(*gorm.DB) error {
			runs++
			if runs <= tc.fails {
				return tc.failWith
			}
			return nil
		})
		took := time.Since(start)
		cancel()
		if tc.wantRuns == 0 && (runs <= 3 || runs >= tc.fails || took > deadline) ||
			tc.wantRuns != 0 && runs != tc.wantRuns || !errors.Is(err, tc.wantError) {
			t.Errorf("%s: ran %d times in %v, %v; want %d (0: until the %v deadline), %v", name, runs, took, err, tc.wantRuns, deadline, tc.wantError)
		}
		wantConflicts, wantGaveUp := uint64(0), uint64(0)
		if tc.failWith == deadlock {
			wantConflicts = uint64(min(tc.fails, runs))
			if tc.wantError != nil {
				wantGaveUp = 1
			}
		}
		after := s.TransactionStats()
		if got, want := (TransactionStats{after.Begun - before.Begun, after.Conflicts - before.Conflicts, after.GaveUp - before.GaveUp}),
			(TransactionStats{1, wantConflicts, wantGaveUp}); got != want {
			t.Errorf("%s: counted %+v, want %+v", name, got, want)
		}
	}
}

// The errors that mean "run it again": MySQL's and Galera's deadlock, a lock
// wait timeout, TiDB's write conflict; not a duplicate key or a lost
// connection (which may have committed).
func TestLostConflict(t *testing.T) {
	for number, want := range map[uint16]bool{1213: true, 1205: true, 9007: true, 1062: false, 1047: false, 2013: false} {
		if got := lostConflict(fmt.Errorf("wrapped: %w", &mysqldriver.MySQLError{Number: number})); got != want {
			t.Errorf("error %d: lost conflict %v, want %v", number, got, want)
		}
	}
	if lostConflict(errors.New("1213")) {
		t.Error("a plain error is no lost conflict")
	}
}

// A transaction whose deadline passes between its statements (database/sql
// then rolls it back, and the next statement or the commit answers
// sql.ErrTxDone) is UNAVAILABLE, as the deadline passing in a statement is:
// the database did not answer in time. It was a 500 under a loaded CI run.
func TestATransactionPastItsDeadlineIsUnavailable(t *testing.T) {
	s := openTemp(t)
	for name, last := range map[string]func(tx *gorm.DB) error{
		"a statement": func(tx *gorm.DB) error { return tx.Exec("SELECT 1").Error },
		"the commit":  func(*gorm.DB) error { return nil },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := s.transaction(s.db.WithContext(ctx), func(tx *gorm.DB) error {
			if err := tx.Exec("SELECT 1").Error; err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
			return last(tx)
		})
		cancel()
		if got := domain.KindOf(classify(err, "token")); got != domain.KindUnavailable {
			t.Errorf("deadline passed before %s: %v, classified %v; want unavailable", name, err, got)
		}
	}
}

// openTemp opens a store on a SQLite file of the test's own, closed when
// the test ends (this package's internal tests cannot use storetest, which
// imports it).
func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(Config{Driver: DriverSQLite, DSN: filepath.Join(t.TempDir(), "store.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
