// Command tokenservice is both the token service and its command-line
// client: server commands run beside the database (serve, db ...), client
// commands talk to a running server over gRPC (login, token ..., user ...).
// Run `tokenservice --help` for the commands.
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
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tokenservice:", err)
		if hint := usageHint(err); hint != "" {
			fmt.Fprintln(os.Stderr, hint)
		}
	}
	os.Exit(exitCode(err))
}
