package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	mysqldriver "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

// A transaction that lost a conflict (a deadlock; on Galera, a certification
// failure) runs again, a bounded number of times; any other error is
// returned at once.
func TestTransactionRetriesLostConflicts(t *testing.T) {
	s, err := Open(Config{Driver: DriverSQLite, DSN: filepath.Join(t.TempDir(), "tx.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadlock := &mysqldriver.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}
	other := errors.New("not a conflict")
	for name, tc := range map[string]struct {
		fails     int // the first fails attempts return failWith
		failWith  error
		wantRuns  int
		wantError error
	}{
		"succeeds at once":         {0, nil, 1, nil},
		"two conflicts, then done": {2, deadlock, 3, nil},
		"conflicts every time":     {99, deadlock, transactionAttempts, deadlock},
		"another error":            {99, other, 1, other},
	} {
		runs, before := 0, s.TransactionStats()
		err := s.transaction(s.db.WithContext(context.Background()), func(*gorm.DB) error {
			runs++
			if runs <= tc.fails {
				return tc.failWith
			}
			return nil
		})
		if runs != tc.wantRuns || !errors.Is(err, tc.wantError) {
			t.Errorf("%s: ran %d times, %v; want %d, %v", name, runs, err, tc.wantRuns, tc.wantError)
		}
		wantConflicts, wantGaveUp := uint64(0), uint64(0)
		if tc.failWith == deadlock {
			wantConflicts = uint64(min(tc.fails, transactionAttempts))
			if tc.wantError != nil {
				wantGaveUp = 1
			}
		}
		after := s.TransactionStats()
		if got, want := (TransactionStats{after.Transactions - before.Transactions, after.Conflicts - before.Conflicts, after.GaveUp - before.GaveUp}),
			(TransactionStats{1, wantConflicts, wantGaveUp}); got != want {
			t.Errorf("%s: counted %+v, want %+v", name, got, want)
		}
	}
}
