package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// Each change that ends or narrows a credential records a change, in its
// own transaction; a change that changed nothing, or failed, records none.
func TestChangesRecordWhatEndsACredential(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		alice, bot := mustCreateAliceAndBot(t, s)
		mustCreateToken(t, s, &domain.Token{ID: "t1", UserID: alice.ID, SecretHash: make([]byte, 32), CreateTime: base})
		mustCreateToken(t, s, &domain.Token{ID: "t2", UserID: bot.ID, SecretHash: make([]byte, 32), CreateTime: base})
		fc := fedCredential("fc_AAAAAAAAAAAAAAAA", bot.ID, "https://issuer.example", "sub")
		steps := []struct {
			name string
			do   func() error
		}{
			{"rotate", func() error {
				return s.RotateSecret(ctx, "t1", 0, make([]byte, 32), base.Add(time.Hour), base)
			}},
			{"rotate from a stale generation", func() error {
				if err := s.RotateSecret(ctx, "t1", 0, make([]byte, 32), base, base); err != domain.ErrSecretChanged {
					return fmt.Errorf("got %v, want ErrSecretChanged", err)
				}
				return nil
			}},
			{"end grace", func() error { return s.EndGrace(ctx, "t1", 1) }},
			{"end grace again", func() error { return s.EndGrace(ctx, "t1", 1) }},
			{"delete token", func() error { return s.DeleteToken(ctx, "t1", base) }},
			{"delete it again", func() error { return s.DeleteToken(ctx, "t1", base) }},
			{"password", func() error { return s.SetPasswordHash(ctx, alice.ID, "$argon2id$y") }},
			{"create credential", func() error { return s.CreateFederatedCredential(ctx, fc, 1) }},
			{"create one past the quota", func() error {
				if err := s.CreateFederatedCredential(ctx, fedCredential("fc_BBBBBBBBBBBBBBBB", bot.ID, "https://issuer.example", "b"), 1); err != domain.ErrLimitReached {
					return fmt.Errorf("got %v, want ErrLimitReached", err)
				}
				return nil
			}},
			{"delete credential", func() error { return s.DeleteFederatedCredential(ctx, fc.ID) }},
			{"delete user", func() error {
				_, err := s.DeleteUser(ctx, alice.ID)
				return err
			}},
		}
		for _, step := range steps {
			if err := step.do(); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
		}
		got, err := s.ChangesAfter(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		want := []domain.Change{
			{Seq: 1, Kind: domain.ChangedToken, ID: "t1"},
			{Seq: 2, Kind: domain.ChangedToken, ID: "t1"},
			{Seq: 3, Kind: domain.ChangedToken, ID: "t1"},
			{Seq: 4, Kind: domain.ChangedUser, ID: alice.ID},
			{Seq: 5, Kind: domain.ChangedFederatedCredential, ID: fc.ID},
			{Seq: 6, Kind: domain.ChangedFederatedCredential, ID: fc.ID},
			{Seq: 7, Kind: domain.ChangedUser, ID: alice.ID},
			{Seq: 8, Kind: domain.ChangedUser, ID: bot.ID},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("changes (-want +got):\n%s", diff)
		}
		if last, err := s.LastChange(ctx); err != nil || last != 8 {
			t.Errorf("LastChange = %d, %v; want 8", last, err)
		}
		if got, err := s.ChangesAfter(ctx, 6, 1); err != nil || len(got) != 1 || got[0].Seq != 7 {
			t.Errorf("ChangesAfter(6, limit 1) = %v, %v; want change 7", got, err)
		}
	})
}

// Changes recorded at once by many writers get sequence numbers with no
// gap, each visible only once every smaller one is: a reader following
// the feed while they commit never finds a gap (which it would take for
// pruned changes, and empty its cache).
func TestChangesHaveNoGapsUnderConcurrency(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.MustOpen(t, driver)
		followWhileDeleting(t, []*store.Store{s}, s, 60)
	})
}

// So across the nodes of a Galera cluster: writers on every node, the
// reader on one of them.
func TestChangesHaveNoGapsAcrossGaleraNodes(t *testing.T) {
	g := storetest.MustGalera(t)
	var writers []*store.Store
	for _, cfg := range g.Nodes {
		s := storetest.MustOpenConfig(t, cfg)
		writers = append(writers, s)
	}
	followWhileDeleting(t, writers, writers[len(writers)-1], 60)
}

// followWhileDeleting creates n tokens through writers[0], deletes them
// all at once, spread over writers, and follows the feed through reader
// meanwhile; every change must arrive once, in order, without a gap.
func followWhileDeleting(t *testing.T, writers []*store.Store, reader *store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	u := mustCreateUser(t, writers[0], "uuuuuuuuuuuuuuuu", "alice")
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("tok%013d", i)
		mustCreateToken(t, writers[0], &domain.Token{ID: ids[i], UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: base})
	}
	start, done := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			<-start
			if err := writers[i%len(writers)].DeleteToken(ctx, id, base); err != nil {
				t.Errorf("DeleteToken(%s): %v", id, err)
			}
		})
	}
	seen := map[string]bool{}
	var cursor int64
	follow := func() {
		changes, err := reader.ChangesAfter(ctx, cursor, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range changes {
			if c.Seq != cursor+1 {
				t.Fatalf("after change %d came %d: a gap", cursor, c.Seq)
			}
			if seen[c.ID] {
				t.Errorf("token %s changed twice", c.ID)
			}
			seen[c.ID], cursor = true, c.Seq
		}
	}
	go func() { wg.Wait(); close(done) }()
	close(start)
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		follow()
	}
	for range n { // what committed last, 7 at a time
		follow()
	}
	if len(seen) != n || cursor != int64(n) {
		t.Errorf("followed %d changes up to %d; want %d", len(seen), cursor, n)
	}
}

// Pruning deletes old changes, never the sequence: the next change goes on
// from the last, and a reader behind the pruned ones sees the gap.
func TestPruneChanges(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		u := mustCreateUser(t, s, "uuuuuuuuuuuuuuuu", "alice")
		for _, id := range []string{"t1", "t2", "t3"} {
			mustCreateToken(t, s, &domain.Token{ID: id, UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: base})
		}
		for _, id := range []string{"t1", "t2"} {
			if err := s.DeleteToken(ctx, id, base); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.PruneChanges(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
			t.Fatalf("PruneChanges of an hour ago = %d, %v; want none pruned", n, err)
		}
		if n, err := s.PruneChanges(ctx, time.Now().Add(time.Second)); err != nil || n != 2 {
			t.Fatalf("PruneChanges = %d, %v; want 2", n, err)
		}
		if err := s.DeleteToken(ctx, "t3", base); err != nil {
			t.Fatal(err)
		}
		got, err := s.ChangesAfter(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if want := []domain.Change{{Seq: 3, Kind: domain.ChangedToken, ID: "t3"}}; !cmp.Equal(want, got) {
			t.Errorf("after pruning, changes = %v; want %v", got, want)
		}
		if last, err := s.LastChange(ctx); err != nil || last != 3 {
			t.Errorf("LastChange = %d, %v; want 3", last, err)
		}
	})
}
