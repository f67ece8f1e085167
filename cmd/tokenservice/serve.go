package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/federation"
	"github.com/tokenservice/tokenservice/pkg/issuers"
	"github.com/tokenservice/tokenservice/pkg/server"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/telemetry"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

func serveCommand(e *env) *cobra.Command {
	var o *serveOptions
	cmd := &cobra.Command{
		Use:     "serve",
		Short:   "Serve gRPC and REST, the JWKS, the OpenAPI spec and Swagger UI",
		Long:    "Serve gRPC and REST, the JWKS, the OpenAPI spec and Swagger UI. The database is migrated at start.\n\nEvery flag can also be set by the environment variable named in brackets; a flag wins over its variable.",
		GroupID: groupServer,
		Args:    args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkDriver(cmd, o.db); err != nil {
				return err
			}
			a, err := o.build(cmd.Context(), e.getenv, e.stderr)
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	o = serveFlags(cmd.Flags())
	o.stdout = e.stdout
	return cmd
}

// newServeApp parses serve's flags and their variables, and builds the
// application, listening, as serve does (the tests run it so).
func newServeApp(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) (*app.App, error) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o := serveFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := applyEnvFlags(fs, getenv); err != nil {
		return nil, err
	}
	return o.build(ctx, getenv, stderr)
}

// serveOptions are serve's flags.
type serveOptions struct {
	cfg            app.Config
	db             *store.Config
	logger         func(io.Writer) (*slog.Logger, error)
	audience       string
	tlsCert        string
	tlsKey         string
	streams        uint
	gcPercent      int
	memoryLimitMiB int64
	kek            *kekFiles
	debugAddr      string
	corsOrigins    string
	auditRetention time.Duration
	auditLog       string
	trustedIssuers string
	sso            ssoOptions
	stdout         io.Writer // where --audit-log - writes
}

