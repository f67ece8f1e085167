package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// healthcheckCommand asks a serve on this host whether it can serve: what a
// container's healthcheck runs, since the image has nothing but this binary
// (no shell, no curl).
func healthcheckCommand(e *env) *cobra.Command {
	var url, caFile string
	var live bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if the serve on this host is ready (/readyz answers 200), 1 if not: for container healthchecks",
		Long: `Exit 0 if the serve on this host is ready (/readyz answers 200), 1 if not: for container
healthchecks, in an image with nothing but this binary. Without --url it asks the address
serve's own variables give (TOKENSERVICE_HTTP_ADDR, over https if TOKENSERVICE_TLS_CERT is
set), so a container's healthcheck needs no arguments.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("url") {
				url = localURL(e.getenv)
			}
			client := http.DefaultClient
			if caFile != "" {
				cfg, err := tlsConfig(caFile)
				if err != nil {
					return err
				}
				client = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
			}
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
			resp, err := client.Do(req)
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
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8080", "the serve's HTTP base URL; when not given, made from TOKENSERVICE_HTTP_ADDR and TOKENSERVICE_TLS_CERT if set")
	cmd.Flags().StringVar(&caFile, "tls-ca-file", "", "PEM file of the CA that signed serve's certificate (default: the system's)")
	cmd.Flags().BoolVar(&live, "live", false, "ask /healthz (the process is up) instead of /readyz (it can serve)")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	return cmd
}

// localURL is the base URL of a serve on this host configured by the same
// variables: its TOKENSERVICE_HTTP_ADDR's port (and host, if it names
// one), https if it has TOKENSERVICE_TLS_CERT.
func localURL(getenv func(string) string) string {
	host, port := "127.0.0.1", "8080"
	if addr := getenv("TOKENSERVICE_HTTP_ADDR"); addr != "" {
		if h, p, err := net.SplitHostPort(addr); err == nil {
			if h != "" && h != "0.0.0.0" && h != "::" {
				host = h
			}
			port = p
		}
	}
	scheme := "http"
	if getenv("TOKENSERVICE_TLS_CERT") != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
