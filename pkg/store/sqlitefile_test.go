//go:build unix

package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenservice/tokenservice/pkg/store"
)

func TestParseSQLiteDSN(t *testing.T) {
	for dsn, want := range map[string]store.SQLiteFile{
		"tokenservice.db":                            {Path: "tokenservice.db", MayCreate: true},
		"/var/lib/ts/db?_pragma=busy_timeout(100)":   {Path: "/var/lib/ts/db", MayCreate: true},
		"file:tokenservice.db":                       {Path: "tokenservice.db", MayCreate: true},
		"file:/var/lib/ts/db?mode=rwc&cache=private": {Path: "/var/lib/ts/db", MayCreate: true},
		"file:///var/lib/ts/db?_pragma=x":            {Path: "/var/lib/ts/db", MayCreate: true},
		"file://localhost/var/lib/ts/db#frag":        {Path: "/var/lib/ts/db", MayCreate: true},
		"file:my%20data.db?mode=rw":                  {Path: "my data.db", MayCreate: false},
		"file:data.db?mode=ro":                       {Path: "data.db", MayCreate: false},
		"file:data.db?mode=ro&mode=rwc":              {Path: "data.db", MayCreate: true},
		":memory:":                                   {MayCreate: true},
		"file::memory:?cache=shared":                 {MayCreate: true},
		"file:data.db?mode=memory":                   {MayCreate: true},
		"file:data.db?vfs=memdb":                     {MayCreate: true},
		"":                                           {MayCreate: true},
	} {
		got, err := store.ParseSQLiteDSN(dsn)
		if err != nil {
			t.Errorf("ParseSQLiteDSN(%q): %v", dsn, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParseSQLiteDSN(%q) (-want +got):\n%s", dsn, diff)
		}
	}
	for _, dsn := range []string{"file://db.example.com/data.db", "file://data.db", "file:bad%zz.db"} {
		if _, err := store.ParseSQLiteDSN(dsn); err == nil {
			t.Errorf("ParseSQLiteDSN(%q) accepted a DSN SQLite refuses", dsn)
		}
	}
}

// Every way of naming the SQLite file gives the database and its -wal, -shm
// and -journal files mode 0600, whatever the umask: they hold password
// hashes and, unless sealed, the signing keys.
func TestEveryFormOfSQLiteDSNMakesPrivateFiles(t *testing.T) {
	old := syscall.Umask(0o022) // the usual umask: without createPrivate, 0644
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()
	t.Chdir(dir)
	abs := func(name string) string { return filepath.Join(dir, name) }
	for _, c := range []struct{ dsn, file string }{
		{"plain.db", "plain.db"},
		{abs("plain-abs.db") + "?_pragma=busy_timeout(100)", abs("plain-abs.db")},
		{"file:uri-rel.db", "uri-rel.db"},
		{"file:" + abs("uri-abs.db"), abs("uri-abs.db")},
		{"file://" + abs("uri-slashes.db"), abs("uri-slashes.db")},
		{"file://localhost" + abs("uri-localhost.db"), abs("uri-localhost.db")},
		{"file:uri-rwc.db?mode=rwc", "uri-rwc.db"},
		{"file:uri-pragma.db?_pragma=busy_timeout(100)&cache=private", "uri-pragma.db"},
		{"file:" + url.PathEscape("uri escaped.db"), "uri escaped.db"},
	} {
		t.Run(c.dsn, func(t *testing.T) {
			s, err := store.Open(store.Config{Driver: store.DriverSQLite, DSN: c.dsn})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, suffix := range []string{"", "-wal", "-shm"} {
				mustBePrivate(t, c.file+suffix)
			}
		})
	}

	// The rollback journal, in a database not in WAL mode, takes the same
	// mode: SQLite copies the database file's.
	t.Run("journal", func(t *testing.T) {
		s, err := store.Open(store.Config{Driver: store.DriverSQLite, DSN: "file:journal.db"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.Close()
		db, err := sql.Open("sqlite", "journal.db?_pragma=journal_mode(DELETE)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.Exec("CREATE TABLE journalled (x INTEGER)"); err != nil {
			t.Fatal(err)
		}
		mustBePrivate(t, "journal.db-journal")
	})

	// In memory: no file at all.
	for _, dsn := range []string{":memory:", "file::memory:", "file:memory.db?mode=memory"} {
		s, err := store.Open(store.Config{Driver: store.DriverSQLite, DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Errorf("%s: %v", dsn, err)
		}
		s.Close()
	}
	for _, name := range []string{":memory:", "memory.db"} {
		if _, err := os.Stat(name); err == nil {
			t.Errorf("an in-memory database made the file %s", name)
		}
	}
}

func mustBePrivate(t *testing.T, path string) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", path, mode)
	}
}

// A database file every user may read (made by an earlier version from a
// file: DSN, or by hand) keeps its mode, the operator's to change, but
// opening it logs a warning naming the file and the fix. A group-readable
// one passes: a Kubernetes volume's fsGroup makes one on purpose.
func TestSQLiteFileReadableByAllIsReported(t *testing.T) {
	for mode, warn := range map[os.FileMode]bool{0o600: false, 0o640: false, 0o644: true, 0o604: true} {
		path := filepath.Join(t.TempDir(), "old.db")
		if err := os.WriteFile(path, nil, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
		var logs bytes.Buffer
		s, err := store.Open(store.Config{Driver: store.DriverSQLite, DSN: "file:" + path, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if got := strings.Contains(logs.String(), "chmod 600 "+path); got != warn {
			t.Errorf("a database of mode %04o: warned %v, want %v:\n%s", mode, got, warn, logs.String())
		}
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != mode {
			t.Errorf("the database's mode changed: %v, %v", info, err)
		}
	}
}
