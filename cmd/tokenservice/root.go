package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// The exit codes, documented in the root command's help.
const (
	exitOK           = 0
	exitError        = 1 // the request failed (refused by the server for another reason, a local file, ...)
	exitUsage        = 2 // the command line is wrong
	exitCredentials  = 3 // the server refused the credentials: not logged in, a bad token or password, not allowed
	exitUnreachable  = 4 // the server (for the server commands, the database) did not answer
	exitCodesSummary = `Exit status: 0 done; 1 failed; 2 usage error; 3 credentials refused (not logged in,
wrong token or password, not allowed); 4 server (for db, keys and audit: database) unreachable.`
)

// exitErr carries the exit code a failure ends the process with.
type exitErr struct {
	code int
	err  error
	cmd  string // for usage errors: the command whose --help to point at
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

// usageError is a mistake on the command line: exit 2, with a pointer to --help.
func usageError(cmd *cobra.Command, format string, args ...any) error {
	return &exitErr{code: exitUsage, err: fmt.Errorf(format, args...), cmd: cmd.CommandPath()}
}

func exitCode(err error) int {
	var e *exitErr
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &e):
		return e.code
	}
	return exitError
}

func usageHint(err error) string {
	var e *exitErr
	if errors.As(err, &e) && e.code == exitUsage {
		return fmt.Sprintf("Run '%s --help' for usage.", e.cmd)
	}
	return ""
}

// env is what the commands read of the process's environment (injected, so
// tests can run the whole program in-process).
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// Command groups: the server side opens the database; the client side only
// ever talks to a server.
const (
	groupClient = "client"
	groupServer = "server"
)

// run is the whole program, with its environment passed in.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := rootCommand(&env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr})
	root.SetArgs(args[1:])
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return forPeople(root.ExecuteContext(ctx))
}

// forPeople keeps what a failure says to its client-safe message: the
// operator commands' errors come from the services, whose causes (a
// driver's words) are for logs.
func forPeople(err error) error {
	var e *domain.Error
	if err == nil || !errors.As(err, &e) || e.Kind == domain.KindInternal {
		return err
	}
	return errors.New(domain.MessageOf(err))
}

// rootCommand returns the command tree.
func rootCommand(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "tokenservice",
		Short: "Long-lived API tokens exchanged for short-lived signed access tokens",
		Long: `tokenservice: long-lived API tokens for machine-to-machine authentication, exchanged
for short-lived signed JWT access tokens that API gateways verify offline.

One binary: client commands talk to a running server over gRPC; server commands run
where the database is and open it directly.

` + exitCodesSummary,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noSubcommand,
		RunE:          noSubcommand,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd, e.getenv)
		},
	}
	root.AddGroup(
		&cobra.Group{ID: groupClient, Title: "Client commands (talk to a server: --addr or $TOKENSERVICE_ADDR):"},
		&cobra.Group{ID: groupServer, Title: "Server commands (run where the database is; they open it directly):"},
	)
	root.AddCommand(
		loginCommand(e), logoutCommand(e), whoamiCommand(e), tokenCommand(e), userCommand(e),
		serveCommand(e), dbCommand(e), keysCommand(e), auditCommand(e), healthcheckCommand(e),
	)
	root.SuggestionsMinimumDistance = suggestionDistance
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, "%v", err) })
	return root
}

// noSubcommand answers a command group run without a known subcommand (as
// its Args and its RunE: a group that cobra found not runnable would print
// its help and succeed).
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		hint := ""
		if near := cmd.SuggestionsFor(args[0]); len(near) > 0 {
			hint = "; did you mean " + strings.Join(near, " or ") + "?"
		}
		return usageError(cmd, "unknown command %q for %q%s", args[0], cmd.CommandPath(), hint)
	}
	var names []string
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	return usageError(cmd, "%q needs a command: %s", cmd.CommandPath(), strings.Join(names, ", "))
}

// suggestionDistance: a command name within two edits of a typo, or
// starting with it, is suggested (cobra's usual distance; cobra applies it
// only where it is set).
const suggestionDistance = 2

// group returns a command that only holds subcommands.
func group(use, short, groupID string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, GroupID: groupID, Args: noSubcommand, RunE: noSubcommand, SuggestionsMinimumDistance: suggestionDistance}
	cmd.AddCommand(subs...)
	return cmd
}

// args checks a command's positional arguments: exactly the names given
// (a trailing "?" makes the last one optional).
func args(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, got []string) error {
		lo, hi := len(names), len(names)
		if hi > 0 && strings.HasSuffix(names[hi-1], "?") {
			lo--
		}
		if len(got) < lo {
			return usageError(cmd, "missing %s", strings.Join(names[len(got):lo], " "))
		}
		if len(got) > hi {
			return usageError(cmd, "unexpected argument %q", got[hi])
		}
		return nil
	}
}

// envAnnotation marks a flag that its TOKENSERVICE_* variable may set.
// Only configuration is marked: never a flag that grants privilege (--admin)
// or says what one command does, so an exported variable cannot change what
// every later command means.
const envAnnotation = "tokenservice_env"

// fromEnv marks the named flags of fs as settable by their variables and
// names the variable in each flag's help.
func fromEnv(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		f := fs.Lookup(n)
		if f == nil {
			panic("fromEnv: no flag --" + n)
		}
		f.Usage += " [$" + envName(n) + "]"
		if err := fs.SetAnnotation(n, envAnnotation, []string{envName(n)}); err != nil {
			panic(err)
		}
	}
}

func envName(flagName string) string {
	return "TOKENSERVICE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets each marked flag not given on the command line from its
// variable: a flag wins over its variable.
func applyEnv(cmd *cobra.Command, getenv func(string) string) error {
	if err := applyEnvFlags(cmd.Flags(), getenv); err != nil {
		return usageError(cmd, "%v", err)
	}
	return nil
}

func applyEnvFlags(fs *pflag.FlagSet, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Annotations[envAnnotation] == nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	return errors.Join(errs...)
}
