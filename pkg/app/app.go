// Package app builds tokenservice from its configuration: the store, the
// cache, the keys, the services, the server, and their lifecycle (start-up
// while the database is away, readiness, last-used recording, shutdown).
// `tokenservice serve`, the tests, the fuzz targets and the benchmarks all
// build it here, so what they exercise is what runs.
package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tokenservice/tokenservice/pkg/api"
	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/bearer"
	"github.com/tokenservice/tokenservice/pkg/cache"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenservice/tokenservice/pkg/extauthz"
	"github.com/tokenservice/tokenservice/pkg/federation"
	"github.com/tokenservice/tokenservice/pkg/forwardauth"
	"github.com/tokenservice/tokenservice/pkg/lastused"
	"github.com/tokenservice/tokenservice/pkg/metrics"
	"github.com/tokenservice/tokenservice/pkg/oauth"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
	"github.com/tokenservice/tokenservice/pkg/server"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// Config is everything the application is built from.
type Config struct {
	Store  store.Config
	Server server.Config
	Tokens tokens.Config
	Users  users.Config
	Minter auth.MinterConfig
	Cache  cache.Config // TTL 0: no cache
	// Feed says how the cache follows the database's change feed (an
	// Interval of 0: it does not; entries live the cache's TTL).
	Feed cache.FeedConfig
	// KeyEncryptionKey (32 bytes) seals signing keys and server secrets in
	// the database; nil: they are stored as they are.
	KeyEncryptionKey []byte
	// OldKeyEncryptionKeys open values sealed before KeyEncryptionKey
	// replaced them; they seal nothing.
	OldKeyEncryptionKeys [][]byte
	// TracerProvider, if set, traces HTTP requests, RPCs and database
	// calls; Run shuts it down (flushing its spans) when it ends, if it
	// has a Shutdown method.
	TracerProvider trace.TracerProvider
	// LastUsedFlushInterval is how often tokens' last-used times are
	// written; 0: not recorded.
	LastUsedFlushInterval time.Duration
	// Audit says how the audit trail is kept.
	Audit AuditConfig
	// Federation says which OIDC issuers' tokens may stand for machine users.
	Federation FederationConfig
	// Console says how people sign in to the console at /console.
	Console ConsoleConfig
	// KeyRotation says how signing keys follow each other (a zero
	// PropagationDelay: DefaultKeyPropagationDelay; a zero VerifyFor: from
	// the access tokens' lifetime); the key set is reloaded (and a due
	// rotation made) every KeyReloadInterval (0: a minute), so replicas
	// take up keys added elsewhere without a restart.
	KeyRotation       auth.Rotation
	KeyReloadInterval time.Duration
	// PasswordParams are the argon2id parameters (zero: auth.OWASPParams);
	// at most MaxConcurrentPasswordHashes verifications run at once.
	PasswordParams              auth.Argon2Params
	MaxConcurrentPasswordHashes int
	Logger                      *slog.Logger
}

// App is tokenservice, built and listening.
type App struct {
	cfg      Config
	logger   *slog.Logger
	store    *store.Store
	secrets  domain.Keys // the store, sealed if configured
	keys     *auth.KeyRing
	pages    *pagetoken.Codec
	lastUsed *lastused.Recorder // nil: not recorded
	cache    *cache.Cache       // nil: none
	data     cache.Store        // what the rules read: the cache, or the store
	// The audit trail's writers (see audit.go); the signer is loaded at start.
	auditRecorder *audit.Recorder
	auditSealer   *audit.Sealer
	auditSigner   *audit.Signer
	metrics       *metrics.Metrics
	// keysLoaded is when the signing keys were last loaded (UnixNano).
	keysLoaded atomic.Int64
	tokens     *tokens.Service
	users      *users.Service
	federation *federation.Service
	// trustedIssuers are the URLs of the trusted issuers.
	trustedIssuers []string
	server         *server.Server

	started atomic.Bool
	wg      sync.WaitGroup
}

// New builds the application and opens its listeners. It does not touch
// the database: Run brings the services up when the database answers.
func New(ctx context.Context, cfg Config) (*App, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	passwords, err := auth.NewPasswords(cfg.PasswordParams, rand.Reader, cfg.MaxConcurrentPasswordHashes)
	if err != nil {
		return nil, err
	}
	a, err := openStoreAndKeys(cfg)
	if err != nil {
		return nil, err
	}
	a.registerMetrics()
	a.buildAudit()
	if err := a.buildRules(passwords); err != nil {
		a.store.Close()
		return nil, err
	}
	if a.server, err = a.buildServer(ctx); err != nil {
		a.store.Close()
		return nil, err
	}
	return a, nil
}