func serveFlags(fs *pflag.FlagSet) *serveOptions {
	o := &serveOptions{db: dbFlags(fs), logger: logFlags(fs)}
	cfg := &o.cfg
	srv, lim := &cfg.Server, &cfg.Server.Limits
	fs.StringVar(&srv.HTTPAddr, "http-addr", ":8080", "REST, /docs, /openapi.json, /.well-known/* and health: listen address")
	fs.StringVar(&srv.GRPCAddr, "grpc-addr", ":9090", "gRPC listen address")
	fs.StringVar(&srv.Issuer, "issuer", "", "the access tokens' iss claim: this service's public base URL (jwks_uri is under it) (default: from --http-addr, http://localhost:<its port>, or its host if it names one; https with --tls-cert)")
	fs.DurationVar(&srv.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fs.StringVar(&o.audience, "audience", "", "the access tokens' aud claim (default: the issuer)")
	fs.StringSliceVar(&cfg.Minter.Resources, "resources", nil, "comma-separated identifiers (absolute URIs) of the APIs an access token may be minted for alone (RFC 8707 resource: GetAccessToken's resource, the token endpoint's resource parameter); the token's aud is then that API's, so no other API accepts it")
	fs.DurationVar(&cfg.KeyRotation.Period, "key-rotation-period", 30*24*time.Hour, "how often a new signing key is made (0: only by tokenservice keys rotate)")
	fs.DurationVar(&cfg.KeyRotation.PropagationDelay, "key-propagation-delay", app.DefaultKeyPropagationDelay, "how long a new signing key is published before it signs: at least --jwks-max-age plus --key-reload-interval")
	fs.DurationVar(&cfg.KeyReloadInterval, "key-reload-interval", time.Minute, "how often the signing keys are reloaded from the database (and a due rotation made)")
	fs.DurationVar(&srv.JWKSMaxAge, "jwks-max-age", server.DefaultJWKSMaxAge, "how long gateways may cache the JWKS (its Cache-Control max-age)")
	fs.DurationVar(&cfg.Minter.Lifetime, "access-token-ttl", 15*time.Minute, "access token lifetime (never past the API token's own expiry)")
	fs.DurationVar(&cfg.Minter.Reuse, "access-token-reuse", time.Minute, "an API token exchanged again within this time of its last exchange gets the same access token, not a new signature (0: always a new one)")
	fs.DurationVar(&cfg.Cache.TTL, "cache-ttl", 5*time.Second, "how long a token or user read from the database is trusted past the later of its read and the last successful poll of the change feed: while the database cannot be polled, a revocation through another replica takes effect here within it (0: no cache)")
	fs.DurationVar(&cfg.Cache.MaxAge, "cache-max-age", 10*time.Minute, "how long a token or user read from the database is kept at most while the change feed is polled")
	fs.DurationVar(&cfg.Feed.Interval, "revocation-poll-interval", time.Second, "how often the database's change feed is polled for revocations made through other replicas: with a query's time, how late they take effect here (0: not polled; the cache then trusts an entry for --cache-ttl)")
	fs.IntVar(&cfg.Cache.Size, "cache-size", app.DefaultCacheSize, "tokens (and users, federated credentials, access tokens kept for reuse and verified) each of the per-token memories holds; each cached token costs about 1.75 KB: keep --memory-limit-mib at least 32 MiB plus twice that")
	fs.DurationVar(&cfg.LastUsedFlushInterval, "last-used-flush-interval", 30*time.Second, "how often the tokens' last-used times are written, in one batch (and at shutdown); the most they lag (0: not tracked)")
	fs.DurationVar(&cfg.Tokens.MaxTokenLifetime, "max-token-lifetime", 0, "if set, the longest an API token may live; tokens without expire_time get it")
	fs.IntVar(&cfg.Tokens.MaxTokensPerUser, "max-tokens-per-user", 1000, "live (neither deleted nor expired) API tokens one user may have (0: no limit)")
	fs.StringSliceVar(&cfg.Tokens.Scopes, "scopes", nil, "comma-separated scopes of your APIs that tokens may carry, beside the service's own (tokens:read, tokens:write, users:read, users:write, introspect), e.g. orders:read,orders:write")
	fs.DurationVar(&cfg.Tokens.MaxRotationGracePeriod, "max-rotation-grace-period", 24*time.Hour, "the longest a rotated token's old secret may keep working, as RotateToken's grace_period asks (at most 24h; 0: refused at once, always)")
	fs.BoolVar(&cfg.Tokens.RevokeAPITokenByAccessToken, "revoke-api-token-by-access-token", false, "let whoever holds an access token revoke the API token it was minted from at /oauth2/revoke (RFC 7009); off, revoking an access token answers unsupported_token_type")
	fs.IntVar(&cfg.Users.MaxMachineUsersPerOwner, "max-machine-users-per-owner", 100, "machine users one human user may own (0: no limit)")
	fs.IntVar(&cfg.Users.LoginAttemptsPerUserAndAddress, "login-attempts-per-user-and-address", 10, "password attempts allowed a minute per username from one client address (0: no limit)")
	fs.IntVar(&cfg.Users.LoginAttemptsPerAddress, "login-attempts-per-address", 60, "password attempts allowed a minute per client address, whatever the username (0: no limit)")
	fs.IntVar(&cfg.Users.LoginAttemptsPerUser, "login-attempts-per-user", 100, "password attempts allowed a minute per username from addresses it has not logged in from in the last 30 days; past them only the addresses it has get through (0: no limit)")
	fs.IntVar(&cfg.Users.CreationsPerHour, "user-creations-per-hour", 30, "CreateUser attempts allowed an hour per caller, refused ones included: a taken username is told apart, so guessing them must cost (0: no limit)")
	fs.IntVar(&cfg.MaxConcurrentPasswordHashes, "max-concurrent-password-hashes", runtime.NumCPU(), "argon2id verifications run at once (each takes 19 MiB); more wait")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate (chain) file: with --tls-key, serve REST and gRPC over TLS")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key file for --tls-cert")
	fs.DurationVar(&lim.ReadHeaderTimeout, "http-read-header-timeout", 10*time.Second, "the longest a client may take to send a request's headers")
	fs.DurationVar(&lim.ReadTimeout, "http-read-timeout", 30*time.Second, "the longest a client may take to send a whole request")
	fs.DurationVar(&lim.WriteTimeout, "http-write-timeout", 30*time.Second, "the longest writing a response may take")
	fs.DurationVar(&lim.IdleTimeout, "http-idle-timeout", 2*time.Minute, "how long an idle keep-alive connection is kept")
	fs.UintVar(&o.streams, "grpc-max-concurrent-streams", 1000, "gRPC streams one connection may have open at once")
	fs.IntVar(&lim.MaxRecvMsgBytes, "grpc-max-recv-bytes", 1<<20, "the largest gRPC request message accepted")
	fs.DurationVar(&lim.GRPCConnectionTimeout, "grpc-connection-timeout", 10*time.Second, "the longest a new gRPC connection may take to finish its handshake (TLS and HTTP/2 preface); one that says nothing is closed after it")
	fs.DurationVar(&lim.GRPCMaxConnectionIdle, "grpc-max-connection-idle", 2*time.Minute, "a gRPC connection with no call for this long is closed (the client reconnects when it needs to)")
	const connsHelp = "at once; more wait until one closes (0: a share of the open-file limit, see the README)"
	fs.IntVar(&lim.MaxHTTPConns, "http-max-connections", 0, "connections --http-addr keeps open "+connsHelp)
	fs.IntVar(&lim.MaxGRPCConns, "grpc-max-connections", 0, "connections --grpc-addr keeps open "+connsHelp)
	fs.IntVar(&lim.MaxMetricsConns, "metrics-max-connections", 0, "connections --metrics-addr keeps open "+connsHelp)
	fs.IntVar(&o.gcPercent, "gc-percent", app.DefaultGCPercent, "the Go collector's GOGC: heap growth before a collection, in percent of the live heap (0: Go's default; GOGC in the environment wins)")
	fs.Int64Var(&o.memoryLimitMiB, "memory-limit-mib", app.DefaultMemoryLimitMiB, "the Go runtime's soft memory limit, MiB (0: none; GOMEMLIMIT in the environment wins)")
	o.kek = kekFlags(fs, kekFileHelp)
	fs.StringVar(&srv.MetricsAddr, "metrics-addr", "127.0.0.1:9464", "serve Prometheus metrics (/metrics) on this address, a listener of their own: off the public port, as a security service's counters should be (off: no listener; :9464 to be scraped from other hosts)")
	fs.BoolVar(&srv.MetricsOnHTTP, "metrics-on-http-addr", false, "serve /metrics on --http-addr too, to whoever reaches it")
	fs.StringVar(&o.debugAddr, "debug-addr", "", "if set, serve Go's profiler (/debug/pprof/) here; keep it private (e.g. 127.0.0.1:6060)")
	fs.StringVar(&o.corsOrigins, "cors-origins", "", "comma-separated browser origins allowed to call the REST API (default: none, CORS off)")
	fs.DurationVar(&o.auditRetention, "audit-retention", app.DefaultAuditRetention, "how long audit events are kept: older ones are deleted, oldest first, every hour, and the trail verifies from the first kept (0: forever; else at least 24h)")
	fs.StringVar(&o.auditLog, "audit-log", "", "also write every audit event this replica seals, as a JSON line, to this file (created mode 0600, appended to) or - for stdout, for a log shipper (Vector, Fluent Bit, Promtail); each replica writes the events it sealed, so ship every replica's")
	fs.DurationVar(&cfg.Audit.CheckpointInterval, "audit-checkpoint-interval", app.DefaultAuditCheckpointInterval, "how often each replica verifies the audit events since the last checkpoint and signs a checkpoint of the trail")
	fed := &cfg.Federation
	fs.StringVar(&o.trustedIssuers, "trusted-issuers", "", "comma-separated OIDC issuers whose tokens machine users' federated credentials may accept (https://token.actions.githubusercontent.com,https://gitlab.com), each URL=JWKS_FILE to read its keys from a file instead of fetching them (a cluster's service-account issuer); https only, but http on a loopback address; no other URL is ever fetched")
	fs.IntVar(&fed.MaxPerUser, "max-federated-credentials-per-user", federation.DefaultMaxPerUser, "federated credentials one machine user may have (0: no limit)")
	fs.DurationVar(&fed.Issuers.MaxAge, "federated-token-max-age", issuers.DefaultMaxAge, "how old (by its iat) a trusted issuer's token may be when exchanged")
	fs.DurationVar(&fed.Issuers.RefreshInterval, "issuer-keys-refresh-interval", issuers.DefaultRefreshInterval, "the least time between two fetches of one issuer's discovery document or keys, whatever the cause (an unknown kid, an expired cache, a failed fetch retried): a flood of tokens with unknown kids costs at most one fetch an interval")
	o.sso.flags(fs, cfg)
	var all []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Annotations[envAnnotation] == nil {
			all = append(all, f.Name)
		}
	})
	fromEnv(fs, all...) // serve's flags are all configuration
	return o
}

