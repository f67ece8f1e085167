// Package storetest opens a fresh, migrated database per test, for each
// backend, so every suite runs the same cases on SQLite and on MySQL.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/tokenservice/tokenservice/pkg/store"
)

// MySQLDSNEnv names the variable holding the MySQL server tests run against.
// Tests fail, never skip, when it is unset or the server cannot be reached.
const MySQLDSNEnv = "TOKENSERVICE_TEST_MYSQL_DSN"

// WithoutMySQLEnv, set to 1, runs the store-backed suites on SQLite alone
// and skips what needs MySQL: the fast loop (make test-fast) for working
// without a MySQL server. It is an explicit choice; without it MySQL tests
// fail when no server is given, as make test and CI run them.
const WithoutMySQLEnv = "TOKENSERVICE_TEST_WITHOUT_MYSQL"

// Drivers are the backends every store-backed suite runs against.
var Drivers = []string{store.DriverSQLite, store.DriverMySQL}

func withoutMySQL() bool { return os.Getenv(WithoutMySQLEnv) == "1" }

// MustConfig returns the configuration of a fresh, empty database for driver,
// removed when the test ends.
func MustConfig(tb testing.TB, driver string) store.Config {
	tb.Helper()
	switch driver {
	case store.DriverSQLite:
		return store.Config{Driver: driver, DSN: filepath.Join(tb.TempDir(), "tokenservice.db")}
	case store.DriverMySQL:
		if withoutMySQL() {
			tb.Skipf("%s=1: the MySQL tests run in make test", WithoutMySQLEnv)
		}
		return store.Config{Driver: driver, DSN: mustMySQLDatabase(tb)}
	}
	tb.Fatalf("unknown driver %q", driver)
	return store.Config{}
}

// MustOpen opens and migrates a fresh database for driver, closed when the test ends.
func MustOpen(tb testing.TB, driver string) *store.Store {
	tb.Helper()
	return MustOpenConfig(tb, MustConfig(tb, driver))
}

// MustOpenConfig opens and migrates the database cfg names, closed when the test ends.
func MustOpenConfig(tb testing.TB, cfg store.Config) *store.Store {
	tb.Helper()
	driver := cfg.Driver
	s, err := store.Open(cfg)
	if err != nil {
		tb.Fatalf("opening %s: %v", driver, err)
	}
	tb.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		tb.Fatalf("migrating %s: %v", driver, err)
	}
	return s
}

// mustMySQLDatabase creates a randomly named database on the test server and
// returns a DSN for it; the database is dropped when the test ends.
func mustMySQLDatabase(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(MySQLDSNEnv)
	if dsn == "" {
		tb.Fatalf("%s is not set: the MySQL tests need a server (make test sets root@tcp(127.0.0.1:3306)/test)", MySQLDSNEnv)
	}
	cfg, err := mysqldriver.ParseDSN(dsn)
	if err != nil {
		tb.Fatalf("%s: %v", MySQLDSNEnv, err)
	}
	cfg.DBName = mustCreateDatabase(tb, cfg)
	return cfg.FormatDSN()
}

// mustCreateDatabase creates a randomly named database on the server cfg
// names (its DBName aside) and returns the name; the database is dropped
// through the same server when the test ends.
func mustCreateDatabase(tb testing.TB, cfg *mysqldriver.Config) string {
	tb.Helper()
	cfg = cfg.Clone()
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatalf("opening MySQL: %v", err)
	}
	defer admin.Close()
	name := "tokenservice_test_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		tb.Fatalf("MySQL at %s is not usable (is mariadbd running?): %v", cfg.Addr, err)
	}
	tb.Cleanup(func() {
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			tb.Errorf("dropping %s: %v", name, err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			tb.Errorf("dropping %s: %v", name, err)
		}
	})
	return name
}

// ForEachDriver runs f as a subtest per backend.
func ForEachDriver(t *testing.T, f func(t *testing.T, driver string)) {
	t.Helper()
	for _, d := range Drivers {
		if d == store.DriverMySQL && withoutMySQL() {
			continue
		}
		t.Run(d, func(t *testing.T) { f(t, d) })
	}
}
