package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The db commands read a file: URI as the store opens it: the missing file
// they name is the one SQLite would open (here percent-decoded, after a
// localhost authority), and db migrate creates it for its owner alone.
func TestDBCommandsReadAFileURI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not here.db")
	dsn := "file://localhost" + filepath.ToSlash(filepath.Dir(path)) + "/not%20here.db?mode=rwc"
	sh := &shell{t: t, env: map[string]string{"TOKENSERVICE_DB_DSN": dsn}}
	sh.want(exitError, "no database at "+path+" ", "", "db", "list-users")
	sh.must("", "db", "migrate")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("db migrate made %s with mode %04o, want 0600", path, mode)
	}
	sh.must("", "db", "list-users")
}
