// Command tokenservice serves the token service and administers its users.
// Run `tokenservice help` for the subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	switch err {
	case nil, errHelp:
	case errUsage:
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "tokenservice:", err)
		os.Exit(1)
	}
}
