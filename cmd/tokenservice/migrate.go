package main

import (
	"context"
	"fmt"
	"io"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", "Apply the database migrations and exit (serve also applies them at start).", stderr)
	dbCfg := dbFlags(fs)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	st, err := openStore(ctx, *dbCfg)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintln(stdout, "database is up to date")
	return nil
}