// build checks the options and builds the application, listening.
func (o *serveOptions) build(ctx context.Context, getenv func(string) string, stderr io.Writer) (_ *app.App, err error) {
	cfg := o.cfg
	cfg.Store = *o.db
	cfg.Server.Limits.MaxConcurrentStreams = uint32(min(o.streams, 1<<31))
	explicitIssuer := cfg.Server.Issuer != ""
	if !explicitIssuer {
		if cfg.Server.Issuer, cfg.Server.HTTPListener, err = issuerFromHTTPAddr(cfg.Server.HTTPAddr, o.tlsCert != ""); err != nil {
			return nil, err
		}
		if lis := cfg.Server.HTTPListener; lis != nil {
			defer func() {
				if err != nil {
					lis.Close()
				}
			}()
		}
	}
	if err := o.applySettings(&cfg); err != nil {
		return nil, err
	}
	tuneGC(o.gcPercent, o.memoryLimitMiB)
	logger, err := o.logger(stderr)
	if err != nil {
		return nil, err
	}
	cfg.Logger = logger
	if floor := app.MemoryFloorMiB(cfg.Cache.Size); os.Getenv("GOMEMLIMIT") == "" && o.memoryLimitMiB > 0 && o.memoryLimitMiB < floor && cfg.Cache.TTL > 0 {
		logger.Warn("--memory-limit-mib leaves full caches no room: the collector will run often once they fill; raise it, or lower --cache-size",
			"memory_limit_mib", o.memoryLimitMiB, "cache_size", cfg.Cache.Size, "at_least_mib", floor)
	}
	if cfg.KeyEncryptionKey, cfg.OldKeyEncryptionKeys, err = o.kek.load(); err != nil {
		return nil, err
	}
	if cfg.Audit.Sink, err = o.openAuditLog(); err != nil {
		return nil, err
	}
	if c, ok := cfg.Audit.Sink.(io.Closer); ok {
		defer func() {
			if err != nil {
				c.Close()
			}
		}()
	}
	if o.debugAddr != "" {
		if err := startDebug(ctx, o.debugAddr, logger); err != nil {
			return nil, err
		}
	}
	// Tracing: the standard OTEL_* variables say whether and where. The app
	// shuts the provider down when it has run; here, if it is not built.
	shutdown := func(context.Context) error { return nil }
	if telemetry.Enabled(getenv) {
		if cfg.TracerProvider, shutdown, err = telemetry.NewTracerProvider(ctx, getenv); err != nil {
			return nil, fmt.Errorf("tracing (OTEL_* variables): %w", err)
		}
		logger.Info("tracing on: spans exported as the OTEL_* variables say")
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		shutdown(context.WithoutCancel(ctx))
		return nil, err
	}
	if cfg.KeyEncryptionKey == nil {
		logger.Warn("signing keys and server secrets are stored unencrypted in the database: set --key-encryption-key-file")
	}
	if explicitIssuer {
		if msg := issuerPortMismatch(cfg.Server.Issuer, cfg.Server.HTTPAddr, a.HTTPAddr()); msg != "" {
			logger.Warn(msg)
		}
	} else {
		logger.Info("issuer derived from --http-addr; set --issuer to the URL clients reach this service at", "issuer", cfg.Server.Issuer)
	}
	return a, nil
}

