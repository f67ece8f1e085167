package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// sealBatch bounds the events one seal transaction takes.
const sealBatch = 1000

// Sealer seals written events into the chain, and writes each it sealed
// to its sink as a JSON line. Every replica runs one: they take turns on
// the chain, and each event is sealed, and so shipped, by exactly one.
type Sealer struct {
	log    domain.AuditLog
	logger *slog.Logger
	obs    Observer

	mu   sync.Mutex // one Seal at a time, and the sink's lines whole
	sink io.Writer  // nil: none
}

// NewSealer returns a sealer of log's events writing them to sink (nil: none).
func NewSealer(log domain.AuditLog, sink io.Writer, logger *slog.Logger, obs Observer) *Sealer {
	if obs == nil {
		obs = noObserver{}
	}
	return &Sealer{log: log, sink: sink, logger: logger, obs: obs}
}

// Seal seals every event written and not yet sealed.
func (s *Sealer) Seal(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		sealed, err := s.log.SealAuditEvents(ctx, sealBatch, s.sink != nil)
		if err != nil {
			return err
		}
		if len(sealed) > 0 {
			s.obs.AuditEventsSealed(sealed)
			s.ship(sealed)
		}
		if len(sealed) < sealBatch {
			return nil
		}
	}
}

// ship writes the events to the sink, one JSON line each.
func (s *Sealer) ship(events []*domain.AuditEvent) {
	if s.sink == nil {
		return
	}
	var buf []byte
	for _, e := range events {
		line, err := json.Marshal(LineOf(e))
		if err != nil {
			continue // strings and ints only: cannot fail
		}
		buf = append(append(buf, line...), '\n')
	}
	if _, err := s.sink.Write(buf); err != nil {
		s.logger.Error("writing audit events to the audit log failed; they are kept in the database", "error", err, "events", len(events))
	}
}

// Line is an event as a JSON line (docs/audit.md documents it): what the
// sink, `audit list --json` and a SIEM read.
type Line struct {
	Seq           int64             `json:"seq"`
	Time          string            `json:"time"`
	Action        string            `json:"action"`
	Outcome       string            `json:"outcome"`
	Actor         LineParty         `json:"actor"`
	Subject       *LineParty        `json:"subject,omitempty"`
	ClientAddress string            `json:"client_address,omitempty"`
	UserAgent     string            `json:"user_agent,omitempty"`
	RequestID     string            `json:"request_id,omitempty"`
	TraceID       string            `json:"trace_id,omitempty"`
	Details       map[string]string `json:"details,omitempty"`
	ChainHash     string            `json:"chain_hash,omitempty"`
}

// LineParty is an actor or subject in a Line.
type LineParty struct {
	Kind     string `json:"kind,omitempty"`
	UserID   string `json:"user_id,omitempty"`
	Username string `json:"username,omitempty"`
	OwnerID  string `json:"owner_id,omitempty"`
	TokenID  string `json:"token_id,omitempty"`
}

// LineOf returns e as a Line.
func LineOf(e *domain.AuditEvent) Line {
	l := Line{Seq: e.Seq, Time: e.Time.UTC().Format(time.RFC3339Nano), Action: string(e.Action), Outcome: string(e.Outcome),
		Actor:         LineParty(e.Actor),
		ClientAddress: e.Origin.ClientAddress, UserAgent: e.Origin.UserAgent, RequestID: e.Origin.RequestID, TraceID: e.Origin.TraceID,
		Details: e.Details, ChainHash: hex.EncodeToString(e.ChainHash)}
	if e.Subject != (domain.AuditParty{}) {
		s := LineParty(e.Subject)
		l.Subject = &s
	}
	return l
}
