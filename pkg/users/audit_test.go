package users

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// recorded is an Audit that keeps what it is given.
type recorded []*domain.AuditEvent

func (r *recorded) Record(ev *domain.AuditEvent) { *r = append(*r, ev) }

// TestLoginsAreRecorded: each password attempt is a user.login event: a
// success by and of the user; a wrong password anonymous, of the user (its
// owner sees attempts on its account); an unknown username anonymous, of
// that username only; a malformed one (a password typed in the wrong
// field, say) of nothing; one a limit refused denied, saying which limit.
func TestLoginsAreRecorded(t *testing.T) {
	derived := 0
	pw, hash := countingPasswords(t, &derived)
	alice := &domain.User{ID: "alice00000000000", Username: "alice", PasswordHash: hash}
	audit := &recorded{}
	svc := New(Config{LoginAttemptsPerUserAndAddress: 4}, Deps{Users: oneUser{u: alice}, Passwords: pw, Audit: audit, Clock: time.Now, Rand: rand.Reader})
	aliceParty := domain.AuditParty{UserID: alice.ID, Username: "alice"}
	for _, c := range []struct {
		username, password string
		outcome            domain.AuditOutcome
		actor              string
		subject            domain.AuditParty
		reason             string
	}{
		{"alice", "right password", domain.OutcomeSuccess, domain.ActorUser, aliceParty, ""},
		{"alice", "wrong password", domain.OutcomeFailure, domain.ActorAnonymous, aliceParty, "wrong_password"},
		{"mallory", "right password", domain.OutcomeFailure, domain.ActorAnonymous, domain.AuditParty{Username: "mallory"}, "unknown_user"},
		{"Right Password!", "x", domain.OutcomeFailure, domain.ActorAnonymous, domain.AuditParty{}, "unknown_user"},
		{"alice", "right password", domain.OutcomeSuccess, domain.ActorUser, aliceParty, ""},
		{"alice", "right password", domain.OutcomeSuccess, domain.ActorUser, aliceParty, ""},
		{"alice", "right password", domain.OutcomeDenied, domain.ActorAnonymous, domain.AuditParty{Username: "alice"}, string(LimitedByUserAndAddress)},
	} {
		*audit = nil
		svc.AuthenticatePassword(context.Background(), c.username, c.password, "10.0.0.1")
		if len(*audit) != 1 {
			t.Fatalf("%s/%s: %d events, want 1", c.username, c.password, len(*audit))
		}
		ev := (*audit)[0]
		if ev.Action != domain.ActionUserLogin || ev.Outcome != c.outcome || ev.Actor.Kind != c.actor || ev.Subject != c.subject || ev.Details["reason"] != c.reason {
			t.Errorf("%s/%s: %s %s by %+v of %+v, reason %q; want %s by a %s of %+v, reason %q", c.username, c.password,
				ev.Action, ev.Outcome, ev.Actor, ev.Subject, ev.Details["reason"], c.outcome, c.actor, c.subject, c.reason)
		}
	}
}
