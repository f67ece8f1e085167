package domain_test

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

func sample() *domain.AuditEvent {
	return (&domain.AuditEvent{Time: time.Date(2026, 12, 7, 4, 0, 0, 123456789, time.UTC), Action: domain.ActionTokenCreate,
		Outcome: domain.OutcomeSuccess, Actor: domain.AuditParty{Kind: domain.ActorUser, UserID: "u1", Username: "alice"},
		Subject: domain.AuditParty{UserID: "u2", Username: "bot", OwnerID: "u1", TokenID: "t1"},
		Origin:  domain.Origin{ClientAddress: "192.0.2.1", UserAgent: "curl/8", RequestID: "r1"}}).With("scope", "tokens:read")
}

// Every field is in the content hash, and fields cannot trade bytes
// (each is length-prefixed): moving a byte from one to the next changes it.
func TestContentHashCoversEveryField(t *testing.T) {
	base := sample().Clean().ContentHash()
	for name, change := range map[string]func(e *domain.AuditEvent){
		"time":             func(e *domain.AuditEvent) { e.Time = e.Time.Add(time.Microsecond) },
		"action":           func(e *domain.AuditEvent) { e.Action = domain.ActionTokenDelete },
		"outcome":          func(e *domain.AuditEvent) { e.Outcome = domain.OutcomeDenied },
		"actor kind":       func(e *domain.AuditEvent) { e.Actor.Kind = domain.ActorOperator },
		"actor id":         func(e *domain.AuditEvent) { e.Actor.UserID = "u9" },
		"actor username":   func(e *domain.AuditEvent) { e.Actor.Username = "mallory" },
		"actor owner":      func(e *domain.AuditEvent) { e.Actor.OwnerID = "u9" },
		"actor token":      func(e *domain.AuditEvent) { e.Actor.TokenID = "t9" },
		"subject id":       func(e *domain.AuditEvent) { e.Subject.UserID = "u9" },
		"subject name":     func(e *domain.AuditEvent) { e.Subject.Username = "x" },
		"subject owner":    func(e *domain.AuditEvent) { e.Subject.OwnerID = "" },
		"subject token":    func(e *domain.AuditEvent) { e.Subject.TokenID = "t9" },
		"address":          func(e *domain.AuditEvent) { e.Origin.ClientAddress = "192.0.2.2" },
		"user agent":       func(e *domain.AuditEvent) { e.Origin.UserAgent = "curl/9" },
		"request id":       func(e *domain.AuditEvent) { e.Origin.RequestID = "r2" },
		"trace id":         func(e *domain.AuditEvent) { e.Origin.TraceID = "ab" },
		"detail":           func(e *domain.AuditEvent) { e.Details["scope"] = "tokens:write" },
		"detail added":     func(e *domain.AuditEvent) { e.Details["x"] = "" },
		"bytes shifted":    func(e *domain.AuditEvent) { e.Actor.UserID, e.Actor.Username = "u1a", "lice" },
		"subject to actor": func(e *domain.AuditEvent) { e.Actor, e.Subject = e.Subject, e.Actor },
	} {
		e := sample()
		change(e)
		if bytes.Equal(e.Clean().ContentHash(), base) {
			t.Errorf("%s: the content hash did not change", name)
		}
	}
}

// Clean keeps what both databases keep, so what is read back hashes the
// same; and cleaning twice changes nothing.
func TestCleanBoundsAndIsStable(t *testing.T) {
	e := sample()
	e.Origin.UserAgent = strings.Repeat("é", 200) + "\xff"
	e.Origin.RequestID = "r1\nfake line\x1b[2J"
	e.Time = e.Time.In(time.FixedZone("x", 3600))
	c := e.Clean()
	if len(c.Origin.UserAgent) > 256 || !utf8.ValidString(c.Origin.UserAgent) {
		t.Errorf("user agent cleaned to %d bytes, valid UTF-8 %v", len(c.Origin.UserAgent), utf8.ValidString(c.Origin.UserAgent))
	}
	if strings.ContainsAny(c.Origin.RequestID, "\n\x1b") {
		t.Errorf("control characters kept: %q", c.Origin.RequestID)
	}
	if c.Time.Location() != time.UTC || c.Time.Nanosecond()%1000 != 0 {
		t.Errorf("time cleaned to %v", c.Time)
	}
	if !bytes.Equal(c.ContentHash(), c.Clean().ContentHash()) {
		t.Error("cleaning a clean event changed its hash")
	}
	if e.Origin.UserAgent == c.Origin.UserAgent {
		t.Error("Clean changed the event it was given")
	}
}

// The chain hash commits to the previous hash, the sequence number and
// the content.
func TestChainHash(t *testing.T) {
	c := sample().Clean().ContentHash()
	base := domain.ChainHash([]byte("prev"), 7, c)
	for name, h := range map[string][]byte{
		"previous": domain.ChainHash([]byte("prew"), 7, c),
		"seq":      domain.ChainHash([]byte("prev"), 8, c),
		"content":  domain.ChainHash([]byte("prev"), 7, append([]byte{1}, c[1:]...)),
	} {
		if bytes.Equal(h, base) {
			t.Errorf("%s: the chain hash did not change", name)
		}
	}
}
