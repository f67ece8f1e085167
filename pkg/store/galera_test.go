package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// Replicas started at the same moment on a fresh database, one on each node
// of a Galera cluster and one through its load balancer, all migrate it and
// every node ends with every migration recorded. GET_LOCK, the lock before
// the lease, held on one node only: there each replica but one died on
// "Table 'users' already exists" and left the schema half applied.
func TestConcurrentMigrationsOnGalera(t *testing.T) {
	g := storetest.MustGalera(t)
	cfgs := append(slices.Clone(g.Nodes), g.LB)
	stores := make([]*store.Store, len(cfgs))
	for i, cfg := range cfgs {
		s, err := store.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}

	start := make(chan struct{})
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			<-start
			errs[i] = s.Migrate(context.Background())
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate on %s: %v", storetest.Addr(t, cfgs[i]), err)
		}
	}

	want := store.MigrationIDs()
	for _, cfg := range g.Nodes {
		// Every read waits until its node has applied what the cluster
		// committed before it (the store sets wsrep_sync_wait).
		s, err := store.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.AppliedMigrations(context.Background())
		s.Close()
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("AppliedMigrations on %s: %v, %v; want %v", storetest.Addr(t, cfg), got, err, want)
		}
	}
}

// galeraStores opens a store on each node of a fresh, migrated database on
// the cluster.
func galeraStores(t *testing.T) []*store.Store {
	t.Helper()
	g := storetest.MustGalera(t)
	var stores []*store.Store
	for _, cfg := range g.Nodes {
		s, err := store.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	return stores
}

// Quotas hold with their callers spread over the nodes: the owner's row is
// written (lock_version), so two nodes' creates conflict and one runs again
// after the other committed, where a read FOR UPDATE locked one node only
// (150 creates with a quota of 50 left 52 live tokens).
func TestQuotasHoldAcrossNodes(t *testing.T) {
	stores := galeraStores(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	owner := &domain.User{ID: "galeraowner00000", Username: "galera-owner", CreateTime: now}
	if err := stores[0].CreateUser(ctx, owner, 0); err != nil {
		t.Fatal(err)
	}
	const limit, tries = 20, 60
	var wg sync.WaitGroup
	errs := make(chan error, 2*tries)
	for i := range tries {
		s := stores[i%len(stores)]
		wg.Go(func() {
			errs <- s.CreateToken(ctx, &domain.Token{ID: fmt.Sprintf("g%015d", i), UserID: owner.ID, SecretHash: make([]byte, 32), CreateTime: now}, limit)
		})
		wg.Go(func() {
			errs <- s.CreateUser(ctx, &domain.User{ID: fmt.Sprintf("m%015d", i), Username: fmt.Sprintf("galera-bot-%d", i), OwnerID: owner.ID, CreateTime: now}, limit)
		})
	}
	wg.Wait()
	close(errs)
	created, refused := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			created++
		case err == domain.ErrLimitReached:
			refused++
		default:
			t.Errorf("a create: %v (a lost conflict must be run again, not returned)", err)
		}
	}
	if created != 2*limit || refused != 2*(tries-limit) {
		t.Errorf("%d created and %d refused across three nodes, want %d and %d", created, refused, 2*limit, 2*(tries-limit))
	}
}

