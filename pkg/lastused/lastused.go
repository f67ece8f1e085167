// Package lastused records when tokens were last used without a database write
// per request: uses are coalesced in memory (one entry per token, the latest
// second) and written in batches, every flush interval and on shutdown.
package lastused

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// MaxPending bounds the tokens held between flushes; past it, a use of a
// token not yet pending is dropped (and counted in the log) until the next
// flush. At 40 bytes or so an entry, 100,000 is about 4 MiB.
const MaxPending = 100_000

// Observer is told of each flush, for metrics: how many tokens' times it
// wrote, or that it failed.
type Observer interface {
	LastUsedFlushed(tokens int, err error)
}

type noObserver struct{}

func (noObserver) LastUsedFlushed(int, error) {}

// Recorder coalesces token uses and flushes them to the store.
type Recorder struct {
	store    domain.LastUsedWriter
	interval time.Duration
	logger   *slog.Logger
	obs      Observer

	mu      sync.Mutex
	pending map[string]time.Time
	dropped int
}

// New returns a recorder that writes to store every interval once Run
// runs, telling obs (nil: none) of each flush.
func New(store domain.LastUsedWriter, interval time.Duration, logger *slog.Logger, obs Observer) *Recorder {
	if obs == nil {
		obs = noObserver{}
	}
	return &Recorder{store: store, interval: interval, logger: logger, obs: obs, pending: map[string]time.Time{}}
}

// Record notes that the token was used at t (kept to the second).
func (r *Recorder) Record(tokenID string, t time.Time) {
	t = t.UTC().Truncate(time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.pending[tokenID]; ok {
		if t.After(prev) {
			r.pending[tokenID] = t
		}
		return
	}
	if len(r.pending) >= MaxPending {
		r.dropped++
		return
	}
	r.pending[tokenID] = t
}

// Run flushes every interval until ctx ends, then flushes once more, within
// flushTimeout, and returns.
func (r *Recorder) Run(ctx context.Context, flushTimeout time.Duration) {
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			defer cancel()
			if err := r.Flush(final); err != nil {
				r.logger.Error("last-used times lost at shutdown", "error", err)
			}
			return
		case <-tick.C:
			if err := r.Flush(ctx); err != nil {
				r.logger.Warn("recording last-used times; will retry", "error", err)
			}
		}
	}
}

// Flush writes the pending uses in one batch. On failure they stay pending
// (merged with any newer ones) for the next flush.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	batch, dropped := r.pending, r.dropped
	r.pending, r.dropped = map[string]time.Time{}, 0
	r.mu.Unlock()
	if dropped > 0 {
		r.logger.Warn("more tokens used between flushes than can be held: some last-used times not recorded", "dropped", dropped, "max_pending", MaxPending)
	}
	if len(batch) == 0 {
		return nil
	}
	err := r.store.WriteLastUsed(ctx, batch)
	r.obs.LastUsedFlushed(len(batch), err)
	if err != nil {
		for id, t := range batch {
			r.Record(id, t)
		}
	}
	return err
}
