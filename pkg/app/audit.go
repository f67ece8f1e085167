package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// AuditConfig says how the audit trail is kept.
type AuditConfig struct {
	// Retention is how long events are kept (0: DefaultAuditRetention;
	// negative: forever).
	Retention time.Duration
	// Sink, if set, receives each event this replica seals, as a JSON line
	// (audit.Line), for a log shipper. If it is an io.Closer, the app
	// closes it when it stops, after the last events are sealed.
	Sink io.Writer
	// FlushInterval is how often use events are written and events
	// sealed (0: a second); CheckpointInterval how often a checkpoint is
	// signed (0: DefaultAuditCheckpointInterval).
	FlushInterval      time.Duration
	CheckpointInterval time.Duration
}

// DefaultAuditRetention keeps the trail for 400 days: a year and a month
// of slack, what audits of a year's controls (SOC 2 type II, ISO 27001)
// look back over.
const DefaultAuditRetention = 400 * 24 * time.Hour

// DefaultAuditCheckpointInterval is how often each replica signs a
// checkpoint of the chain: the most a rewrite of the trail by someone
// with the database but not the key can hide in.
const DefaultAuditCheckpointInterval = 10 * time.Minute

// auditFlushTimeout bounds the last write and seal of events at shutdown.
const auditFlushTimeout = 5 * time.Second

func (c AuditConfig) withDefaults() AuditConfig {
	if c.Retention == 0 {
		c.Retention = DefaultAuditRetention
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = DefaultAuditCheckpointInterval
	}
	return c
}

// buildAudit makes the recorder of use events and the sealer; the
// checkpoints' key is loaded at start (loadAuditSigner).
func (a *App) buildAudit() {
	a.cfg.Audit = a.cfg.Audit.withDefaults()
	a.auditRecorder = audit.NewRecorder(a.store, a.logger, a.metrics)
	a.auditSealer = audit.NewSealer(a.store, a.cfg.Audit.Sink, a.logger, a.metrics)
}

// loadAuditSigner loads (or, on a new database, makes) the checkpoints' key.
func (a *App) loadAuditSigner(ctx context.Context) error {
	s, err := loadAuditSigner(ctx, a.secrets)
	a.auditSigner = s
	return err
}

// loadAuditSigner loads (or, on a new database, makes) the checkpoints'
// key from secrets.
func loadAuditSigner(ctx context.Context, secrets domain.Keys) (*audit.Signer, error) {
	seed, err := secrets.Secret(ctx, audit.KeySecretName, []byte(rand.Text()+rand.Text()))
	if err != nil {
		return nil, fmt.Errorf("loading the audit checkpoint key: %w", err)
	}
	if auth.IsSealed(seed) {
		return nil, fmt.Errorf("audit checkpoint key: %w", auth.ErrSealed)
	}
	return audit.NewSigner(seed)
}

// runAudit writes use events and seals every FlushInterval, signs a
// checkpoint every CheckpointInterval and deletes expired events every
// hour, until ctx ends; then it writes and seals what is left.
func (a *App) runAudit(ctx context.Context) {
	cfg := a.cfg.Audit
	flush := time.NewTicker(cfg.FlushInterval)
	defer flush.Stop()
	checkpoint := time.NewTicker(cfg.CheckpointInterval)
	defer checkpoint.Stop()
	trim := time.NewTicker(time.Hour)
	defer trim.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditFlushTimeout)
			defer cancel()
			a.flushAudit(final)
			return
		case <-flush.C:
			a.flushAudit(ctx)
		case <-a.auditRecorder.Full():
			a.flushAudit(ctx)
		case <-checkpoint.C:
			a.checkpointAudit(ctx)
		case <-trim.C:
			a.trimAudit(ctx)
		}
	}
}

// flushAudit writes the pending use events and seals everything written.
func (a *App) flushAudit(ctx context.Context) {
	_ = a.auditRecorder.Flush(ctx) // logged and counted
	if err := a.auditSealer.Seal(ctx); err != nil && ctx.Err() == nil {
		a.logger.WarnContext(ctx, "sealing audit events failed; retrying", "error", err)
	}
}

// checkpointAudit signs a checkpoint of the chain, once the events since
// the last one verify: a trail edited in the database is counted and
// logged as an error, and no checkpoint vouches for it.
func (a *App) checkpointAudit(ctx context.Context) {
	c, err := audit.Checkpoint(ctx, a.store, a.auditSigner, now())
	var broken *audit.BrokenError
	if errors.As(err, &broken) {
		a.metrics.AuditVerificationFailed()
		a.logger.ErrorContext(ctx, "the audit trail does not verify: no checkpoint signed; run tokenservice audit verify",
			"seq", broken.Report.BadSeq, "problem", broken.Report.Problem)
		return
	}
	if err != nil {
		a.logger.WarnContext(ctx, "signing an audit checkpoint failed; retrying at the next", "error", err)
		return
	}
	if c.Seq > 0 {
		a.metrics.AuditCheckpointWritten(c.Time)
	}
}

func (a *App) trimAudit(ctx context.Context) {
	if a.cfg.Audit.Retention < 0 {
		return
	}
	n, err := audit.Trim(ctx, a.store, a.auditSigner, a.cfg.Audit.Retention, now())
	if err != nil {
		a.logger.ErrorContext(ctx, "deleting expired audit events failed", "error", err, "deleted", n)
	} else if n > 0 {
		a.logger.InfoContext(ctx, "deleted expired audit events", "deleted", n, "retention", a.cfg.Audit.Retention.String())
	}
}

// AuditSigner returns the key that signs and verifies checkpoints, once started.
func (a *App) AuditSigner() *audit.Signer { return a.auditSigner }

// FlushAudit writes and seals the events recorded so far: for tests and
// for reads that must see them.
func (a *App) FlushAudit(ctx context.Context) { a.flushAudit(ctx) }