// One username, created at once on every node: one create wins, the others
// are told it is taken (a unique key Galera certifies), none fails otherwise.
func TestUsernamesStayUniqueAcrossNodes(t *testing.T) {
	stores := galeraStores(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	var wg sync.WaitGroup
	errs := make([]error, 3*len(stores))
	for i := range errs {
		s := stores[i%len(stores)]
		wg.Go(func() {
			errs[i] = s.CreateUser(ctx, &domain.User{ID: fmt.Sprintf("u%015d", i), Username: "same-name", CreateTime: now}, 0)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case domain.KindOf(err) != domain.KindConflict:
			t.Errorf("a create of a taken username: %v, want a conflict", err)
		}
	}
	if won != 1 {
		t.Errorf("%d creates of one username succeeded, want 1", won)
	}
}

// One token rotated from one generation on every node at once: one rotation
// wins, the others are told another came first (SECRET_CHANGED); then
// deleted on every node at once: every delete succeeds. A write that loses
// a conflict is run again, never returned as a database error.
func TestRotationsAndDeletesAcrossNodes(t *testing.T) {
	stores := galeraStores(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	owner := &domain.User{ID: "galerarot0000000", Username: "galera-rot", CreateTime: now}
	if err := stores[0].CreateUser(ctx, owner, 0); err != nil {
		t.Fatal(err)
	}
	tok := &domain.Token{ID: "galeratoken00000", UserID: owner.ID, SecretHash: make([]byte, 32), CreateTime: now}
	if err := stores[0].CreateToken(ctx, tok, 0); err != nil {
		t.Fatal(err)
	}

	burst := func(f func(s *store.Store) error) []error {
		errs := make([]error, 3*len(stores))
		var wg sync.WaitGroup
		for i := range errs {
			s := stores[i%len(stores)]
			wg.Go(func() { errs[i] = f(s) })
		}
		wg.Wait()
		return errs
	}
	won := 0
	for _, err := range burst(func(s *store.Store) error {
		return s.RotateSecret(ctx, tok.ID, 0, make([]byte, 32), now.Add(time.Hour), time.Now().UTC())
	}) {
		switch {
		case err == nil:
			won++
		case err != domain.ErrSecretChanged:
			t.Errorf("a rotation from a generation another rotated first: %v, want SECRET_CHANGED", err)
		}
	}
	if won != 1 {
		t.Errorf("%d rotations from one generation succeeded, want 1", won)
	}
	for _, err := range burst(func(s *store.Store) error { return s.DeleteToken(ctx, tok.ID, time.Now()) }) {
		if err != nil {
			t.Errorf("a delete of a token deleted at once on other nodes: %v, want done (idempotent)", err)
		}
	}
}

// What one node acknowledged, every node reads at once: a token created
// through one node is found, and listed, through the next right after. A
// node applies the others' writes on its own time; the store makes every
// read wait until its node has applied what the cluster committed before
// it (wsrep_sync_wait). Without that, 118 of these 300 reads missed the
// token, and a rotation right after a create failed SECRET_CHANGED.
func TestEveryNodeReadsWhatAnotherAcknowledged(t *testing.T) {
	stores := galeraStores(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	const writers, each = 6, 50
	var wg sync.WaitGroup
	for w := range writers {
		// A user of its own: the writer's last token is its user's newest.
		owner := &domain.User{ID: fmt.Sprintf("reader%010d", w), Username: fmt.Sprintf("galera-reader-%d", w), CreateTime: now}
		if err := stores[w%len(stores)].CreateUser(ctx, owner, 0); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range each {
				n := w*each + i
				tok := &domain.Token{ID: fmt.Sprintf("r%015d", n), UserID: owner.ID, SecretHash: make([]byte, 32),
					CreateTime: now.Add(time.Duration(i) * time.Microsecond)}
				if err := stores[n%len(stores)].CreateToken(ctx, tok, 0); err != nil {
					t.Errorf("create %s: %v", tok.ID, err)
					continue
				}
				next := stores[(n+1)%len(stores)]
				if _, err := next.TokenByID(ctx, tok.ID); err != nil {
					t.Errorf("token %s, created through one node, read through the next at once: %v", tok.ID, err)
				}
				newest, err := next.ListTokens(ctx, domain.TokenQuery{UserID: owner.ID, Now: now, Limit: 1, Reverse: true})
				if err != nil || len(newest) != 1 || newest[0].ID != tok.ID {
					t.Errorf("token %s, created through one node, not the newest listed through the next at once: %v, %v", tok.ID, newest, err)
				}
			}
		})
	}
	wg.Wait()
}
