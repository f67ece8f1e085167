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
	build func(ctx context.Context, st *store.Store) (*api.Server, *auth.KeySet, error)

	jwks atomic.Pointer[[]byte]
	wg   sync.WaitGroup
}

// errStarting is the readiness answer until the backend is up.
var errStarting = domain.Errorf(domain.KindUnavailable, "starting: database not reachable yet")

// startupAttemptTimeout bounds one attempt to migrate and load the keys.
const startupAttemptTimeout = 30 * time.Second

// start brings the backend up. A database that does not answer yet is no
// error: start returns and keeps trying in the background, with backoff, until
// ctx ends. Any other failure (a bad DSN, refused credentials, a failed
// migration) is returned, so a misconfigured process exits at once.
func (b *backend) start(ctx context.Context) error {
	err := b.attempt(ctx)
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
			err := b.attempt(ctx)
			if err == nil {
				b.logger.InfoContext(ctx, "database reachable: ready")
				return
			}
			b.logger.WarnContext(ctx, "database still unreachable", "error", err, "retry_in", delay)
			delay = min(2*delay, 2*time.Second)
		}
	})
	return nil
}

func (b *backend) attempt(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startupAttemptTimeout)
	defer cancel()
	if err := b.st.Migrate(ctx); err != nil {
		return err
	}
	srv, keys, err := b.build(ctx, b.st)
	if err != nil {
		return err
	}
	jwks := keys.JWKS()
	b.jwks.Store(&jwks)
	b.gate.Open(srv)
	return nil
}

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
		return errStarting
	}
	return b.st.Ping(ctx)
}

// Close waits for the start-up retries to end (cancel their context first)
// and closes the database.
func (b *backend) Close() error {
	b.wg.Wait()
	return b.st.Close()
}

// serviceConfig is what the token service is built with.
type serviceConfig struct {
	tokens         tokens.Config
	issuer         string
	audience       string
	accessTokenTTL time.Duration
	cache          cache.Config // TTL 0: no cache
}

// buildService returns the function that wires the token service over the
// database once it answers.
func buildService(cfg serviceConfig, passwords *auth.Passwords) func(context.Context, *store.Store) (*api.Server, *auth.KeySet, error) {
	return func(ctx context.Context, st *store.Store) (*api.Server, *auth.KeySet, error) {
		now := func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
		keys, err := auth.LoadKeys(ctx, st, rand.Reader, now())
		if err != nil {
			return nil, nil, fmt.Errorf("loading signing keys: %w", err)
		}
		pageKey, err := st.Secret(ctx, "page_token_mac", []byte(rand.Text()+rand.Text()))
		if err != nil {
			return nil, nil, fmt.Errorf("loading page token key: %w", err)
		}
		var data cache.Store = st
		if cfg.cache.TTL > 0 {
			data = cache.New(st, cfg.cache, time.Now)
		}
		minter := auth.NewMinter(keys, cfg.issuer, cfg.audience, cfg.accessTokenTTL)
		svc := tokens.New(cfg.tokens, data, data, passwords, minter, tokens.NewPageTokens(pageKey), now, rand.Reader)
		return api.New(svc), keys, nil
	}
}