// withDefaults fills in what cfg leaves unset, and refuses a key
// propagation delay too short for gateways to fetch a new key before it
// signs (auth.CheckPropagation).
func withDefaults(cfg Config) (Config, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PasswordParams == (auth.Argon2Params{}) {
		cfg.PasswordParams = auth.OWASPParams
	}
	if cfg.KeyReloadInterval <= 0 {
		cfg.KeyReloadInterval = time.Minute
	}
	if cfg.Server.JWKSMaxAge <= 0 {
		cfg.Server.JWKSMaxAge = server.DefaultJWKSMaxAge
	}
	if cfg.KeyRotation.PropagationDelay <= 0 {
		cfg.KeyRotation.PropagationDelay = DefaultKeyPropagationDelay
	}
	if err := auth.CheckPropagation(cfg.KeyRotation.PropagationDelay, cfg.Server.JWKSMaxAge, cfg.KeyReloadInterval); err != nil {
		return cfg, err
	}
	if cfg.KeyRotation.VerifyFor <= 0 {
		cfg.KeyRotation.VerifyFor = auth.VerifyFor(cfg.Minter.Lifetime, cfg.KeyReloadInterval)
	}
	cfg.Store.Logger = cfg.Logger
	cfg.Store.TracerProvider = cfg.TracerProvider
	return cfg, nil
}

// openStoreAndKeys opens the store (without reaching the database), seals
// what it keeps of keys and secrets if a key-encryption key is configured,
// and sets up the signing key ring over it; the keys are loaded at start.
func openStoreAndKeys(cfg Config) (*App, error) {
	st, err := store.Open(cfg.Store)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, logger: cfg.Logger, store: st, secrets: st, pages: pagetoken.New()}
	if cfg.KeyEncryptionKey != nil {
		if a.secrets, err = auth.NewSealedKeys(st, cfg.KeyEncryptionKey, rand.Reader, cfg.OldKeyEncryptionKeys...); err != nil {
			st.Close()
			return nil, err
		}
	}
	rotation := cfg.KeyRotation
	rotation.Actor = domain.AuditParty{Kind: domain.ActorService}
	a.keys = auth.NewKeyRing(a.secrets, rand.Reader, rotation)
	return a, nil
}

// registerMetrics makes the metrics and registers those read on scrape:
// the database pool, the signing key's age, the tokens about to expire.
func (a *App) registerMetrics() {
	a.metrics = metrics.New()
	a.metrics.Register(metrics.Sources{DB: a.store.DB(), CountExpiring: a.store.CountExpiring, Clock: now,
		Transactions: func() metrics.TransactionCounts {
			s := a.store.TransactionStats()
			return metrics.TransactionCounts{Begun: s.Begun, Conflicts: s.Conflicts, GaveUp: s.GaveUp}
		},
		SigningKeyActivated: func() (time.Time, bool) {
			ks := a.keys.Current()
			if ks == nil {
				return time.Time{}, false
			}
			return ks.SigningKeyActivation(), true
		}})
}

// buildRules builds the token, user and federation rules over the store
// (through the cache, if it has a TTL), and the last-used recorder, if
// configured.
func (a *App) buildRules(passwords *auth.Passwords) error {
	cfg, st := a.cfg, a.store
	var data cache.Store = st
	if cfg.Cache.TTL > 0 {
		a.cache = cache.New(st, cfg.Cache, time.Now, a.metrics)
		data = a.cache
	}
	a.data = data
	minter := cfg.Minter
	if minter.CacheSize == 0 {
		minter.CacheSize = cfg.Cache.Size // one size for every per-token memory
	}
	tokensDeps := tokens.Deps{Users: data, Tokens: data, Federated: data, Minter: auth.NewMinter(a.keys, minter),
		Pages: a.pages, Observer: a.metrics, Audit: a.auditRecorder, Clock: now, Rand: rand.Reader}
	if cfg.LastUsedFlushInterval > 0 {
		a.lastUsed = lastused.New(st, cfg.LastUsedFlushInterval, cfg.Logger, a.metrics)
		tokensDeps.LastUsed = a.lastUsed
	}
	a.tokens = tokens.New(cfg.Tokens, tokensDeps)
	a.users = users.New(cfg.Users, users.Deps{Users: data, SignIns: signIns{st, a.cache}, Passwords: passwords, Pages: a.pages, Observer: a.metrics,
		Audit: a.auditRecorder, Clock: now, Rand: rand.Reader})
	return a.buildFederation(data)
}

