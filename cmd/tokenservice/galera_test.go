package main

import (
	"context"
	"database/sql"
	"slices"
	"sync"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/status"

	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// The tests here run the service as a deployment on MariaDB Galera runs it
// (docs/scaling.md): one replica on each node of a fresh database, called
// over the API with the calls spread over the replicas, and the database
// checked on every node afterwards. They prove end to end what
// pkg/store/galera_test.go proves of the store.

// startReplicasAtOnce builds a replica on each of dbs, starts them all at
// the same moment, and waits (at most 30 s) until every one is ready,
// failing the test at once if one exits.
func startReplicasAtOnce(t *testing.T, dbs []store.Config, extraEnv ...string) []*service {
	t.Helper()
	rs := make([]*service, len(dbs))
	for i, db := range dbs {
		rs[i] = buildService(t, db, extraEnv...)
	}
	for _, s := range rs {
		s.run()
	}
	deadline := time.Now().Add(30 * time.Second)
	for i, s := range rs {
		for s.app.Ready(context.Background()) != nil {
			select {
			case <-s.exited:
				t.Fatalf("replica %d (on %s) exited while starting: %v\n%s", i, storetest.Addr(t, dbs[i]), s.runErr, s.logs)
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d (on %s) not ready within 30 s of starting: %v\n%s", i, storetest.Addr(t, dbs[i]), s.app.Ready(context.Background()), s.logs)
			}
		}
	}
	return rs
}

// galeraReplicas starts a replica on each node of a fresh database on the
// cluster, at the same moment, and returns them with the cluster.
func galeraReplicas(t *testing.T, extraEnv ...string) ([]*service, storetest.Galera) {
	t.Helper()
	g := storetest.MustGalera(t)
	return startReplicasAtOnce(t, g.Nodes, extraEnv...), g
}

// nodeDBs opens each node's database for the checks afterwards, with reads
// that wait until the node has applied what the cluster had committed
// (wsrep_sync_wait): a node applies the others' writes on its own time.
func nodeDBs(t *testing.T, g storetest.Galera) []*sql.DB {
	t.Helper()
	var dbs []*sql.DB
	for _, cfg := range g.Nodes {
		c, err := mysqldriver.ParseDSN(cfg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		if c.Params == nil {
			c.Params = map[string]string{}
		}
		c.Params["wsrep_sync_wait"] = "1"
		c.ParseTime = true
		db, err := sql.Open("mysql", c.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	return dbs
}

// countOnEveryNode runs a COUNT query on every node and fails the test
// unless each answers want.
func countOnEveryNode(t *testing.T, dbs []*sql.DB, what string, want int, query string, args ...any) {
	t.Helper()
	for i, db := range dbs {
		var n int
		if err := db.QueryRow(query, args...).Scan(&n); err != nil {
			t.Fatalf("%s on node %d: %v", what, i, err)
		}
		if n != want {
			t.Errorf("%s on node %d: %d, want %d", what, i, n, want)
		}
	}
}

// onEveryReplica waits until f succeeds on every replica, at most 10 s
// each: a write through one replica reaches the other nodes on their own
// time (and a replica may have cached what it read before).
func onEveryReplica(t *testing.T, rs []*service, what string, f func(i int, s *service) error) {
	t.Helper()
	for i, s := range rs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := f(i, s)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not on replica %d within 10 s: %s", what, i, describe(err))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// spread returns the caller of call i: the replicas in turn, and on each
// REST and gRPC in turn.
func spread(t *testing.T, rs []*service) func(i int) caller {
	cs := make([][]caller, len(rs))
	for r, s := range rs {
		cs[r] = s.callers(t)
	}
	return func(i int) caller { return cs[i%len(rs)][(i/len(rs))%2] }
}

// atOnce runs f(0..n-1) in goroutines released together, and returns their
// errors.
func atOnce(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// serverError says whether err is what the gateway answers with a 5xx
// (UNAVAILABLE, INTERNAL, UNKNOWN, ...): never the answer to a lost
// conflict, which the store runs again.
func serverError(err error) bool {
	return err != nil && runtime.HTTPStatusFromCode(status.Code(err)) >= 500
}

// Issue 19's first finding, end to end: replicas started at the same moment
// on a fresh database, one on each node and one through the load balancer,
// all migrate it and become ready (with GET_LOCK, which holds on one node,
// all but one died on "Table 'users' already exists" and none could start
// again); a token made through one is then exchanged through each other.
func TestReplicasStartedAtOnceOnGaleraAllBecomeReady(t *testing.T) {
	g := storetest.MustGalera(t)
	rs := startReplicasAtOnce(t, append(slices.Clone(g.Nodes), g.LB))
	rs[0].mustUser(t, "gala", "human")
	token := rpc{t, rs[0].grpcCaller()}.login("gala")
	next := spread(t, rs)
	onEveryReplica(t, rs[1:], "exchanging the token made through replica 0", func(i int, s *service) error {
		_, err := rpc{t, next(i + 1)}.exchange("", token)
		return err
	})
	countOnEveryNode(t, nodeDBs(t, g), "migrations recorded", len(store.MigrationIDs()), "SELECT COUNT(*) FROM schema_migrations")
}
