// Package audit keeps the audit trail going: it writes the events of uses
// (minted access tokens, refused credentials) in batches off the request's
// path, seals written events into the hash chain, signs checkpoints of the
// chain, deletes expired events, ships sealed events as JSON lines, and
// verifies a stored trail. Changes write their own events, in their own
// transactions (domain.Users, domain.Tokens, domain.Keys). Service (list.go)
// decides who may read which event.
package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// MaxPending bounds the use events held between flushes; past it, an
// event is dropped, counted (Observer.AuditEventsDropped) and logged at
// the next flush. At about 500 bytes an event, 20,000 is about 10 MiB.
const MaxPending = 20_000

// Observer is told what the trail's writers do, for metrics.
type Observer interface {
	// AuditEventsSealed is told the events sealed into the chain.
	AuditEventsSealed(events []*domain.AuditEvent)
	// AuditEventsDropped is told of use events dropped for a full buffer
	// or a failed write.
	AuditEventsDropped(n int)
	// AuditCheckpointWritten is told the time of each checkpoint written.
	AuditCheckpointWritten(at time.Time)
}

type noObserver struct{}

func (noObserver) AuditEventsSealed([]*domain.AuditEvent) {}
func (noObserver) AuditEventsDropped(int)                 {}
func (noObserver) AuditCheckpointWritten(time.Time)       {}

// Recorder holds use events and writes them in batches.
type Recorder struct {
	log    domain.AuditLog
	logger *slog.Logger
	obs    Observer

	mu      sync.Mutex
	pending []*domain.AuditEvent
	dropped int // since the last flush, for its log line
	wake    chan struct{}
}

// NewRecorder returns a recorder writing to log once Run runs.
func NewRecorder(log domain.AuditLog, logger *slog.Logger, obs Observer) *Recorder {
	if obs == nil {
		obs = noObserver{}
	}
	return &Recorder{log: log, logger: logger, obs: obs, wake: make(chan struct{}, 1)}
}

// flushAt is how many pending events wake the writer before its interval.
const flushAt = 500

// Record holds ev for the next batch, or drops it (counted) when the
// buffer is full. It never blocks on the database.
func (r *Recorder) Record(ev *domain.AuditEvent) {
	r.mu.Lock()
	if len(r.pending) >= MaxPending {
		r.dropped++
		r.mu.Unlock()
		r.obs.AuditEventsDropped(1)
		return
	}
	r.pending = append(r.pending, ev)
	n := len(r.pending)
	r.mu.Unlock()
	if n == flushAt {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Flush writes the pending events, in batches of flushAt. Events whose
// write failed are dropped, counted and logged: holding them would let a
// database away for long fill the memory.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	batch, dropped := r.pending, r.dropped
	r.pending, r.dropped = nil, 0
	r.mu.Unlock()
	if dropped > 0 {
		r.logger.Error("audit events dropped: the buffer was full", "dropped", dropped, "max_pending", MaxPending)
	}
	for len(batch) > 0 {
		n := min(len(batch), flushAt)
		if err := r.log.AppendAuditEvents(ctx, batch[:n]); err != nil {
			r.obs.AuditEventsDropped(len(batch))
			r.logger.Error("audit events dropped: writing them failed", "dropped", len(batch), "error", err)
			return err
		}
		batch = batch[n:]
	}
	return nil
}

// Full returns a channel that receives when flushAt events wait: a
// flush then should not wait for its interval.
func (r *Recorder) Full() <-chan struct{} { return r.wake }