// buildServer builds the doors onto the rules (the API's services, the
// OAuth endpoints) and the server that serves them, with its listeners.
func (a *App) buildServer(ctx context.Context) (*server.Server, error) {
	cfg := a.cfg
	apiDeps := api.Deps{Tokens: a.tokens, Users: a.users, Federation: a.federation, Recorder: a.auditRecorder,
		Audit: audit.NewService(audit.Deps{Log: a.store, Pages: a.pages, Flush: a.FlushAudit})}
	guard, err := api.NewGuard(apiDeps)
	if err != nil {
		return nil, err
	}
	endpoints := oauth.New(cfg.Server.Issuer, oauth.Deps{Tokens: a.tokens, Federation: a.federation, Started: a.started.Load, Logger: cfg.Logger, Clock: now})
	// The plain HTTP endpoints beside the API: OAuth's, and the one
	// gateways ask per request (issue 23).
	routes := endpoints.Routes()
	maps.Copy(routes, forwardauth.New(a.tokens, cfg.Logger).Routes())
	consoleRoutes, err := a.consoleRoutes(apiDeps.Audit)
	if err != nil {
		return nil, err
	}
	maps.Copy(routes, consoleRoutes)
	return server.New(ctx, cfg.Server, server.Deps{
		Logger:          cfg.Logger,
		Started:         a.started.Load,
		Ready:           a.Ready,
		JWKS:            a.keys.JWKS,
		Metrics:         a.metrics.Handler(),
		ObserveRPC:      a.metrics.UnaryServerInterceptor,
		TracerProvider:  cfg.TracerProvider,
		Routes:          routes,
		ResponseHeaders: []string{bearer.TokenExpirationHeader},
		Services:        a.services(apiDeps, guard),
	})
}

// services lists the services of the API, served over gRPC and (those
// with a RegisterGateway) REST: adding a service is one line here. Each
// method's access rule is in its proto.
func (a *App) services(apiDeps api.Deps, guard *api.Guard) []server.Service {
	return []server.Service{
		{Desc: &pb.TokenService_ServiceDesc, Impl: api.NewTokenServer(apiDeps), Authenticate: guard.Authenticate, RegisterGateway: server.Gateway(pb.RegisterTokenServiceHandlerClient, pb.NewTokenServiceClient)},
		{Desc: &pb.UserService_ServiceDesc, Impl: api.NewUserServer(apiDeps), Authenticate: guard.Authenticate, RegisterGateway: server.Gateway(pb.RegisterUserServiceHandlerClient, pb.NewUserServiceClient)},
		{Desc: &pb.AuditService_ServiceDesc, Impl: api.NewAuditServer(apiDeps), Authenticate: guard.Authenticate, RegisterGateway: server.Gateway(pb.RegisterAuditServiceHandlerClient, pb.NewAuditServiceClient)},
		{Desc: &pb.FederatedCredentialService_ServiceDesc, Impl: api.NewFederatedCredentialServer(apiDeps), Authenticate: guard.Authenticate, RegisterGateway: server.Gateway(pb.RegisterFederatedCredentialServiceHandlerClient, pb.NewFederatedCredentialServiceClient)},
		// Envoy's ext_authz filter, over gRPC only: it checks the credential of the request it describes.
		{Desc: &authv3.Authorization_ServiceDesc, Impl: extauthz.New(a.tokens), Authenticate: server.NoAuthentication},
	}
}

// now is the services' clock: UTC, to the microsecond the database keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// HTTPAddr returns the address REST listens on.
func (a *App) HTTPAddr() string { return a.server.HTTPAddr() }

// GRPCAddr returns the address gRPC listens on.
func (a *App) GRPCAddr() string { return a.server.GRPCAddr() }

// MetricsAddr returns the address /metrics listens on, or "" if none.
func (a *App) MetricsAddr() string { return a.server.MetricsAddr() }

// Handler returns the HTTP handler that serves REST, docs, spec, JWKS and health.
func (a *App) Handler() http.Handler { return a.server.Handler() }

// Users returns the user rules the API runs on.
func (a *App) Users() *users.Service { return a.users }

// Tokens returns the token rules the API runs on.
func (a *App) Tokens() *tokens.Service { return a.tokens }

