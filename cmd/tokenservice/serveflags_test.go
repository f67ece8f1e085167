package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/tokenservice/tokenservice/pkg/app"
)

// TestServeRefusesBadFlags checks what serve says of each flag it refuses,
// before it opens anything: an explicit --issuer, so no listener is made
// for it, and a database that would not be opened.
func TestServeRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the whole message, or its start when it ends in ": "
	}{
		{[]string{"--access-token-ttl", "0"}, "--access-token-ttl must be positive"},
		{[]string{"--access-token-reuse", "8m"}, "--access-token-reuse must be between 0 and half of --access-token-ttl"},
		{[]string{"--access-token-reuse", "-1s"}, "--access-token-reuse must be between 0 and half of --access-token-ttl"},
		{[]string{"--resources", "orders"}, `--resources: "orders": a resource is an absolute URI without a fragment (RFC 8707 section 2), e.g. https://orders.example.com`},
		{[]string{"--resources", "https://tokens.example"}, `--resources: "https://tokens.example" is the service's own audience (--audience): name only the APIs behind your gateways`},
		{[]string{"--audience", "https://api.example", "--resources", "https://api.example"}, `--resources: "https://api.example" is the service's own audience (--audience): name only the APIs behind your gateways`},
		{[]string{"--scopes", "tokens:read"}, `--scopes: scope "tokens:read" is the service's own: declare only the scopes of your APIs`},
		{[]string{"--max-rotation-grace-period", "25h"}, "--max-rotation-grace-period must be between 0 and 24h"},
		{[]string{"--http-max-connections", "-1"}, "--http-max-connections must be 0 (a share of the open-file limit) or more"},
		{[]string{"--grpc-connection-timeout", "0"}, "--grpc-connection-timeout must be positive"},
		{[]string{"--key-propagation-delay", "1s"}, "--key-propagation-delay, --jwks-max-age, --key-reload-interval: "},
		{[]string{"--tls-cert", "cert.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-cert", "no-such-cert.pem", "--tls-key", "no-such-key.pem"}, "loading the TLS certificate: "},
		{[]string{"--log-level", "loud"}, "--log-level: "},
		{[]string{"--old-key-encryption-key-file", "old.key"}, "--old-key-encryption-key-file needs --key-encryption-key-file, the key replacing it"},
		{[]string{"--audit-retention", "12h"}, "--audit-retention must be 0 (keep the events forever) or at least 24h, e.g. 9600h for 400 days"},
		{[]string{"--audit-retention", "-1s"}, "--audit-retention must be 0 (keep the events forever) or at least 24h, e.g. 9600h for 400 days"},
		{[]string{"--audit-retention", "400d"}, "invalid argument \"400d\" for \"--audit-retention\" flag: "},
		{[]string{"--audit-checkpoint-interval", "0"}, "--audit-checkpoint-interval must be positive"},
		{[]string{"--audit-log", "/nonexistent/audit.jsonl"}, "--audit-log: open /nonexistent/audit.jsonl: no such file or directory"},
		// The first group checked is the one reported.
		{[]string{"--tls-cert", "cert.pem", "--max-rotation-grace-period", "25h", "--access-token-ttl", "0"}, "--access-token-ttl must be positive"},
		{[]string{"--tls-cert", "cert.pem", "--grpc-connection-timeout", "0", "--scopes", "tokens:read"}, `--scopes: scope "tokens:read" is the service's own: declare only the scopes of your APIs`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"--issuer", "https://tokens.example", "--db-dsn", "/nonexistent/never-opened.db"}, tc.args...)
			_, err := newServeApp(context.Background(), args, func(string) string { return "" }, io.Discard)
			if err == nil {
				t.Fatal("serve accepted it")
			}
			if prefix, ok := strings.CutSuffix(tc.want, ": "); ok {
				if !strings.HasPrefix(err.Error(), prefix+": ") {
					t.Errorf("got %q, want it to start with %q", err, tc.want)
				}
			} else if err.Error() != tc.want {
				t.Errorf("got %q, want %q", err, tc.want)
			}
		})
	}
}

// TestServeDerivesSettings checks what applySettings fills in from the
// flags: the audience from the issuer, the CORS origins as a list, the
// metrics listener turned off.
func TestServeDerivesSettings(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o := serveFlags(fs)
	if err := fs.Parse([]string{"--cors-origins", " https://a.example, ,https://b.example ", "--metrics-addr", "off", "--resources", "https://orders.example"}); err != nil {
		t.Fatal(err)
	}
	cfg := o.cfg
	cfg.Server.Issuer = "https://tokens.example"
	if err := o.applySettings(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Minter.Issuer != "https://tokens.example" || cfg.Minter.Audience != "https://tokens.example" {
		t.Errorf("minter issuer %q, audience %q: want both the issuer", cfg.Minter.Issuer, cfg.Minter.Audience)
	}
	if diff := cmp.Diff([]string{"https://a.example", "https://b.example"}, cfg.Server.CORSOrigins); diff != "" {
		t.Errorf("CORS origins (-want +got):\n%s", diff)
	}
	if cfg.Server.MetricsAddr != "" {
		t.Errorf("--metrics-addr off: metrics address %q, want none", cfg.Server.MetricsAddr)
	}
	if cfg.Server.TLS != nil {
		t.Error("TLS configured without --tls-cert")
	}
	if cfg.Audit.Retention != app.DefaultAuditRetention || cfg.Audit.CheckpointInterval != app.DefaultAuditCheckpointInterval {
		t.Errorf("audit retention %v, checkpoint interval %v by default: want the app's defaults", cfg.Audit.Retention, cfg.Audit.CheckpointInterval)
	}
	if !slices.Equal(o.cfg.Server.CORSOrigins, nil) {
		t.Error("applySettings changed the options' own config")
	}
}

// The audit flags reach the app's configuration: --audit-retention 0 is
// forever (the app's negative), a retention and interval as given.
func TestServeAuditSettings(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		retention time.Duration
		interval  time.Duration
	}{
		{[]string{"--audit-retention", "0"}, -1, app.DefaultAuditCheckpointInterval},
		{[]string{"--audit-retention", "720h", "--audit-checkpoint-interval", "1m"}, 720 * time.Hour, time.Minute},
	} {
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		o := serveFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		cfg := o.cfg
		if err := o.applySettings(&cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Audit.Retention != tc.retention || cfg.Audit.CheckpointInterval != tc.interval {
			t.Errorf("%v: retention %v, checkpoint interval %v; want %v, %v", tc.args, cfg.Audit.Retention, cfg.Audit.CheckpointInterval, tc.retention, tc.interval)
		}
	}
}

// --audit-log - writes to serve's stdout, which the app must not close.
func TestServeAuditLogToStdout(t *testing.T) {
	var out strings.Builder
	o := &serveOptions{auditLog: "-", stdout: &out}
	w, err := o.openAuditLog()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w.(io.Closer); ok {
		t.Error("the stdout sink is an io.Closer: the app would close stdout when it stops")
	}
	io.WriteString(w, "{}\n")
	if out.String() != "{}\n" {
		t.Errorf("stdout got %q", out.String())
	}
}
