package cache

import (
	"context"
	"log/slog"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// FeedConfig says how the cache follows the change feed.
type FeedConfig struct {
	// Interval is the pause between polls: with the time a poll takes,
	// the bound on how late another replica's revocation is seen here.
	Interval time.Duration
	// Batch bounds the changes one query reads (0: 1000); a poll reads
	// until it has them all.
	Batch int
	// Retention is how long a change is kept before a replica prunes it
	// (0: an hour); PruneInterval how often this one does (0: a minute).
	// A replica that was away longer than Retention finds a gap in the
	// sequence and empties its cache.
	Retention, PruneInterval time.Duration
}

// Defaults of FeedConfig.
const (
	DefaultFeedBatch     = 1000
	DefaultFeedRetention = time.Hour
	DefaultPruneInterval = time.Minute
)

// FeedObserver is told of each poll of the change feed, for metrics.
type FeedObserver interface {
	// FeedPolled is told how many changes a poll applied, or its error.
	FeedPolled(changes int, err error)
}

// Follow polls the change feed every cfg.Interval until ctx ends, dropping
// from the cache what each change touches; see the package comment for
// what that bounds. A poll that fails is logged (the first of a run of
// failures, and the recovery) and tried again at the next tick.
func (c *Cache) Follow(ctx context.Context, feed domain.Changes, cfg FeedConfig, obs FeedObserver, log *slog.Logger) {
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultFeedBatch
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultFeedRetention
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = DefaultPruneInterval
	}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	cursor, failing := int64(-1), false
	var pruned time.Time
	for {
		n, err := c.poll(ctx, feed, cfg.Batch, &cursor)
		if ctx.Err() != nil {
			return
		}
		if obs != nil {
			obs.FeedPolled(n, err)
		}
		switch {
		case err != nil && !failing:
			log.WarnContext(ctx, "the change feed cannot be read: cached tokens and users expire by the cache TTL until it can", "error", err)
		case err == nil && failing:
			log.InfoContext(ctx, "the change feed is read again")
		}
		failing = err != nil
		if now := c.now(); err == nil && now.Sub(pruned) >= cfg.PruneInterval {
			pruned = now
			if _, err := feed.PruneChanges(ctx, now.Add(-cfg.Retention)); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "pruning the change feed", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// poll applies the changes after *cursor, and moves it on. The first poll
// (cursor -1) and one that finds changes missing (pruned while this
// replica was away) empty the cache instead: what it held may be stale in
// ways the feed no longer says. On success, every change committed before
// the poll began has been applied: entries are fresh as of then.
func (c *Cache) poll(ctx context.Context, feed domain.Changes, batch int, cursor *int64) (int, error) {
	began := c.now()
	if *cursor < 0 {
		last, err := feed.LastChange(ctx)
		if err != nil {
			return 0, err
		}
		c.forget(c.purge)
		*cursor = last
		c.polled.Store(began.UnixNano())
		return 0, nil
	}
	applied := 0
	for {
		changes, err := feed.ChangesAfter(ctx, *cursor, batch)
		if err != nil {
			return applied, err
		}
		if len(changes) == 0 {
			break
		}
		if changes[0].Seq != *cursor+1 {
			c.forget(c.purge)
		} else {
			c.forget(func() { c.apply(changes) })
		}
		applied += len(changes)
		*cursor = changes[len(changes)-1].Seq
		if len(changes) < batch {
			break
		}
	}
	c.polled.Store(began.UnixNano())
	return applied, nil
}

// apply drops what changes touch; c.mu must be held. A kind it does not
// know (written by a newer version) empties the cache.
func (c *Cache) apply(changes []domain.Change) {
	var users []string
	credentials := map[string]bool{}
	for _, ch := range changes {
		switch ch.Kind {
		case domain.ChangedToken:
			c.tokens.Remove(ch.ID)
		case domain.ChangedUser:
			users = append(users, ch.ID)
		case domain.ChangedFederatedCredential:
			credentials[ch.ID] = true
		default:
			c.purge()
			return
		}
	}
	if len(users) > 0 {
		c.dropUsers(users)
	}
	if len(credentials) > 0 {
		// A credential created can make a cached match ambiguous, and
		// matches are cheap to read again: all go.
		c.dropCredentials(func(fc *domain.FederatedCredential) bool { return credentials[fc.ID] })
		c.matches.Purge()
	}
}
