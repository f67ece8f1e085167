package audit_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// trailOf writes n events (one every second from start) through the
// recorder, seals them and returns the store.
func trailOf(t *testing.T, driver string, n int, start time.Time) *store.Store {
	t.Helper()
	st := storetest.MustOpen(t, driver)
	ctx := context.Background()
	rec := audit.NewRecorder(st, slog.New(slog.DiscardHandler), nil)
	for i := range n {
		ev := &domain.AuditEvent{Time: start.Add(time.Duration(i) * time.Second), Action: domain.ActionAccessTokenMint, Outcome: domain.OutcomeSuccess,
			Actor:   domain.AuditParty{Kind: domain.ActorUser, UserID: "u1", Username: "alice", TokenID: fmt.Sprintf("tok%03d", i)},
			Subject: domain.AuditParty{UserID: "u1", Username: "alice", TokenID: fmt.Sprintf("tok%03d", i)},
			Origin:  domain.Origin{ClientAddress: "192.0.2.1", UserAgent: "test"}}
		rec.Record(ev.With("jti", fmt.Sprint(i)))
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := audit.NewSealer(st, nil, slog.New(slog.DiscardHandler), nil).Seal(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func newSigner(t *testing.T) *audit.Signer {
	t.Helper()
	s, err := audit.NewSigner([]byte(rand.Text() + rand.Text()))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// exec runs a statement on the store's database: the attacker's edits.
func exec(t *testing.T, st *store.Store, query string, args ...any) {
	t.Helper()
	if _, err := st.DB().Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		start := time.Now().Add(-time.Hour).UTC()
		signer := newSigner(t)
		for _, tc := range []struct {
			name    string
			tamper  func(t *testing.T, st *store.Store)
			badSeq  int64
			problem string
		}{
			{name: "intact", tamper: func(*testing.T, *store.Store) {}},
			{name: "edited", badSeq: 4, problem: "event 4 does not match",
				tamper: func(t *testing.T, st *store.Store) {
					exec(t, st, "UPDATE audit_events SET actor_username = 'mallory' WHERE seq = 4")
				}},
			{name: "edited with its content hash", badSeq: 4, problem: "event 4 does not match",
				tamper: func(t *testing.T, st *store.Store) {
					exec(t, st, "UPDATE audit_events SET outcome = 'failure', content_hash = chain_hash WHERE seq = 4")
				}},
			{name: "removed", badSeq: 5, problem: "event 5 is missing",
				tamper: func(t *testing.T, st *store.Store) { exec(t, st, "DELETE FROM audit_events WHERE seq = 5") }},
			{name: "reordered", badSeq: 3, problem: "event 3 does not match",
				tamper: func(t *testing.T, st *store.Store) {
					exec(t, st, "UPDATE audit_events SET seq = -1 WHERE seq = 3")
					exec(t, st, "UPDATE audit_events SET seq = 3 WHERE seq = 6")
					exec(t, st, "UPDATE audit_events SET seq = 6 WHERE seq = -1")
				}},
			{name: "start moved by hand", badSeq: 6, problem: "retention did not move its start",
				tamper: func(t *testing.T, st *store.Store) {
					exec(t, st, "UPDATE audit_chain SET first_seq = 6, anchor_hash = (SELECT chain_hash FROM audit_events WHERE seq = 5)")
					exec(t, st, "DELETE FROM audit_events WHERE seq <= 5")
				}},
			{name: "everything deleted as if past retention", badSeq: 11, problem: "retention did not move its start",
				tamper: func(t *testing.T, st *store.Store) {
					exec(t, st, "UPDATE audit_chain SET first_seq = 11, anchor_hash = last_hash")
					exec(t, st, "DELETE FROM audit_events")
				}},
			{name: "an event past the head", badSeq: 900000000, problem: "past the chain's head",
				tamper: func(t *testing.T, st *store.Store) {
					cols := "chain_hash, content_hash, time, action, outcome, actor_kind, actor_user_id, actor_username, actor_owner_id, actor_person_id, actor_token_id, " +
						"subject_user_id, subject_username, subject_owner_id, subject_person_id, subject_token_id, client_address, user_agent, request_id, trace_id, details"
					exec(t, st, "INSERT INTO audit_events (seq, "+cols+") SELECT 900000000, "+cols+" FROM audit_events WHERE seq = 3")
				}},
			{name: "cut short", badSeq: 9, problem: "cut short",
				tamper: func(t *testing.T, st *store.Store) { exec(t, st, "DELETE FROM audit_events WHERE seq > 8") }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st := trailOf(t, driver, 10, start)
				tc.tamper(t, st)
				r, err := audit.Verify(ctx, st, signer, nil)
				if err != nil {
					t.Fatal(err)
				}
				if r.BadSeq != tc.badSeq || !strings.Contains(r.Problem, tc.problem) {
					t.Fatalf("Verify = bad seq %d, %q; want %d, %q", r.BadSeq, r.Problem, tc.badSeq, tc.problem)
				}
				if tc.problem == "" && (r.Events != 10 || r.LastSeq != 10) {
					t.Fatalf("Verify walked %d events to %d, want 10", r.Events, r.LastSeq)
				}
			})
		}
	})
}

func TestVerifyChecksCheckpoints(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		signer := newSigner(t)
		st := trailOf(t, driver, 6, time.Now().UTC())
		exported, err := audit.Checkpoint(ctx, st, signer, time.Now())
		if err != nil || exported.Seq != 6 {
			t.Fatalf("Checkpoint = %+v, %v", exported, err)
		}
		if r, err := audit.Verify(ctx, st, signer, []string{exported.JWS}); err != nil || !r.OK() || r.Checkpoints != 2 {
			t.Fatalf("intact: %+v, %v", r, err)
		}
		// Cut after the exported checkpoint, the head and stored checkpoint moved back too.
		exec(t, st, "DELETE FROM audit_events WHERE seq > 4")
		exec(t, st, "DELETE FROM audit_checkpoints")
		var hash []byte
		if err := st.DB().QueryRow("SELECT chain_hash FROM audit_events WHERE seq = 4").Scan(&hash); err != nil {
			t.Fatal(err)
		}
		exec(t, st, "UPDATE audit_chain SET last_seq = 4, last_hash = ?", hash)
		if r, _ := audit.Verify(ctx, st, signer, nil); !r.OK() {
			t.Fatalf("without the exported checkpoint the cut is invisible by design, got %+v", r)
		}
		r, err := audit.Verify(ctx, st, signer, []string{exported.JWS})
		if err != nil || r.BadSeq != 5 || !strings.Contains(r.Problem, "cut short") {
			t.Fatalf("cut after an exported checkpoint: %+v, %v", r, err)
		}
		// A checkpoint signed with another key is forged.
		forged, err := newSigner(t).Sign(4, hash, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AddAuditCheckpoint(ctx, forged); err != nil {
			t.Fatal(err)
		}
		if r, _ := audit.Verify(ctx, st, signer, nil); r.BadSeq != 4 || !strings.Contains(r.Problem, "forged") {
			t.Fatalf("forged checkpoint: %+v", r)
		}
	})
}

