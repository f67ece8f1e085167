package main

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// errUsage means the usage has been printed after a mistake: exit 1 quietly.
// errHelp means --help printed it: exit 0.
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

const usage = `tokenservice: long-lived API tokens exchanged for short-lived signed access tokens.

Usage:
  tokenservice serve                 serve gRPC and REST (migrates the database first)
  tokenservice migrate               apply database migrations and exit
  tokenservice user create NAME      create a human user; reads the password from the terminal or stdin
        --admin                      ... as an administrator
        --machine --owner OWNER      create a machine user (no password) owned by OWNER
  tokenservice user list             list users
  tokenservice user delete NAME      delete a user, its machine users and all their tokens
  tokenservice user set-password NAME  set a human user's password (terminal or stdin)

Every subcommand takes --help. Flags can also be set by TOKENSERVICE_* environment
variables, named in each --help; a flag wins over its variable.
`

// run is the whole program, with its environment passed in, so tests can
// run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "user":
		return runUser(ctx, rest, getenv, stdin, stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
	return errUsage
}