// applySettings checks serve's flags, group by group, and derives into cfg
// the settings they imply: all that comes before the logger, the
// key-encryption key and the listeners other than the issuer's. The first
// error wins, in the order serve has always reported them.
func (o *serveOptions) applySettings(cfg *app.Config) error {
	if err := o.checkMinter(&cfg.Minter, cfg.Server.Issuer); err != nil {
		return err
	}
	if err := checkTokenRules(cfg.Tokens); err != nil {
		return err
	}
	if err := checkConnLimits(cfg.Server.Limits); err != nil {
		return err
	}
	if err := checkKeyTiming(cfg.KeyRotation.PropagationDelay, cfg.Server.JWKSMaxAge, cfg.KeyReloadInterval); err != nil {
		return err
	}
	cfg.Server.CORSOrigins = splitOrigins(o.corsOrigins)
	if err := o.checkFederation(&cfg.Federation); err != nil {
		return err
	}
	if err := o.sso.check(cfg); err != nil {
		return err
	}
	tlsConfig, err := o.loadTLS()
	if err != nil {
		return err
	}
	cfg.Server.TLS = tlsConfig
	if cfg.Server.MetricsAddr == "off" {
		cfg.Server.MetricsAddr = ""
	}
	return o.checkAudit(&cfg.Audit)
}