func TestVerifyPassesAfterRetention(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		signer := newSigner(t)
		now := time.Now().UTC()
		st := trailOf(t, driver, 20, now.Add(-20*time.Second))
		if _, err := audit.Checkpoint(ctx, st, signer, now); err != nil {
			t.Fatal(err)
		}
		n, err := audit.Trim(ctx, st, signer, 10*time.Second+500*time.Millisecond, now)
		if err != nil || n != 10 {
			t.Fatalf("Trim = %d, %v; want the 10 events older than 10.5 s", n, err)
		}
		r, err := audit.Verify(ctx, st, signer, nil)
		if err != nil || !r.OK() || r.FirstSeq != 11 || r.Events != 10 {
			t.Fatalf("after retention: %+v, %v", r, err)
		}
		// Retention deletes nothing it cannot verify.
		exec(t, st, "UPDATE audit_events SET action = 'user.create' WHERE seq = 12")
		if _, err := audit.Trim(ctx, st, signer, time.Second, now); domain.KindOf(err) != domain.KindInternal {
			t.Fatalf("Trim over an edited event = %v, want it refused", err)
		}
		if r, _ := audit.Verify(ctx, st, signer, nil); r.BadSeq != 12 {
			t.Fatalf("after a refused trim: %+v", r)
		}
	})
}

