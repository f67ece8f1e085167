package main

import (
	"fmt"
	"net"
	"strings"
	"testing"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// db migrate says which migrations it applied, or that there were none.
func TestDBMigrateSaysWhatItApplied(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		db := storetest.MustConfig(t, driver)
		op := &shell{t: t, env: map[string]string{"TOKENSERVICE_DB_DRIVER": db.Driver, "TOKENSERVICE_DB_DSN": db.DSN}}
		all := store.MigrationIDs()
		if out := op.must("", "db", "migrate"); !strings.Contains(out, fmt.Sprintf("applied %d migrations: %s", len(all), strings.Join(all, ", "))) ||
			!strings.Contains(out, "the schema is now "+all[len(all)-1]) {
			t.Errorf("db migrate on a fresh database: %q; want every migration named", out)
		}
		if out := op.must("", "db", "migrate"); !strings.Contains(out, "the schema was current ("+all[len(all)-1]+")") {
			t.Errorf("db migrate again: %q; want the schema said current", out)
		}
	})
}

// The db and keys commands say why the database cannot be used, in the
// driver's words, and never print the DSN's password.
func TestDBCommandsSayWhyTheDatabaseIsUnreachable(t *testing.T) {
	const secret = "s3cret-Pa55word"
	good, err := mysqldriver.ParseDSN(storetest.MustConfig(t, "mysql").DSN)
	if err != nil {
		t.Fatal(err)
	}
	wrongPassword := good.Clone()
	wrongPassword.Passwd = secret
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := wrongPassword.Clone()
	nobody.Addr = lis.Addr().String()
	lis.Close()
	for _, tc := range []struct {
		name, dsn, says string
		code            int
	}{
		{"a wrong password", wrongPassword.FormatDSN(), "Access denied for user", exitError},
		{"nothing listening", nobody.FormatDSN(), "connection refused", exitUnreachable},
		{"an unparsable DSN", "root:" + secret + "@tcp(127.0.0.1:3306", "invalid DSN", exitError},
	} {
		op := &shell{t: t, env: map[string]string{"TOKENSERVICE_DB_DRIVER": "mysql", "TOKENSERVICE_DB_DSN": tc.dsn}}
		for _, args := range [][]string{{"db", "migrate"}, {"db", "list-users"}, {"keys", "list"}, {"audit", "verify"}, {"audit", "checkpoint"}} {
			out, errOut, code := op.run("", args...)
			if code != tc.code || !strings.Contains(errOut, tc.says) || strings.Contains(out+errOut, secret) {
				t.Errorf("%s: %s: exit %d, stderr %q; want exit %d saying %q, without the password", tc.name, strings.Join(args, " "), code, errOut, tc.code, tc.says)
			}
		}
	}
	// SQLite: a directory where the file should be.
	op := &shell{t: t, env: map[string]string{"TOKENSERVICE_DB_DSN": t.TempDir()}}
	op.want(exitError, "cannot open the sqlite database at "+op.env["TOKENSERVICE_DB_DSN"], "", "db", "migrate")
}
