package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/spf13/cobra"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// dbCommand holds the server-side commands: they open the database with
// serve's database flags and act as its operator, through the same user
// rules the API applies. Use them to bootstrap the first admin or recover a
// lost admin password; everything else goes through the API (the client
// commands).
func dbCommand(e *env) *cobra.Command {
	cmd := group("db", "Work on the database directly: migrate, bootstrap the first admin, recover access", groupServer,
		dbCreateUserCommand(e), dbListUsersCommand(e), dbDeleteUserCommand(e), dbSetPasswordCommand(e))
	cmd.Long = `Work on the database directly, with serve's database flags: migrate it, bootstrap the
first admin, recover a lost password. These commands never talk to a server; once an
admin exists, manage users through the API (tokenservice user ...).`
	cfg := dbFlags(cmd.PersistentFlags())
	cmd.AddCommand(dbMigrateCommand(e, cfg))
	for _, sub := range cmd.Commands() {
		if sub.Name() != "migrate" {
			sub.RunE = withDatabase(cfg, sub.RunE)
		}
	}
	return cmd
}

// dbKey carries the open database to a db subcommand.
type dbKey struct{}

// withDatabase opens and migrates the database around run. The SQLite file
// must exist (only db migrate creates one): a missing file is a wrong
// --db-dsn or directory, and a fresh empty database would hide that.
func withDatabase(cfg *store.Config, run func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := checkDriver(cmd, cfg); err != nil {
			return err
		}
		if cfg.Driver == store.DriverSQLite {
			file, err := store.ParseSQLiteDSN(cfg.DSN)
			if err != nil {
				return err
			}
			if _, err := os.Stat(file.Path); file.Path != "" && errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no database at %s (--db-dsn, $TOKENSERVICE_DB_DSN): run this where serve keeps its data, or create it with tokenservice db migrate", file.Path)
			}
		}
		db, err := app.OpenDatabase(cmd.Context(), *cfg)
		if err != nil {
			return databaseError(cfg, err)
		}
		defer db.Close()
		cmd.SetContext(context.WithValue(cmd.Context(), dbKey{}, db))
		return run(cmd, args)
	}
}

// databaseError says why the database could not be opened: these commands
// run for the database's operator, so the driver's own words are theirs to
// read (the API's clients only ever get "unavailable"), with the DSN's
// password taken out. An unreachable database is exit status 4.
func databaseError(cfg *store.Config, err error) error {
	msg := fmt.Errorf("cannot open the %s database %s: %s", cfg.Driver, databaseName(cfg), redactPassword(err.Error(), cfg))
	if domain.KindOf(err) == domain.KindUnavailable {
		return &exitErr{code: exitUnreachable, err: msg}
	}
	return msg
}

// databaseName names the database of cfg for a message, without its password.
func databaseName(cfg *store.Config) string {
	if cfg.Driver == store.DriverMySQL {
		if c, err := mysqldriver.ParseDSN(cfg.DSN); err == nil {
			return fmt.Sprintf("%q at %s (user %s)", c.DBName, c.Addr, c.User)
		}
		return "(--db-dsn)"
	}
	return "at " + cfg.DSN
}

// redactPassword replaces the MySQL DSN's password wherever it appears in
// text: a driver's error can quote the DSN.
func redactPassword(text string, cfg *store.Config) string {
	if cfg.Driver != store.DriverMySQL {
		return text
	}
	password := ""
	if c, err := mysqldriver.ParseDSN(cfg.DSN); err == nil {
		password = c.Passwd
	} else if at := strings.LastIndex(cfg.DSN, "@"); at > 0 {
		// Unparsable: [user[:password]@]..., so the password, if any, is
		// between the first colon and the last @ before any "(".
		if user, pw, ok := strings.Cut(cfg.DSN[:at], ":"); ok && !strings.Contains(user, "(") {
			password = pw
		}
	}
	if password == "" {
		return text
	}
	return strings.ReplaceAll(text, password, "***")
}

// checkDriver refuses an unknown --db-driver as the usage error it is
// (exit 2), before anything is opened.
func checkDriver(cmd *cobra.Command, cfg *store.Config) error {
	if cfg.Driver != store.DriverSQLite && cfg.Driver != store.DriverMySQL {
		return usageError(cmd, "--db-driver %q: want %s or %s", safe(cfg.Driver), store.DriverSQLite, store.DriverMySQL)
	}
	return nil
}

func usersOf(cmd *cobra.Command) *users.Service {
	return cmd.Context().Value(dbKey{}).(*app.Database).Users()
}