// sealMore writes n more events and seals them.
func sealMore(t *testing.T, st *store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	rec := audit.NewRecorder(st, slog.New(slog.DiscardHandler), nil)
	for range n {
		rec.Record(&domain.AuditEvent{Time: time.Now(), Action: domain.ActionRequestDeny, Outcome: domain.OutcomeDenied, Actor: domain.AuditParty{Kind: domain.ActorAnonymous}})
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := audit.NewSealer(st, nil, slog.New(slog.DiscardHandler), nil).Seal(ctx); err != nil {
		t.Fatal(err)
	}
}

// staleHead is a trail whose head was read before replicas sealed more:
// what `audit verify` meets on a trail that live servers keep writing.
// The first read of the head is the stale one; later reads are the store's.
type staleHead struct {
	*store.Store
	head  domain.AuditChain
	reads int
}

func (s *staleHead) AuditChain(ctx context.Context) (domain.AuditChain, error) {
	if s.reads++; s.reads == 1 {
		return s.head, nil
	}
	return s.Store.AuditChain(ctx)
}

func TestVerifyLeavesEventsSealedMeanwhileToTheNext(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		st := trailOf(t, driver, 5, time.Now().UTC())
		head, err := st.AuditChain(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sealMore(t, st, 5) // by a replica, after the head was read
		r, err := audit.Verify(ctx, &staleHead{Store: st, head: head}, newSigner(t), nil)
		if err != nil || !r.OK() || r.LastSeq != 5 || r.Events != 5 {
			t.Fatalf("Verify with events sealed after the head it read = %+v, %v; want 1..5 verified", r, err)
		}
	})
}

// A checkpoint vouches only for what verified: an edit since the last
// checkpoint stops the next one, and says where.
func TestCheckpointRefusesABrokenTail(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		signer := newSigner(t)
		st := trailOf(t, driver, 6, time.Now().UTC())
		first, err := audit.Checkpoint(ctx, st, signer, time.Now())
		if err != nil || first.Seq != 6 {
			t.Fatalf("Checkpoint = %+v, %v", first, err)
		}
		sealMore(t, st, 3)
		// The next checkpoint's walk is the tail: from the first on.
		if r, err := audit.VerifyTail(ctx, st, signer); err != nil || !r.OK() || r.Events != 3 || r.FirstSeq != 7 || r.LastSeq != 9 {
			t.Fatalf("VerifyTail after a checkpoint of 6 = %+v, %v; want 7..9", r, err)
		}
		exec(t, st, "UPDATE audit_events SET actor_kind = 'operator' WHERE seq = 8")
		_, err = audit.Checkpoint(ctx, st, signer, time.Now())
		var broken *audit.BrokenError
		if !errors.As(err, &broken) || broken.Report.BadSeq != 8 || !errors.Is(err, domain.ErrAuditChainBroken) {
			t.Fatalf("Checkpoint over an edited event = %v, want a BrokenError at 8", err)
		}
		cps, err := st.AuditCheckpoints(ctx)
		if err != nil || len(cps) != 1 {
			t.Fatalf("checkpoints after the refusal: %d, %v; want only the first", len(cps), err)
		}
	})
}