// checkFederation reads --trusted-issuers into cfg.
func (o *serveOptions) checkFederation(cfg *app.FederationConfig) error {
	list, err := issuers.ParseList(o.trustedIssuers)
	if err != nil {
		return fmt.Errorf("--trusted-issuers: %w", err)
	}
	cfg.Issuers.Issuers = list
	if cfg.MaxPerUser == 0 {
		cfg.MaxPerUser = -1 // the flag's 0: no limit
	}
	if cfg.Issuers.MaxAge <= 0 || cfg.Issuers.RefreshInterval <= 0 {
		return fmt.Errorf("--federated-token-max-age and --issuer-keys-refresh-interval must be positive")
	}
	return nil
}

// minAuditRetention is the shortest --audit-retention: a trail kept for
// less is a mistake (hours meant as days), and would be deleted before a
// daily export or a lagging shipper caught up.
const minAuditRetention = 24 * time.Hour

// checkAudit checks the audit trail's flags and derives cfg's retention
// (--audit-retention 0 keeps the events forever).
func (o *serveOptions) checkAudit(cfg *app.AuditConfig) error {
	switch {
	case o.auditRetention == 0:
		cfg.Retention = -1
	case o.auditRetention < minAuditRetention:
		return fmt.Errorf("--audit-retention must be 0 (keep the events forever) or at least 24h, e.g. 9600h for 400 days")
	default:
		cfg.Retention = o.auditRetention
	}
	if cfg.CheckpointInterval <= 0 {
		return fmt.Errorf("--audit-checkpoint-interval must be positive")
	}
	return nil
}

// openAuditLog opens --audit-log: nil if unset. The app closes a file it
// is given when it stops; stdout is not closed.
func (o *serveOptions) openAuditLog() (io.Writer, error) {
	switch o.auditLog {
	case "":
		return nil, nil
	case "-":
		out := o.stdout
		if out == nil {
			out = os.Stdout
		}
		return struct{ io.Writer }{out}, nil // not an io.Closer
	}
	f, err := os.OpenFile(o.auditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--audit-log: %w", err)
	}
	return f, nil
}

// checkMinter derives the access tokens' issuer and audience (by default,
// the issuer) into m and checks their lifetime, reuse and resources.
func (o *serveOptions) checkMinter(m *auth.MinterConfig, issuer string) error {
	m.Issuer, m.Audience = issuer, o.audience
	if m.Audience == "" {
		m.Audience = issuer
	}
	if m.Lifetime <= 0 {
		return fmt.Errorf("--access-token-ttl must be positive")
	}
	if m.Reuse < 0 || 2*m.Reuse > m.Lifetime {
		return fmt.Errorf("--access-token-reuse must be between 0 and half of --access-token-ttl")
	}
	if err := checkResources(m.Resources, m.Audience); err != nil {
		return fmt.Errorf("--resources: %w", err)
	}
	return nil
}

// checkTokenRules checks the API token rules' flags: the extra scopes and
// the rotation grace period's cap.
func checkTokenRules(t tokens.Config) error {
	if err := tokens.CheckScopes(t.Scopes); err != nil {
		return fmt.Errorf("--scopes: %w", err)
	}
	if t.MaxRotationGracePeriod < 0 || t.MaxRotationGracePeriod > tokens.MaxGracePeriod {
		return fmt.Errorf("--max-rotation-grace-period must be between 0 and 24h")
	}
	return nil
}

// splitOrigins is --cors-origins as a list, blanks dropped: nil if none.
func splitOrigins(list string) []string {
	var origins []string
	for _, origin := range strings.Split(list, ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			origins = append(origins, origin)
		}
	}
	return origins
}

