package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

var _ audit.Observer = (*Metrics)(nil)

// auditMetrics are the audit trail's.
type auditMetrics struct {
	sealed     map[domain.AuditAction]prometheus.Counter
	dropped    prometheus.Counter
	checkpoint prometheus.Gauge
	broken     prometheus.Counter
}

func newAuditMetrics(f factory) auditMetrics {
	sealed := f.counterVec("audit_events_total", "Audit events this replica sealed into the trail, by action (every replica seals some: sum them).", "action")
	m := auditMetrics{sealed: map[domain.AuditAction]prometheus.Counter{}}
	for _, a := range domain.AuditActions {
		m.sealed[a] = sealed.WithLabelValues(string(a))
	}
	m.dropped = f.counter("audit_events_dropped_total", "Audit events of uses (minted access tokens, refused credentials) dropped: the buffer was full or writing them failed. Each drop is also logged.")
	m.checkpoint = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "audit_checkpoint_timestamp_seconds",
		Help: "When this replica last signed a checkpoint of the audit trail (Unix time); its age is time() minus it."})
	f.reg.MustRegister(m.checkpoint)
	m.broken = f.counter("audit_verification_failures_total", "Checkpoints this replica refused to sign because the events since the last checkpoint do not verify: the trail was edited in the database. The log says at which sequence number; run tokenservice audit verify.")
	return m
}

// AuditEventsSealed implements audit.Observer.
func (m *Metrics) AuditEventsSealed(events []*domain.AuditEvent) {
	for _, e := range events {
		if c, ok := m.audit.sealed[e.Action]; ok {
			c.Inc()
		}
	}
}

// AuditEventsDropped implements audit.Observer.
func (m *Metrics) AuditEventsDropped(n int) { m.audit.dropped.Add(float64(n)) }

// AuditCheckpointWritten implements audit.Observer.
func (m *Metrics) AuditCheckpointWritten(at time.Time) {
	m.audit.checkpoint.Set(float64(at.UnixNano()) / 1e9)
}

// AuditVerificationFailed counts a checkpoint not signed because the
// trail's tail does not verify.
func (m *Metrics) AuditVerificationFailed() { m.audit.broken.Inc() }