func dbMigrateCommand(e *env, cfg *store.Config) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database migrations and say which it applied (serve also applies them at start)",
		Long: `Apply the database migrations and say which it applied, or that the schema was current.
An SQLite file that does not exist is created (mode 0600). Serve applies them at start too.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkDriver(cmd, cfg); err != nil {
				return err
			}
			st, err := store.Open(*cfg)
			if err != nil {
				return databaseError(cfg, err)
			}
			defer st.Close()
			// What this run applied (a replica migrating at the same
			// moment applies the others), recorded in the audit trail.
			applied, err := app.MigrateAsOperator(cmd.Context(), st)
			if err != nil {
				return databaseError(cfg, err)
			}
			all := store.MigrationIDs()
			current := all[len(all)-1]
			if len(applied) == 0 {
				fmt.Fprintf(e.stdout, "the schema was current (%s): no migration to apply\n", current)
				return nil
			}
			fmt.Fprintf(e.stdout, "applied %d migrations: %s; the schema is now %s\n", len(applied), strings.Join(applied, ", "), current)
			return nil
		},
	}
}

func dbCreateUserCommand(e *env) *cobra.Command {
	var admin, machine bool
	var owner string
	cmd := &cobra.Command{
		Use:   "create-user [--admin] NAME | --machine --owner OWNER NAME",
		Short: "Create a user; a human user's password comes from the terminal or stdin, never a flag",
		Example: `  printf '%s\n' 'correct horse battery staple' | tokenservice db create-user --admin alice
  tokenservice db create-user --machine --owner alice ci-bot`,
		Args: args("NAME"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx, svc, op := cmd.Context(), usersOf(cmd), users.Operator()
			in := users.CreateInput{Username: argv[0], Admin: admin, Machine: machine}
			switch {
			case machine:
				if owner == "" {
					return usageError(cmd, "--machine needs --owner: the human user who owns it")
				}
				o, err := svc.GetByUsername(ctx, op, owner)
				if err != nil {
					return fmt.Errorf("--owner %q: %w", owner, err)
				}
				in.OwnerID = o.ID
			case owner != "":
				return usageError(cmd, "--owner goes with --machine")
			default:
				// A taken username fails before a password is asked.
				if _, err := svc.GetByUsername(ctx, op, argv[0]); err == nil {
					return fmt.Errorf("a user %q exists already", argv[0])
				}
				password, err := newPrompter(e).newPassword("Password")
				if err != nil {
					return err
				}
				in.Password = password
			}
			u, err := svc.Create(ctx, op, in)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "created user %s with id %s\n", safe(u.Username), safe(u.ID))
			return nil
		},
	}
	// Never from the environment: an exported variable must not make every new user an admin.
	cmd.Flags().BoolVar(&admin, "admin", false, "the user is an administrator (may act for any user)")
	cmd.Flags().BoolVar(&machine, "machine", false, "a machine user (no password), owned by --owner")
	cmd.Flags().StringVar(&owner, "owner", "", "with --machine: the owning human user's username")
	return cmd
}

func dbListUsersCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list-users",
		Short: "List every user",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, svc, op := cmd.Context(), usersOf(cmd), users.Operator()
			all, err := allPages(func(page string) ([]*domain.User, string, error) {
				return svc.List(ctx, op, users.ListInput{PageSize: pagetoken.MaxPageSize, PageToken: page})
			})
			if err != nil {
				return err
			}
			names := make(map[string]string, len(all))
			for _, u := range all {
				names[u.ID] = u.Username
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tUSERNAME\tKIND\tOWNER\tADMIN\tCREATED")
			for _, u := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", safe(u.ID), safe(u.Username), kind(u.IsMachine()), safe(names[u.OwnerID]), u.Admin, u.CreateTime.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
}

func kind(machine bool) string {
	if machine {
		return "machine"
	}
	return "human"
}

func dbDeleteUserCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "delete-user NAME",
		Short: "Delete a user, its machine users and all their tokens",
		Args:  args("NAME"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx, svc, op := cmd.Context(), usersOf(cmd), users.Operator()
			u, err := svc.GetByUsername(ctx, op, argv[0])
			if err != nil {
				return err
			}
			if err := svc.Delete(ctx, op, u.ID); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "deleted user %s, its machine users and their tokens\n", safe(u.Username))
			return nil
		},
	}
}

func dbSetPasswordCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "set-password NAME",
		Short: "Set a human user's password (from the terminal or stdin), say a lost admin's",
		Args:  args("NAME"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx, svc, op := cmd.Context(), usersOf(cmd), users.Operator()
			u, err := svc.GetByUsername(ctx, op, argv[0])
			if err != nil {
				return err
			}
			if u.IsMachine() {
				return fmt.Errorf("%s is a machine user: machine users have no password, they authenticate with API tokens", safe(u.Username))
			}
			password, err := newPrompter(e).newPassword("New password")
			if err != nil {
				return err
			}
			if err := svc.ChangePassword(ctx, op, users.PasswordChange{UserID: u.ID, NewPassword: password}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "password set for %s\n", safe(u.Username))
			return nil
		},
	}
}
