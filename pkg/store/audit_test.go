package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

func eventOf(action domain.AuditAction, subject string) *domain.AuditEvent {
	return &domain.AuditEvent{Time: base, Action: action, Outcome: domain.OutcomeSuccess,
		Actor: domain.AuditParty{Kind: domain.ActorOperator}, Subject: domain.AuditParty{TokenID: subject}}
}

// sealedActions seals what is written and returns every event's action and
// subject token, oldest first.
func sealedActions(t *testing.T, s *store.Store) []string {
	t.Helper()
	ctx := context.Background()
	if err := audit.NewSealer(s, nil, slog.New(slog.DiscardHandler), nil).Seal(ctx); err != nil {
		t.Fatal(err)
	}
	events, err := s.AuditEventsFrom(ctx, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		out = append(out, string(e.Action)+" "+e.Subject.TokenID+e.Details["cause"])
	}
	return out
}

// A change's events are written with it, in its transaction: none for a
// change refused or that changed nothing, one for each that happened.
func TestChangesWriteTheirEvents(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.MustOpen(t, driver)
		ctx := context.Background()
		u := mustCreateUser(t, s, "uuuuuuuuuuuuuuuu", "alice")
		tok := func(id string) *domain.Token {
			return &domain.Token{ID: id, UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: base}
		}
		steps := []struct {
			name string
			do   func() error
		}{
			{"created", func() error { return s.CreateToken(ctx, tok("t1"), 1, eventOf(domain.ActionTokenCreate, "t1")) }},
			{"over the quota", func() error { return s.CreateToken(ctx, tok("t2"), 1, eventOf(domain.ActionTokenCreate, "t2")) }},
			{"taken ID", func() error { return s.CreateToken(ctx, tok("t1"), 0, eventOf(domain.ActionTokenCreate, "t1")) }},
			{"rotated", func() error {
				return s.RotateSecret(ctx, "t1", 0, make([]byte, 32), base.Add(time.Hour), base, eventOf(domain.ActionTokenRotate, "t1"))
			}},
			{"rotated from a stale generation", func() error {
				return s.RotateSecret(ctx, "t1", 0, make([]byte, 32), time.Time{}, base, eventOf(domain.ActionTokenRotate, "t1"))
			}},
			{"grace ended", func() error { return s.EndGrace(ctx, "t1", 1, eventOf(domain.ActionTokenEndGrace, "t1")) }},
			{"grace ended again", func() error { return s.EndGrace(ctx, "t1", 1, eventOf(domain.ActionTokenEndGrace, "t1")) }},
			{"deleted", func() error { return s.DeleteToken(ctx, "t1", base, eventOf(domain.ActionTokenDelete, "t1")) }},
			{"deleted again", func() error { return s.DeleteToken(ctx, "t1", base, eventOf(domain.ActionTokenDelete, "t1")) }},
			{"unknown deleted", func() error { return s.DeleteToken(ctx, "t9", base, eventOf(domain.ActionTokenDelete, "t9")) }},
		}
		for _, st := range steps {
			_ = st.do() // the outcome is the store tests'; here, the trail's
		}
		want := []string{"token.create t1", "token.rotate t1", "token.end_grace t1", "token.delete t1"}
		if got := sealedActions(t, s); !slices.Equal(got, want) {
			t.Fatalf("trail = %q, want %q", got, want)
		}

		// A user's deletion writes an event for each machine user and live
		// token it deletes with the user, and none of a token deleted before.
		bot := &domain.User{ID: "bbbbbbbbbbbbbbbb", Username: "bot", OwnerID: u.ID, CreateTime: base}
		if err := s.CreateUser(ctx, bot, 0); err != nil {
			t.Fatal(err)
		}
		mustCreateToken(t, s, tok("t3"))
		mustCreateToken(t, s, &domain.Token{ID: "t4", UserID: bot.ID, SecretHash: make([]byte, 32), CreateTime: base})
		del := eventOf(domain.ActionUserDelete, "")
		del.Subject = domain.SubjectUser(u)
		if _, err := s.DeleteUser(ctx, u.ID, del); err != nil {
			t.Fatal(err)
		}
		got := sealedActions(t, s)[len(want):]
		wantDelete := []string{"user.delete ", "machine_user.delete user_deletion", "token.delete t3user_deletion", "token.delete t4user_deletion"}
		if !slices.Equal(got, wantDelete) {
			t.Fatalf("a user's deletion wrote %q, want %q", got, wantDelete)
		}
	})
}