// loadTLS loads --tls-cert and --tls-key, which go together: nil if
// neither is set.
func (o *serveOptions) loadTLS() (*tls.Config, error) {
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if o.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// dbFlags are the database flags of serve and the db commands.
func dbFlags(fs *pflag.FlagSet) *store.Config {
	cfg := &store.Config{}
	fs.StringVar(&cfg.Driver, "db-driver", store.DriverSQLite, "database driver: sqlite (embedded file) or mysql")
	fs.StringVar(&cfg.DSN, "db-dsn", "tokenservice.db", "sqlite: the database file; mysql: user:password@tcp(host:3306)/dbname")
	fs.IntVar(&cfg.MaxOpenConns, "db-max-open-conns", 32, "mysql: the connection pool's size")
	fs.DurationVar(&cfg.QueryTimeout, "db-query-timeout", store.DefaultQueryTimeout, "the longest one database call may take before the request fails with UNAVAILABLE")
	fromEnv(fs, "db-driver", "db-dsn", "db-max-open-conns", "db-query-timeout")
	return cfg
}

// logFlags are the logging flags; the returned function builds the logger.
func logFlags(fs *pflag.FlagSet) func(w io.Writer) (*slog.Logger, error) {
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "json", "json or text")
	fromEnv(fs, "log-level", "log-format")
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

// tuneGC trades memory the service has to spare for CPU: the live heap is
// small (about 10 MiB), so at Go's default GOGC=100 the collector runs every
// few thousand requests and takes a third of the CPU under load. GOGC=400
// with a 64 MiB soft limit (the collector works harder as the heap nears it)
// cut CPU per request by a third to a half in tokenbench. GOGC and GOMEMLIMIT
// set in the environment win; zero leaves Go's own setting.
func tuneGC(percent int, limitMiB int64) {
	if os.Getenv("GOGC") == "" && percent > 0 {
		debug.SetGCPercent(percent)
	}
	if os.Getenv("GOMEMLIMIT") == "" && limitMiB > 0 {
		debug.SetMemoryLimit(limitMiB << 20)
	}
}

// checkConnLimits refuses negative connection caps and timeouts, which
// would otherwise silently take the defaults.
func checkConnLimits(l server.Limits) error {
	for flag, v := range map[string]int{"--http-max-connections": l.MaxHTTPConns, "--grpc-max-connections": l.MaxGRPCConns, "--metrics-max-connections": l.MaxMetricsConns} {
		if v < 0 {
			return fmt.Errorf("%s must be 0 (a share of the open-file limit) or more", flag)
		}
	}
	for flag, v := range map[string]time.Duration{"--grpc-connection-timeout": l.GRPCConnectionTimeout, "--grpc-max-connection-idle": l.GRPCMaxConnectionIdle} {
		if v <= 0 {
			return fmt.Errorf("%s must be positive", flag)
		}
	}
	return nil
}

// checkKeyTiming is auth.CheckPropagation, saying which flags set what.
func checkKeyTiming(propagation, jwksMaxAge, reload time.Duration) error {
	if err := auth.CheckPropagation(propagation, jwksMaxAge, reload); err != nil {
		return fmt.Errorf("--key-propagation-delay, --jwks-max-age, --key-reload-interval: %w", err)
	}
	return nil
}

// kekFiles are the key-encryption key flags: the key that seals, and the
// one being replaced, which only opens (see tokenservice keys reseal).
type kekFiles struct{ current, old string }

const kekFileHelp = "a file holding 32 random bytes in base64 (openssl rand -base64 32), mode 0600 (one other users may read is refused): signing keys and server secrets are stored encrypted under it, so a database dump alone cannot mint tokens; keep it out of the database and its backups"

func kekFlags(fs *pflag.FlagSet, help string) *kekFiles {
	k := &kekFiles{}
	fs.StringVar(&k.current, "key-encryption-key-file", "", help)
	fs.StringVar(&k.old, "old-key-encryption-key-file", "", "while changing the key-encryption key (README): a second key this process opens values with but never seals under, the next one or the previous one")
	return k
}

// load reads the key files given: nil if none.
func (k *kekFiles) load() (kek []byte, old [][]byte, err error) {
	if k.current == "" {
		if k.old != "" {
			return nil, nil, errors.New("--old-key-encryption-key-file needs --key-encryption-key-file, the key replacing it")
		}
		return nil, nil, nil
	}
	if kek, err = readKEK("--key-encryption-key-file", k.current); err != nil {
		return nil, nil, err
	}
	if k.old != "" {
		o, err := readKEK("--old-key-encryption-key-file", k.old)
		if err != nil {
			return nil, nil, err
		}
		old = append(old, o)
	}
	return kek, old, nil
}

// checkResources refuses a resource that is not an absolute URI without a
// fragment (RFC 8707 §2), or that is the service's own audience.
func checkResources(resources []string, audience string) error {
	for _, r := range resources {
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Fragment != "" {
			return fmt.Errorf("%q: a resource is an absolute URI without a fragment (RFC 8707 section 2), e.g. https://orders.example.com", r)
		}
		if r == audience {
			return fmt.Errorf("%q is the service's own audience (--audience): name only the APIs behind your gateways", r)
		}
	}
	return nil
}
