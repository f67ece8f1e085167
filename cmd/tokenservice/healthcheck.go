package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// healthcheckCommand asks a serve on this host whether it can serve: what a
// container's healthcheck runs, since the image has nothing but this binary
// (no shell, no curl).
func healthcheckCommand(e *env) *cobra.Command {
	var url string
	var live bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:     "healthcheck",
		Short:   "Exit 0 if the serve at --url is ready (/readyz answers 200), 1 if not: for container healthchecks",
		GroupID: groupServer,
		Args:    args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			target := url + "/readyz"
			if live {
				target = url + "/healthz"
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			if err != nil {
				return usageError(cmd, "--url: %v", err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// 1, as for not ready: a container healthcheck reads 1 as
				// unhealthy (and reserves 2).
				return fmt.Errorf("%s did not answer: %w", target, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s %s", target, resp.Status, body)
			}
			fmt.Fprintf(e.stdout, "%s: %s", target, body)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8080", "the serve's HTTP base URL (its --http-addr, from this host)")
	cmd.Flags().BoolVar(&live, "live", false, "ask /healthz (the process is up) instead of /readyz (it can serve)")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	return cmd
}
