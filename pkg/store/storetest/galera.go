package storetest

import (
	"context"
	"database/sql"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/tokenservice/tokenservice/pkg/store"
)

// GaleraDSNsEnv names the variable holding the DSNs of the Galera cluster's
// nodes, comma-separated, that the Galera tests run against; make test
// starts the cluster (scripts/galera.sh) and sets it. Tests fail, never
// skip, when it is unset or the cluster cannot be reached; the fast loop
// (WithoutMySQLEnv) skips them.
const GaleraDSNsEnv = "TOKENSERVICE_TEST_GALERA_DSNS"

// GaleraLBDSNEnv names the variable holding the DSN of the load balancer
// (HAProxy) in front of the Galera cluster's nodes.
const GaleraLBDSNEnv = "TOKENSERVICE_TEST_GALERA_LB_DSN"

// Galera is one fresh database on the Galera cluster, reached each way a
// replica can reach it: straight to each node, and through the balancer.
type Galera struct {
	Nodes []store.Config // one per node, in GaleraDSNsEnv's order
	LB    store.Config   // through HAProxy: each connection to the next node
}

// MustGalera returns a fresh, empty database on the Galera cluster,
// created through the first node and there on every node before it
// returns; it is dropped when the test ends.
func MustGalera(tb testing.TB) Galera {
	tb.Helper()
	if withoutMySQL() {
		tb.Skipf("%s=1: the Galera tests run in make test", WithoutMySQLEnv)
	}
	nodes := mustGaleraEnv(tb, GaleraDSNsEnv)
	lb := mustGaleraEnv(tb, GaleraLBDSNEnv)
	if len(lb) != 1 {
		tb.Fatalf("%s: want one DSN, got %d", GaleraLBDSNEnv, len(lb))
	}
	return galeraDatabase(tb, nodes, lb[0])
}

// MustGaleraOn is MustGalera on the cluster whose nodes and balancer the DSNs
// name: a cluster a test started for itself, to kill or cut its nodes.
func MustGaleraOn(tb testing.TB, nodeDSNs []string, lbDSN string) Galera {
	tb.Helper()
	var nodes []*mysqldriver.Config
	for _, dsn := range slices.Concat(nodeDSNs, []string{lbDSN}) {
		cfg, err := mysqldriver.ParseDSN(dsn)
		if err != nil {
			tb.Fatalf("Galera DSN: %v", err)
		}
		nodes = append(nodes, cfg)
	}
	return galeraDatabase(tb, nodes[:len(nodeDSNs)], nodes[len(nodeDSNs)])
}

func galeraDatabase(tb testing.TB, nodes []*mysqldriver.Config, lb *mysqldriver.Config) Galera {
	tb.Helper()
	name := mustCreateDatabase(tb, nodes[0])
	var g Galera
	for _, cfg := range nodes {
		mustSeeDatabase(tb, cfg, name)
		cfg = cfg.Clone()
		cfg.DBName = name
		g.Nodes = append(g.Nodes, store.Config{Driver: store.DriverMySQL, DSN: cfg.FormatDSN()})
	}
	lb = lb.Clone()
	lb.DBName = name
	g.LB = store.Config{Driver: store.DriverMySQL, DSN: lb.FormatDSN()}
	return g
}

func mustGaleraEnv(tb testing.TB, env string) []*mysqldriver.Config {
	tb.Helper()
	v := os.Getenv(env)
	if v == "" {
		tb.Fatalf("%s is not set: the Galera tests need the cluster (make test starts it; by hand: eval \"$(make -s galera-up)\")", env)
	}
	var cfgs []*mysqldriver.Config
	for _, dsn := range strings.Split(v, ",") {
		cfg, err := mysqldriver.ParseDSN(dsn)
		if err != nil {
			tb.Fatalf("%s: %v", env, err)
		}
		cfgs = append(cfgs, cfg)
	}
	return cfgs
}

// mustSeeDatabase waits until the node cfg names has the database: DDL
// replicates in total order, but a node applies it on its own time.
// wsrep_sync_wait makes the read wait until the node has applied what the
// cluster had committed when it was asked.
func mustSeeDatabase(tb testing.TB, cfg *mysqldriver.Config, name string) {
	tb.Helper()
	cfg = cfg.Clone()
	cfg.DBName = ""
	cfg.Params = map[string]string{"wsrep_sync_wait": "1"}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatalf("opening Galera node %s: %v", cfg.Addr, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n)
	if err != nil || n != 1 {
		tb.Fatalf("Galera node %s does not have the database %s created through the first node: %d, %v", cfg.Addr, name, n, err)
	}
}

// Addr returns the host:port a MySQL config's DSN names, for messages.
func Addr(tb testing.TB, cfg store.Config) string {
	tb.Helper()
	c, err := mysqldriver.ParseDSN(cfg.DSN)
	if err != nil {
		tb.Fatalf("parsing a DSN: %v", err)
	}
	return c.Addr
}