// Run brings the services up and serves until ctx ends; then it lets
// in-flight requests finish, writes the last-used times they recorded, and
// closes the database.
func (a *App) Run(ctx context.Context) error {
	// The last-used recorder outlives ctx: it flushes once the server has
	// let its in-flight requests finish, not when the signal comes.
	runCtx, stopRunning := context.WithCancel(context.WithoutCancel(ctx))
	defer a.close()
	defer stopRunning()
	if err := a.start(ctx, runCtx); err != nil {
		a.server.Close()
		return err
	}
	return a.server.Serve(ctx)
}

// startupAttemptTimeout bounds one attempt to migrate and load the keys.
const startupAttemptTimeout = 30 * time.Second

// start brings the services up. A database that does not answer yet is no
// error: start returns and keeps trying in the background, with backoff,
// until ctx ends. Any other failure (a bad DSN, refused credentials, a failed
// migration) is returned, so a misconfigured process exits at once.
func (a *App) start(ctx, runCtx context.Context) error {
	err := a.attempt(ctx, runCtx)
	if err == nil || domain.KindOf(err) != domain.KindUnavailable {
		return err
	}
	a.logger.WarnContext(ctx, "database unreachable at start: serving as not ready, retrying", "error", err)
	a.wg.Go(func() {
		delay := 200 * time.Millisecond
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			err := a.attempt(ctx, runCtx)
			if err == nil {
				a.logger.InfoContext(ctx, "database reachable: ready")
				return
			}
			a.logger.WarnContext(ctx, "start-up still failing: retrying", "error", err, "retry_in", delay.String())
			delay = min(2*delay, 2*time.Second)
		}
	})
	return nil
}

// attempt migrates, loads the keys and the page-token key, and opens the
// gate; the last-used recorder then runs until runCtx ends.
func (a *App) attempt(ctx, runCtx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startupAttemptTimeout)
	defer cancel()
	if _, err := migrateRecorded(ctx, a.store, domain.AuditParty{Kind: domain.ActorService}); err != nil {
		return err
	}
	added, err := a.keys.Rotate(ctx, now(), false)
	if err != nil {
		return fmt.Errorf("loading signing keys: %w", err)
	}
	a.keysLoaded.Store(time.Now().UnixNano())
	if added != nil {
		a.metrics.SigningKeyAdded()
	}
	pageKey, err := a.secrets.Secret(ctx, pagetoken.SecretName, []byte(rand.Text()+rand.Text()))
	if err != nil {
		return fmt.Errorf("loading page token key: %w", err)
	}
	if auth.IsSealed(pageKey) {
		return fmt.Errorf("page token key: %w", auth.ErrSealed)
	}
	a.pages.SetKey(pageKey)
	if err := a.loadAuditSigner(ctx); err != nil {
		return err
	}
	a.wg.Go(func() { a.runAudit(runCtx) })
	if a.cache != nil && a.cfg.Feed.Interval > 0 {
		a.wg.Go(func() { a.cache.Follow(runCtx, a.store, a.cfg.Feed, a.metrics, a.logger) })
	}
	if a.lastUsed != nil {
		a.wg.Go(func() { a.lastUsed.Run(runCtx, lastUsedFlushTimeout) })
	}
	a.wg.Go(func() { a.reloadKeys(runCtx) })
	a.started.Store(true)
	return nil
}

// DefaultKeyPropagationDelay is how long a new signing key is published
// before it signs, unless configured: the default JWKS max-age (5m) and
// reload interval (1m), and four minutes for clock skew and slow fetches.
const DefaultKeyPropagationDelay = 10 * time.Minute

// keyReloadTimeout bounds one reload of the signing keys.
const keyReloadTimeout = 30 * time.Second

