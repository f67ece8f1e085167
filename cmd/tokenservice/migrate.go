package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tokenservice/tokenservice/pkg/app"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", "Apply the database migrations and exit (serve also applies them at start).", stderr)
	dbCfg := dbFlags(fs)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	db, err := app.OpenDatabase(ctx, *dbCfg)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintln(stdout, "database is up to date")
	return nil
}
