package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/tokenservice/tokenservice/pkg/store"
)

// newFlagSet returns a flag set whose --help names each flag's environment variable.
func newFlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tokenservice %s\n\n%s\n\nFlags (each also read from the environment variable named):\n", name, summary)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			fmt.Fprintf(stderr, "  --%s  [%s]\n      %s%s\n", f.Name, envName(f.Name), f.Usage, def)
		})
	}
	return fs
}

// parseFlags sets each flag from its TOKENSERVICE_* variable, then from args.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	return nil
}

func envName(flagName string) string {
	return "TOKENSERVICE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// dbFlags are the database flags every subcommand shares.
func dbFlags(fs *flag.FlagSet) *store.Config {
	cfg := &store.Config{}
	fs.StringVar(&cfg.Driver, "db-driver", store.DriverSQLite, "database driver: sqlite (embedded file) or mysql")
	fs.StringVar(&cfg.DSN, "db-dsn", "tokenservice.db", "sqlite: the database file; mysql: user:password@tcp(host:3306)/dbname")
	fs.IntVar(&cfg.MaxOpenConns, "db-max-open-conns", 32, "mysql: the connection pool's size")
	fs.DurationVar(&cfg.QueryTimeout, "db-query-timeout", store.DefaultQueryTimeout, "the longest one database call may take before the request fails with UNAVAILABLE")
	return cfg
}

// logFlags are the logging flags; the returned function builds the logger.
func logFlags(fs *flag.FlagSet) func(w io.Writer) (*slog.Logger, error) {
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "json", "json or text")
	return func(w io.Writer) (*slog.Logger, error) {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(*level)); err != nil {
			return nil, fmt.Errorf("--log-level: %w", err)
		}
		opts := &slog.HandlerOptions{Level: lvl}
		switch *format {
		case "json":
			return slog.New(slog.NewJSONHandler(w, opts)), nil
		case "text":
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return nil, fmt.Errorf("--log-format must be json or text, not %q", *format)
	}
}