// reloadKeys reloads the signing keys every KeyReloadInterval until ctx
// ends, rotating them when a rotation is due (one replica's rotation is
// every replica's: they share the keys), so that a key added anywhere is
// published here, and signs here, on time. When the database does not
// answer, the keys held move on in time all the same.
func (a *App) reloadKeys(ctx context.Context) {
	tick := time.NewTicker(a.cfg.KeyReloadInterval)
	defer tick.Stop()
	signing := a.keys.Current().SigningKeyID()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		loadCtx, cancel := context.WithTimeout(ctx, keyReloadTimeout)
		added, err := a.keys.Rotate(loadCtx, now(), false)
		cancel()
		if err == nil {
			a.keysLoaded.Store(time.Now().UnixNano())
		} else {
			if ctx.Err() != nil {
				return
			}
			a.metrics.SigningKeyReloadFailed()
			a.logger.WarnContext(ctx, "reloading signing keys failed: moving the keys held on in time; not ready once this lasts the propagation delay less the JWKS max-age",
				"error", err)
			if err := a.keys.Refresh(now()); err != nil {
				a.logger.ErrorContext(ctx, "signing keys: keeping the ones in use", "error", err)
			}
		}
		if added != nil {
			a.metrics.SigningKeyAdded()
			a.logger.InfoContext(ctx, "signing key added: published now, signing after the propagation delay",
				"kid", added.ID, "signs_from", added.ActivateTime)
		}
		if kid := a.keys.Current().SigningKeyID(); kid != signing {
			a.logger.InfoContext(ctx, "signing with a new key", "kid", kid, "previous_kid", signing)
			signing = kid
		}
	}
}

// lastUsedFlushTimeout bounds the last flush of last-used times at shutdown.
const lastUsedFlushTimeout = 5 * time.Second

// Ready reports whether requests can be served now.
func (a *App) Ready(ctx context.Context) error {
	if !a.started.Load() {
		return server.ErrStarting
	}
	if err := a.keysFresh(); err != nil {
		return err
	}
	return a.store.Ping(ctx)
}

// keysFresh fails once the signing keys have not been loaded for the
// propagation delay less the JWKS max-age: a key another replica added may
// by then be in gateways' JWKS fetched elsewhere and about to sign, while
// this replica neither publishes it nor will sign with it. Out of the load
// balancer, it stops serving a stale JWKS.
func (a *App) keysFresh() error {
	stale := a.cfg.KeyRotation.PropagationDelay - a.cfg.Server.JWKSMaxAge
	if since := time.Since(time.Unix(0, a.keysLoaded.Load())); since > stale {
		return &domain.Error{Kind: domain.KindUnavailable, Reason: domain.ReasonUnavailable,
			Message: fmt.Sprintf("the signing keys have not been reloaded for %s (see the log): not ready", since.Round(time.Second))}
	}
	return nil
}

// close waits for the start-up retries and the last-used recorder to end
// (their context is cancelled first: the recorder then flushes) and closes
// the database.
func (a *App) close() {
	a.wg.Wait()
	a.store.Close()
	if c, ok := a.cfg.Audit.Sink.(io.Closer); ok {
		if err := c.Close(); err != nil {
			a.logger.Warn("closing the audit log failed: its last lines may be lost", "error", err)
		}
	}
	if tp, ok := a.cfg.TracerProvider.(interface{ Shutdown(context.Context) error }); ok {
		ctx, cancel := context.WithTimeout(context.Background(), tracerShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			a.logger.Warn("flushing the last spans failed", "error", err)
		}
	}
}

// tracerShutdownTimeout bounds sending the last spans at shutdown.
const tracerShutdownTimeout = 5 * time.Second

// The Go runtime's collector settings serve applies unless told otherwise
// (--gc-percent, --memory-limit-mib): a collection when the heap has grown
// by DefaultGCPercent of what was live after the last, and a soft limit
// that makes collections more frequent as the heap nears it. The limit
// must leave full caches room (MemoryFloorMiB), or the collector would run
// without pause: BenchmarkFullCache measured it taking 57-66% of the CPU
// with 40,000 tokens cached under a 64 MiB limit.
const (
	DefaultGCPercent      = 400
	DefaultMemoryLimitMiB = 256
	// DefaultCacheSize is --cache-size's default: a fleet of 40,000
	// tokens in use, each exchanged now and then, stays cached.
	DefaultCacheSize = 50000
	// BytesPerCachedToken is what one token costs across the per-token
	// memories at full cache (the token cache, the access token kept for
	// reuse, the verified access token, its pending last-use), measured
	// by BenchmarkFullCache (1,685-1,692 B at 20,000 and 40,000 tokens).
	BytesPerCachedToken = 1750
	// baseHeapMiB is the service's own live heap, caches empty.
	baseHeapMiB = 32
)

// MemoryFloorMiB is the least memory limit that leaves a full cache of
// size tokens room: the service's own heap and twice the caches' (the
// collector then runs at most once per cache's worth of allocation).
func MemoryFloorMiB(cacheSize int) int64 {
	return baseHeapMiB + int64(2*cacheSize*BytesPerCachedToken)>>20
}
