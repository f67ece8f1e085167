package store_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// A migration cut off after its DDL ran (MySQL commits each DDL statement at
// once; a crash, or a second migrator on a Galera node the lock did not
// cover, leaves tables without their record) is completed by the next
// Migrate, not stopped at "already exists".
func TestMigrateCompletesAHalfAppliedSchema(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		cfg := storetest.MustConfig(t, driver)
		all := store.MigrationIDs()
		for _, forget := range []int{len(all), 1} { // every record lost; the last one lost
			s, err := store.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			lost := all[len(all)-forget:]
			for _, id := range lost {
				if _, err := s.DB().Exec("DELETE FROM schema_migrations WHERE id = ?", id); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("%d records lost: %v", forget, err)
			}
			if got, err := s.AppliedMigrations(ctx); err != nil || !slices.Equal(got, all) {
				t.Fatalf("%d records lost, migrated again: %v, %v; want %v", forget, got, err, all)
			}
			s.Close()
		}
	})
}

// Migrators take turns through a lease row every one of them writes (so a
// Galera cluster certifies the conflict, where GET_LOCK holds on one node
// only): one held by another waits, and fails saying who holds it; one
// whose holder died (expired) is taken over.
func TestMigrationLease(t *testing.T) {
	cfg := storetest.MustConfig(t, store.DriverMySQL)
	s, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lease := func(holder string, expire time.Duration) {
		t.Helper()
		for _, q := range []string{
			"CREATE TABLE IF NOT EXISTS migration_lease (name VARCHAR(64) NOT NULL PRIMARY KEY, holder VARCHAR(64) NOT NULL, expire_time DATETIME(6) NOT NULL) ENGINE=InnoDB",
			"REPLACE INTO migration_lease (name, holder, expire_time) VALUES ('migrate', ?, NOW(6) + INTERVAL ? MICROSECOND)",
		} {
			args := []any{}
			if strings.HasPrefix(q, "REPLACE") {
				args = []any{holder, expire.Microseconds()}
			}
			if _, err := s.DB().Exec(q, args...); err != nil {
				t.Fatal(err)
			}
		}
	}

	lease("another-replica", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err = s.Migrate(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "another-replica") {
		t.Fatalf("Migrate while another holds the lease: %v, want refused naming the holder", err)
	}
	if ids, _ := s.AppliedMigrations(context.Background()); len(ids) != 0 {
		t.Fatalf("Migrate while another holds the lease applied %v", ids)
	}

	lease("a-dead-replica", -time.Second)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate after the holder's lease expired: %v", err)
	}
	var left int
	if err := s.DB().QueryRow("SELECT COUNT(*) FROM migration_lease").Scan(&left); err != nil || left != 0 {
		t.Errorf("leases left after Migrate: %d, %v; want it released", left, err)
	}
}

// Replicas started at once on a fresh database all migrate it, one at a
// time, and all succeed.
func TestConcurrentMigrations(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		cfg := storetest.MustConfig(t, driver)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				s, err := store.Open(cfg)
				if err != nil {
					errs <- err
					return
				}
				defer s.Close()
				errs <- s.Migrate(context.Background())
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("a concurrent Migrate: %v", err)
			}
		}
	})
}

// Of migrators running at once, each records the migrations it applied
// itself: every migration is in the audit trail once, from where the
// database stood.
func TestConcurrentMigrationsAreRecordedOnce(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		cfg := storetest.MustConfig(t, driver)
		all := store.MigrationIDs()
		var mu sync.Mutex
		var recorded []string
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				s, err := store.Open(cfg)
				if err != nil {
					t.Error(err)
					return
				}
				defer s.Close()
				applied, err := s.MigrateRecorded(ctx, func(from string, applied []string) *domain.AuditEvent {
					return (&domain.AuditEvent{Time: time.Now(), Action: domain.ActionDatabaseMigrate, Outcome: domain.OutcomeSuccess,
						Actor: domain.AuditParty{Kind: domain.ActorService}}).With("from", from).With("to", applied[len(applied)-1]).With("count", strconv.Itoa(len(applied)))
				})
				if err != nil {
					t.Errorf("a concurrent MigrateRecorded: %v", err)
				}
				mu.Lock()
				recorded = append(recorded, applied...)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(recorded)
		if !slices.Equal(recorded, all) {
			t.Errorf("the migrators say they applied %v, want each of %v once", recorded, all)
		}
		st := storetest.MustOpenConfig(t, cfg)
		var rows []string
		r, err := st.DB().Query("SELECT details FROM audit_events WHERE action = 'database.migrate' ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for r.Next() {
			var d string
			if err := r.Scan(&d); err != nil {
				t.Fatal(err)
			}
			rows = append(rows, d)
		}
		if want := fmt.Sprintf(`{"count":"%d","from":"","to":"%s"}`, len(all), all[len(all)-1]); len(rows) != 1 || rows[0] != want {
			t.Errorf("database.migrate events %q, want one: %s", rows, want)
		}
	})
}
