package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	mysqldriver "github.com/go-sql-driver/mysql"

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
			t.Errorf("Migrate on %s: %v", addr(t, cfgs[i]), err)
		}
	}

	want := store.MigrationIDs()
	for _, cfg := range g.Nodes {
		// A node applies the others' writes on its own time: read once it
		// has applied all that the cluster had committed (wsrep_sync_wait).
		s, err := store.Open(causal(t, cfg))
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.AppliedMigrations(context.Background())
		s.Close()
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("AppliedMigrations on %s: %v, %v; want %v", addr(t, cfg), got, err, want)
		}
	}
}

// causal returns cfg with reads that wait for the node to catch up with the cluster.
func causal(t *testing.T, cfg store.Config) store.Config {
	t.Helper()
	c, err := mysqldriver.ParseDSN(cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	c.Params["wsrep_sync_wait"] = "1"
	cfg.DSN = c.FormatDSN()
	return cfg
}

func addr(t *testing.T, cfg store.Config) string {
	t.Helper()
	c, err := mysqldriver.ParseDSN(cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	return c.Addr
}
