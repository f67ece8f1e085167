package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/auth"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	a, err := newServeApp(ctx, args, getenv, stderr)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// newServeApp parses serve's flags (and their variables) and builds the
// application, listening.
func newServeApp(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) (*app.App, error) {
	fs := newFlagSet("serve", "Serve gRPC and REST, the JWKS, the OpenAPI spec and Swagger UI.", stderr)
	var cfg app.Config
	dbCfg := dbFlags(fs)
	newLogger := logFlags(fs)
	srvCfg := &cfg.Server
	tokCfg := &cfg.Tokens
	usrCfg := &cfg.Users
	fs.StringVar(&srvCfg.HTTPAddr, "http-addr", ":8080", "REST, /docs, /openapi.json, /.well-known/* and health: listen address")
	fs.StringVar(&srvCfg.GRPCAddr, "grpc-addr", ":9090", "gRPC listen address")
	fs.StringVar(&srvCfg.Issuer, "issuer", "http://localhost:8080", "the access tokens' iss claim: this service's public base URL (jwks_uri is under it)")
	fs.DurationVar(&srvCfg.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	audience := fs.String("audience", "", "the access tokens' aud claim (default: the issuer)")
	fs.DurationVar(&cfg.Minter.Lifetime, "access-token-ttl", 15*time.Minute, "access token lifetime (never past the API token's own expiry)")
	fs.DurationVar(&cfg.Minter.Reuse, "access-token-reuse", time.Minute, "an API token exchanged again within this time of its last exchange gets the same access token, not a new signature (0: always a new one)")
	fs.DurationVar(&cfg.Cache.TTL, "cache-ttl", 5*time.Second, "how long a token or user read from the database is reused: a deletion through another replica takes effect here within it (0: no cache)")
	fs.IntVar(&cfg.Cache.Size, "cache-size", 10000, "tokens (and users) the cache holds")
	fs.DurationVar(&cfg.LastUsedFlushInterval, "last-used-flush-interval", 30*time.Second, "how often the tokens' last-used times are written, in one batch (and at shutdown); the most they lag (0: not tracked)")
	fs.DurationVar(&tokCfg.MaxTokenLifetime, "max-token-lifetime", 0, "if set, the longest an API token may live; tokens without expire_time get it")
	fs.IntVar(&tokCfg.MaxTokensPerUser, "max-tokens-per-user", 1000, "live (neither deleted nor expired) API tokens one user may have (0: no limit)")
	fs.IntVar(&usrCfg.MaxMachineUsersPerOwner, "max-machine-users-per-owner", 100, "machine users one human user may own (0: no limit)")
	fs.IntVar(&usrCfg.LoginAttemptsPerUserAndAddress, "login-attempts-per-user-and-address", 10, "password attempts allowed a minute per username from one client address (0: no limit)")
	fs.IntVar(&usrCfg.LoginAttemptsPerAddress, "login-attempts-per-address", 60, "password attempts allowed a minute per client address, whatever the username (0: no limit)")
	fs.IntVar(&usrCfg.LoginAttemptsPerUser, "login-attempts-per-user", 100, "password attempts allowed a minute per username from all addresses together; only attempts the two limits above let through count (0: no limit)")
	fs.IntVar(&cfg.MaxConcurrentPasswordHashes, "max-concurrent-password-hashes", runtime.NumCPU(), "argon2id verifications run at once (each takes 19 MiB); more wait")
	tlsCert := fs.String("tls-cert", "", "PEM certificate (chain) file: with --tls-key, serve REST and gRPC over TLS")
	tlsKey := fs.String("tls-key", "", "PEM private key file for --tls-cert")
	lim := &srvCfg.Limits
	fs.DurationVar(&lim.ReadHeaderTimeout, "http-read-header-timeout", 10*time.Second, "the longest a client may take to send a request's headers")
	fs.DurationVar(&lim.ReadTimeout, "http-read-timeout", 30*time.Second, "the longest a client may take to send a whole request")
	fs.DurationVar(&lim.WriteTimeout, "http-write-timeout", 30*time.Second, "the longest writing a response may take")
	fs.DurationVar(&lim.IdleTimeout, "http-idle-timeout", 2*time.Minute, "how long an idle keep-alive connection is kept")
	streams := fs.Uint("grpc-max-concurrent-streams", 1000, "gRPC streams one connection may have open at once")
	fs.IntVar(&lim.MaxRecvMsgBytes, "grpc-max-recv-bytes", 1<<20, "the largest gRPC request message accepted")
	gcPercent := fs.Int("gc-percent", 400, "the Go collector's GOGC: heap growth before a collection, in percent of the live heap (0: Go's default; GOGC in the environment wins)")
	memoryLimitMiB := fs.Int64("memory-limit-mib", 64, "the Go runtime's soft memory limit, MiB (0: none; GOMEMLIMIT in the environment wins)")
	kekFile := fs.String("key-encryption-key-file", "", "a file holding 32 random bytes in base64 (openssl rand -base64 32): signing keys and server secrets are stored encrypted under it, so a database dump alone cannot mint tokens; keep it out of the database and its backups")
	debugAddr := fs.String("debug-addr", "", "if set, serve Go's profiler (/debug/pprof/) here; keep it private (e.g. 127.0.0.1:6060)")
	corsOrigins := fs.String("cors-origins", "", "comma-separated browser origins allowed to call the REST API (default: none, CORS off)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return nil, err
	}
	cfg.Store = *dbCfg
	lim.MaxConcurrentStreams = uint32(min(*streams, 1<<31))
	if *audience == "" {
		*audience = srvCfg.Issuer
	}
	cfg.Minter.Issuer, cfg.Minter.Audience = srvCfg.Issuer, *audience
	if cfg.Minter.Lifetime <= 0 {
		return nil, fmt.Errorf("--access-token-ttl must be positive")
	}
	if cfg.Minter.Reuse < 0 || 2*cfg.Minter.Reuse > cfg.Minter.Lifetime {
		return nil, fmt.Errorf("--access-token-reuse must be between 0 and half of --access-token-ttl")
	}
	for _, o := range strings.Split(*corsOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			srvCfg.CORSOrigins = append(srvCfg.CORSOrigins, o)
		}
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return nil, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return nil, fmt.Errorf("loading the TLS certificate: %w", err)
		}
		srvCfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	tuneGC(*gcPercent, *memoryLimitMiB)
	logger, err := newLogger(stderr)
	if err != nil {
		return nil, err
	}
	cfg.Logger = logger

	if *kekFile != "" {
		text, err := os.ReadFile(*kekFile)
		if err != nil {
			return nil, fmt.Errorf("--key-encryption-key-file: %w", err)
		}
		if cfg.KeyEncryptionKey, err = auth.ParseKeyEncryptionKey(text); err != nil {
			return nil, fmt.Errorf("--key-encryption-key-file: %w", err)
		}
	} else {
		logger.Warn("signing keys and server secrets are stored unencrypted in the database: set --key-encryption-key-file")
	}
	if *debugAddr != "" {
		if err := startDebug(ctx, *debugAddr, logger); err != nil {
			return nil, err
		}
	}
	return app.New(ctx, cfg)
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
