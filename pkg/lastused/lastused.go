// Package lastused records when tokens were last used without a database write
// per request: uses are coalesced in memory (one entry per token, the latest
// second) and written in batches, every flush interval and on shutdown.
package lastused

import (
	"context"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// MaxPending bounds the tokens held between flushes; past it, a use of a
// token not yet pending is dropped (and counted in the log) until the next
// flush. At 40 bytes or so an entry, 100,000 is about 4 MiB.
const MaxPending = 100_000

// shards spreads the pending uses over as many maps, each behind its own
// lock: every request records a use, and with one lock and one map the
// requests of all cores queued on it (issue 22 part 3, at 40,000 distinct
// tokens). Token ids are random, so the shards fill evenly.
const shards = 64

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

	seed    maphash.Seed
	shards  [shards]shard
	pending atomic.Int64 // entries in all shards
	dropped atomic.Int64 // uses dropped since the last flush
}

// shard holds some of the pending uses: token id to the Unix second of its
// latest use (an int64, not a time.Time: half the size, and no pointer for
// the garbage collector to follow). The padding keeps two shards' locks
// off one cache line.
type shard struct {
	mu      sync.Mutex
	pending map[string]int64
	_       [48]byte
}

// New returns a recorder that writes to store every interval once Run
// runs, telling obs (nil: none) of each flush.
func New(store domain.LastUsedWriter, interval time.Duration, logger *slog.Logger, obs Observer) *Recorder {
	if obs == nil {
		obs = noObserver{}
	}
	r := &Recorder{store: store, interval: interval, logger: logger, obs: obs, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].pending = map[string]int64{}
	}
	return r
}

// Record notes that the token was used at t (kept to the second).
func (r *Recorder) Record(tokenID string, t time.Time) {
	r.record(tokenID, t.Unix())
}

func (r *Recorder) record(tokenID string, sec int64) {
	s := &r.shards[maphash.String(r.seed, tokenID)%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.pending[tokenID]; ok {
		if sec > prev {
			s.pending[tokenID] = sec
		}
		return
	}
	if r.pending.Load() >= MaxPending {
		r.dropped.Add(1)
		return
	}
	r.pending.Add(1)
	s.pending[tokenID] = sec
}

// Run flushes every interval until ctx ends, then flushes once more, within
// flushTimeout, and returns. The first flush comes after a random part of
// the interval: replicas started together (a rollout) then flush at
// different moments rather than all at once on the same database, and no
// use waits longer than the interval to be written.
func (r *Recorder) Run(ctx context.Context, flushTimeout time.Duration) {
	first := time.NewTimer(rand.N(r.interval) + 1)
	defer first.Stop()
	var tick <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			defer cancel()
			if err := r.Flush(final); err != nil {
				r.logger.Error("last-used times lost at shutdown", "error", err)
			}
			return
		case <-first.C:
			t := time.NewTicker(r.interval)
			defer t.Stop()
			tick = t.C
			r.flushLogged(ctx)
		case <-tick:
			r.flushLogged(ctx)
		}
	}
}

func (r *Recorder) flushLogged(ctx context.Context) {
	if err := r.Flush(ctx); err != nil {
		r.logger.Warn("recording last-used times; will retry", "error", err)
	}
}

// Flush writes the pending uses in one batch. On failure they stay pending
// (merged with any newer ones) for the next flush. Each shard is swapped
// for an empty map under its own lock, one at a time, so uses go on being
// recorded while the batch is gathered and written.
func (r *Recorder) Flush(ctx context.Context) error {
	taken := make([]map[string]int64, 0, shards)
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		m := s.pending
		size := len(m) // read under the lock: an empty map stays the shard's
		if size > 0 {
			// As big as the last interval's: the same tokens are
			// likely used again, and a map grown from empty to
			// 40,000 entries rehashes a dozen times on the way.
			s.pending = make(map[string]int64, size)
			r.pending.Add(-int64(size))
		}
		s.mu.Unlock()
		if size > 0 {
			taken = append(taken, m)
			n += size
		}
	}
	if dropped := r.dropped.Swap(0); dropped > 0 {
		r.logger.Warn("more tokens used between flushes than can be held: some last-used times not recorded", "dropped", dropped, "max_pending", MaxPending)
	}
	if n == 0 {
		return nil
	}
	batch := make(map[string]time.Time, n)
	for _, m := range taken {
		for id, sec := range m {
			batch[id] = time.Unix(sec, 0).UTC()
		}
	}
	err := r.store.WriteLastUsed(ctx, batch)
	r.obs.LastUsedFlushed(n, err)
	if err != nil {
		for _, m := range taken {
			for id, sec := range m {
				r.record(id, sec)
			}
		}
	}
	return err
}