// Replicas sealing at once, each with writers of its own, make one chain:
// sequence numbers 1..n without gaps or duplicates, every event written
// sealed once, and the chain verifies.
func TestSealersOnOneDatabaseMakeOneChain(t *testing.T) {
	for _, driver := range []string{store.DriverSQLite, store.DriverMySQL} {
		t.Run(driver, func(t *testing.T) {
			cfg := storetest.MustConfig(t, driver)
			sealersMakeOneChain(t, []store.Config{cfg, cfg, cfg})
		})
	}
}

func TestSealersOnEveryGaleraNodeMakeOneChain(t *testing.T) {
	sealersMakeOneChain(t, storetest.MustGalera(t).Nodes)
}

func sealersMakeOneChain(t *testing.T, cfgs []store.Config) {
	ctx := context.Background()
	stores := make([]*store.Store, len(cfgs))
	for i, cfg := range cfgs {
		s, err := store.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	const writers, batches, perBatch = 3, 20, 5
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var sealers sync.WaitGroup
	for i, s := range stores {
		for w := range writers {
			wg.Go(func() {
				for b := range batches {
					var batch []*domain.AuditEvent
					for e := range perBatch {
						batch = append(batch, eventOf(domain.ActionAccessTokenMint, fmt.Sprintf("r%dw%db%de%d", i, w, b, e)))
					}
					if err := s.AppendAuditEvents(ctx, batch); err != nil {
						t.Errorf("append: %v", err)
					}
				}
			})
		}
		sealer := audit.NewSealer(s, nil, slog.New(slog.DiscardHandler), nil)
		sealers.Go(func() {
			for {
				if err := sealer.Seal(ctx); err != nil {
					t.Errorf("seal on %d: %v", i, err)
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sealers.Wait()
	if err := audit.NewSealer(stores[0], nil, slog.New(slog.DiscardHandler), nil).Seal(ctx); err != nil {
		t.Fatal(err)
	}
	total := len(stores) * writers * batches * perBatch
	events, err := stores[0].AuditEventsFrom(ctx, 1, 2*total)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has sequence number %d", i+1, e.Seq)
		}
		if seen[e.Subject.TokenID] {
			t.Fatalf("%s sealed twice", e.Subject.TokenID)
		}
		seen[e.Subject.TokenID] = true
	}
	if len(events) != total {
		t.Fatalf("%d events in the chain, want the %d written", len(events), total)
	}
	signer, err := audit.NewSigner(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := audit.Verify(ctx, stores[0], signer, nil); err != nil || !r.OK() || r.LastSeq != int64(total) {
		t.Fatalf("Verify = %+v, %v", r, err)
	}
}

// A row written past the chain's head by hand is not listed as an event
// (audit verify names it).
func TestListStopsAtTheChainsHead(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.MustOpen(t, driver)
		ctx := context.Background()
		if err := s.AppendAuditEvents(ctx, []*domain.AuditEvent{eventOf(domain.ActionTokenCreate, "t1"), eventOf(domain.ActionTokenCreate, "t2")}); err != nil {
			t.Fatal(err)
		}
		sealedActions(t, s)
		cols := "chain_hash, content_hash, time, action, outcome, actor_kind, actor_user_id, actor_username, actor_owner_id, actor_person_id, actor_token_id, " +
			"subject_user_id, subject_username, subject_owner_id, subject_person_id, subject_token_id, client_address, user_agent, request_id, trace_id, details"
		if _, err := s.DB().Exec("INSERT INTO audit_events (seq, " + cols + ") SELECT 900000000, " + cols + " FROM audit_events WHERE seq = 1"); err != nil {
			t.Fatal(err)
		}
		events, err := s.ListAuditEvents(ctx, domain.AuditQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for _, e := range events {
			seqs = append(seqs, e.Seq)
		}
		if !slices.Equal(seqs, []int64{2, 1}) {
			t.Fatalf("listed %v, want [2 1]", seqs)
		}
	})
}
