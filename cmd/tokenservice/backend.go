package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenservice/tokenservice/pkg/api"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/cache"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/lastused"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

// backend is what serve puts behind its listeners: the database, the keys
// and the token service. It comes up when the database answers, which may be
// after the listeners do; until then the gate answers UNAVAILABLE and the
// readiness checks say not ready.
type backend struct {
	gate   api.Gate
	st     *store.Store
	logger *slog.Logger
	// build makes the token service once the database answers.
	build func(ctx context.Context, st *store.Store) (*built, error)

	jwks atomic.Pointer[[]byte]
	wg   sync.WaitGroup
}

// startupAttemptTimeout bounds one attempt to migrate and load the keys.
const startupAttemptTimeout = 30 * time.Second

// start brings the backend up. A database that does not answer yet is no
// error: start returns and keeps trying in the background, with backoff, until
// ctx ends. Any other failure (a bad DSN, refused credentials, a failed
// migration) is returned, so a misconfigured process exits at once.
func (b *backend) start(ctx, runCtx context.Context) error {
	err := b.attempt(ctx, runCtx)
	if err == nil || domain.KindOf(err) != domain.KindUnavailable {
		return err
	}
	b.logger.WarnContext(ctx, "database unreachable at start: serving as not ready, retrying", "error", err)
	b.wg.Go(func() {
		delay := 200 * time.Millisecond
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			err := b.attempt(ctx, runCtx)
			if err == nil {
				b.logger.InfoContext(ctx, "database reachable: ready")
				return
			}
			b.logger.WarnContext(ctx, "start-up still failing: retrying", "error", err, "retry_in", delay)
			delay = min(2*delay, 2*time.Second)
		}
	})
	return nil
}

// attempt migrates and builds the service; on success the gate opens and
// the last-used recorder runs until runCtx ends.
func (b *backend) attempt(ctx, runCtx context.Context) error {
	attemptCtx, cancel := context.WithTimeout(ctx, startupAttemptTimeout)
	defer cancel()
	if err := b.st.Migrate(attemptCtx); err != nil {
		return err
	}
	svc, err := b.build(attemptCtx, b.st)
	if err != nil {
		return err
	}
	if svc.usage != nil {
		b.wg.Go(func() { svc.usage.Run(runCtx, usageFlushTimeout) })
	}
	jwks := svc.keys.JWKS()
	b.jwks.Store(&jwks)
	b.gate.Open(svc.api)
	return nil
}

// usageFlushTimeout bounds the last flush of last-used times at shutdown.
const usageFlushTimeout = 5 * time.Second

// JWKS returns the public keys as a JWK set, or nil until they are loaded.
func (b *backend) JWKS() []byte {
	if p := b.jwks.Load(); p != nil {
		return *p
	}
	return nil
}

// Ready reports whether requests can be served now.
func (b *backend) Ready(ctx context.Context) error {
	if !b.gate.IsOpen() {
		return api.ErrStarting
	}
	return b.st.Ping(ctx)
}

// Close waits for the start-up retries and the last-used recorder to end
// (cancel their context first: the recorder then flushes) and closes the
// database.
func (b *backend) Close() error {
	b.wg.Wait()
	return b.st.Close()
}

// serviceConfig is what the token service is built with.
type serviceConfig struct {
	tokens        tokens.Config
	minter        auth.MinterConfig
	cache         cache.Config  // TTL 0: no cache
	kek           []byte        // key-encryption key for signing keys and secrets; nil: stored as they are
	usageInterval time.Duration // how often last-used times are written; 0: not tracked
}

// built is the token service over a database that answers.
type built struct {
	api   *api.Server
	keys  *auth.KeySet
	usage *lastused.Recorder // nil if not tracked
}

// buildService returns the function that wires the token service over the
// database once it answers.
func buildService(cfg serviceConfig, passwords *auth.Passwords, logger *slog.Logger) func(context.Context, *store.Store) (*built, error) {
	return func(ctx context.Context, st *store.Store) (*built, error) {
		now := func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
		var keyStore domain.Keys = st
		if cfg.kek != nil {
			sealed, err := auth.NewSealedKeys(st, cfg.kek, rand.Reader)
			if err != nil {
				return nil, err
			}
			keyStore = sealed
		}
		keys, err := auth.LoadKeys(ctx, keyStore, rand.Reader, now())
		if err != nil {
			return nil, fmt.Errorf("loading signing keys: %w", err)
		}
		pageKey, err := keyStore.Secret(ctx, "page_token_mac", []byte(rand.Text()+rand.Text()))
		if err != nil {
			return nil, fmt.Errorf("loading page token key: %w", err)
		}
		if auth.IsSealed(pageKey) {
			return nil, fmt.Errorf("page token key: %w", auth.ErrSealed)
		}
		var data cache.Store = st
		if cfg.cache.TTL > 0 {
			data = cache.New(st, cfg.cache, time.Now)
		}
		b := &built{keys: keys}
		var recorder tokens.Usage
		if cfg.usageInterval > 0 {
			b.usage = lastused.New(st, cfg.usageInterval, logger)
			recorder = b.usage
		}
		minter := auth.NewMinter(keys, cfg.minter)
		svc := tokens.New(cfg.tokens, data, data, passwords, minter, tokens.NewPageTokens(pageKey), recorder, now, rand.Reader)
		b.api = api.New(svc)
		return b, nil
	}
}
