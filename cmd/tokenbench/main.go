// Command tokenbench measures a real `tokenservice serve` process: it seeds a
// fresh database, then drives each scenario over REST and over gRPC at a fixed
// concurrency for a fixed time, and prints requests per second, p50, p99,
// errors, the ratio to the no-work ceiling of the same run, and the server's
// CPU time per 1,000 requests and peak memory: as a table, and as one JSON
// line per scenario. With -galera-dsn it runs the same scenarios on a Galera
// cluster through its load balancer too, and compares (issue 19).
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
)

const benchPassword = "tokenbench password"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tokenbench:", err)
		os.Exit(1)
	}
}

type config struct {
	bin         string
	driver      string
	mysqlDSN    string
	galeraDSN   string // a Galera cluster's load balancer to compare with; "": none
	duration    time.Duration
	concurrency int
	sweep       []int
	listTokens  int
	fleetRows   int // the fleet scenarios' token rows
	fleetTokens int // of which the fleet user's, with known plaintexts
	only        map[string]bool
	profile     string // scenario/transport to profile
	profileOut  string
	hey         string // an independent load generator to check the ceiling with; "": none
	nginx       string // the nginx the gateway scenarios run; "": nginx on PATH or /usr/sbin/nginx
	gatewaysDir string // deploy/gateways: the examples the gateway scenarios run
	oauth2Proxy string // the oauth2-proxy the gateway-offline scenarios run
}

func parseConfig(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("tokenbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.StringVar(&c.bin, "bin", "bin/tokenservice", "the tokenservice binary to run")
	fs.StringVar(&c.driver, "db", "mysql", "mysql or sqlite")
	fs.StringVar(&c.mysqlDSN, "mysql-dsn", envOr("TOKENSERVICE_BENCH_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test"), "a MySQL server the bench may create a database on (env TOKENSERVICE_BENCH_MYSQL_DSN)")
	fs.StringVar(&c.galeraDSN, "galera-dsn", os.Getenv("TOKENSERVICE_BENCH_GALERA_DSN"), "also run the scenarios on a Galera cluster through this DSN (its load balancer; a database is created on it), each right after the same on -db mysql, and compare throughput, latency and write conflicts (env TOKENSERVICE_BENCH_GALERA_DSN)")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "how long each scenario runs (after a warm-up of a fifth of it)")
	fs.IntVar(&c.concurrency, "concurrency", 16, "concurrent callers in each scenario")
	sweep := fs.String("sweep", "16,64,256", "concurrencies at which exchange is also measured (empty: none)")
	fs.IntVar(&c.listTokens, "list-tokens", 10000, "tokens the list scenario's user owns")
	fs.IntVar(&c.fleetRows, "fleet-rows", 100000, "token rows the fleet scenarios seed straight into the database (-fleet-tokens of them the fleet user's, the rest filler)")
	fs.IntVar(&c.fleetTokens, "fleet-tokens", 40000, "the fleet user's tokens (known plaintexts) the fleet scenarios pick one of at random per request")
	only := fs.String("scenarios", "", "comma-separated scenarios to run (default: all)")
	fs.StringVar(&c.profile, "profile", "", "take a CPU profile of the server during this scenario/transport (e.g. exchange/rest; create/rest@galera: the -galera-dsn server's)")
	fs.StringVar(&c.profileOut, "profile-out", "cpu.pprof", "where -profile writes the profile (read it with go tool pprof -top)")
	fs.StringVar(&c.nginx, "nginx", "", "the nginx the gateway-nginx scenarios run (default: nginx on PATH, else /usr/sbin/nginx)")
	fs.StringVar(&c.gatewaysDir, "gateways-dir", "deploy/gateways", "the gateway examples the gateway-nginx scenarios run nginx with")
	fs.StringVar(&c.oauth2Proxy, "oauth2-proxy", "", "the oauth2-proxy the gateway-offline scenarios run (make gateways builds bin/oauth2-proxy)")
	fs.StringVar(&c.hey, "hey", "", "the hey binary (github.com/rakyll/hey): measure the REST ceiling with it too, to show tokenbench is not the bottleneck")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.galeraDSN != "" && c.driver != "mysql" {
		return nil, fmt.Errorf("-galera-dsn compares a cluster with one MySQL: it needs -db mysql, not %q", c.driver)
	}
	for _, s := range strings.Split(*sweep, ",") {
		if s = strings.TrimSpace(s); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("-sweep: %q is not a positive number", s)
			}
			c.sweep = append(c.sweep, n)
		}
	}
	if c.fleetTokens < 1 || c.fleetRows < c.fleetTokens {
		return nil, fmt.Errorf("-fleet-tokens must be at least 1 and at most -fleet-rows (%d), not %d", c.fleetRows, c.fleetTokens)
	}
	if *only != "" {
		c.only = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			c.only[strings.TrimSpace(s)] = true
		}
	}
	return c, nil
}

// wants reports whether -scenarios asks for the named scenario.
func (c *config) wants(name string) bool { return c.only == nil || c.only[name] }

// wantsFleet reports whether -scenarios asks for a fleet scenario; with
// access, one that needs the fleet's access tokens.
func (c *config) wantsFleet(access bool) bool {
	for _, sc := range fleetScenarios {
		if c.wants(sc.name) && (sc.access || !access) {
			return true
		}
	}
	return false
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "tokenbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	iss, err := startIssuer()
	if err != nil {
		return fmt.Errorf("starting the stand-in OIDC issuer: %w", err)
	}
	defer iss.close()
	single, err := prepare(ctx, cfg, cfg.driver, cfg.mysqlDSN, work, iss, stderr)
	if err != nil {
		return err
	}
	defer single.close()
	var cluster *testbed
	if cfg.galeraDSN != "" {
		if cluster, err = prepare(ctx, cfg, dbGalera, cfg.galeraDSN, filepath.Join(work, dbGalera), iss, stderr); err != nil {
			return err
		}
		defer cluster.close()
	}
	time.Sleep(time.Second)
	summary := idleSummary(cfg, single.srv)
	b := &bench{ctx: ctx, cfg: cfg, testbed: single, cluster: cluster, issuer: iss, work: work, stderr: stderr}
	if err := b.runAll(summary); err != nil {
		return err
	}
	b.results.relateToReferences()
	b.clusterResults.relateToReferences()
	summary["peak_rss_mib"] = round1(single.srv.peakRSS())
	if fl := single.fix.fleet; fl != nil {
		summary["fleet_rows"] = fl.rows
		summary["fleet_tokens"] = len(fl.tokens)
		summary["fleet_seed_s"] = round1(fl.seedTime.Seconds())
		if fl.access != nil {
			summary["fleet_access_mint_s"] = round1(fl.mintTime.Seconds())
		}
	}
	report(stdout, b.results, b.clusterResults, summary, cfg.sweep)
	return errors.Join(b.results.failures(), b.clusterResults.failures())
}

// dbGalera names the cluster -galera-dsn reaches, in the results.
const dbGalera = "galera"

// testbed is a measured server on a database of its own, seeded, with its
// clients.
type testbed struct {
	db        string   // mysql, sqlite or galera
	env       []string // its servers' environment
	srv       *server
	debugAddr string // its profiler, with -profile
	c         *clients
	fix       *fixture
	drop      func() // drops the database
}

// prepare creates a database (on dsn, for mysql and galera), the users and
// the fixture on it, and starts the server the scenarios run against, with
// its logs in work. Every server trusts the stand-in issuer iss.
func prepare(ctx context.Context, cfg *config, db, dsn, work string, iss *issuerStandIn, stderr io.Writer) (t *testbed, err error) {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	dbEnv, drop, err := database(db, dsn, work)
	if err != nil {
		return nil, err
	}
	t = &testbed{db: db, env: serverEnv(dbEnv, iss.url), drop: drop}
	made := t // the returns below set t to nil on an error
	defer func() {
		if err != nil {
			made.close()
		}
	}()
	if err := createUsers(ctx, cfg.bin, t.env); err != nil {
		return nil, fmt.Errorf("%s: %w", db, err)
	}
	fmt.Fprintf(stderr, "seeding %d tokens on %s...\n", cfg.listTokens, db)
	// The fleet only on the measured database: its scenarios are not
	// compared with the cluster's.
	withFleet := db != dbGalera && cfg.wantsFleet(false)
	if t.fix, err = seedOnFirstServer(ctx, cfg, t.env, dbEnv, work, iss, withFleet, stderr); err != nil {
		return nil, fmt.Errorf("seeding %s: %w", db, err)
	}
	if cfg.wants("delete") {
		if err := fillDeletable(ctx, dbEnv, t.fix, deletableFor(cfg.duration)); err != nil {
			return nil, fmt.Errorf("%s: %w", db, err)
		}
	}
	if t.srv, t.debugAddr, err = startMeasuredServer(ctx, cfg, t.env, work); err != nil {
		return nil, fmt.Errorf("%s: %w", db, err)
	}
	if t.c, err = newClients(t.srv, 4); err != nil {
		return nil, err
	}
	return t, nil
}

// close stops what prepare started and drops the database.
func (t *testbed) close() {
	if t.c != nil {
		t.c.close()
	}
	if t.srv != nil {
		t.srv.stop()
	}
	t.drop()
}

// benchIssuer is every bench server's --issuer (and so its access tokens'
// audience).
const benchIssuer = "http://tokenbench.test"

// serverEnv is the environment of every server the bench runs, on the
// database dbEnv names, trusting the issuer at issuerURL.
func serverEnv(dbEnv []string, issuerURL string) []string {
	// Every login comes from 127.0.0.1: no per-address login limit; and no token
	// quota: the list user gets --list-tokens tokens.
	// One issuer for every server: each listens on its own free port, and
	// without --issuer the issuer follows the HTTP port, so the seed
	// server's access tokens would not be the measured server's.
	// The federated scenarios' issuer: --trusted-issuers, by its variable,
	// so that the seed server (which makes the federated credential) and
	// each variant trust it too.
	return append(dbEnv, "TOKENSERVICE_ISSUER="+benchIssuer, "TOKENSERVICE_ACCESS_TOKEN_TTL=2h", "TOKENSERVICE_LOGIN_ATTEMPTS_PER_ADDRESS=0", "TOKENSERVICE_MAX_TOKENS_PER_USER=0",
		"TOKENSERVICE_TRUSTED_ISSUERS="+issuerURL)
}

// createUsers runs the server-side commands, as an operator would: the
// database, then the users.
func createUsers(ctx context.Context, bin string, env []string) error {
	for _, args := range [][]string{{"db", "migrate"}, {"db", "create-user", "alice"}, {"db", "create-user", "lister"}, {"db", "create-user", fleetUser}} {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = strings.NewReader(benchPassword + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// seedOnFirstServer seeds the fixture on a server of its own, stopped
// after: what is measured is a restart on the existing database. With
// withFleet, it seeds the fleet too (on dbEnv's database) and, if a
// scenario needs them, mints the fleet's access tokens on that server.
func seedOnFirstServer(ctx context.Context, cfg *config, env, dbEnv []string, work string, iss *issuerStandIn, withFleet bool, stderr io.Writer) (*fixture, error) {
	srv, err := startServer(ctx, cfg.bin, env, filepath.Join(work, "seed.log"))
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	c, err := newClients(srv, 1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	f, err := seed(ctx, c, cfg.listTokens, iss)
	if err != nil || !withFleet {
		return f, err
	}
	fmt.Fprintf(stderr, "seeding the fleet: %d token rows, %d of them with known plaintexts...\n", cfg.fleetRows, cfg.fleetTokens)
	if f.fleet, err = seedFleet(ctx, dbEnv, f, cfg.fleetRows, cfg.fleetTokens); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "seeded in %.1f s\n", f.fleet.seedTime.Seconds())
	if cfg.wantsFleet(true) {
		fmt.Fprintf(stderr, "minting an access token for each of the fleet's %d tokens...\n", len(f.fleet.tokens))
		if err := mintFleetAccess(ctx, c, f.fleet); err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "minted in %.1f s\n", f.fleet.mintTime.Seconds())
	}
	return f, nil
}

// startMeasuredServer starts the server the scenarios run against, with a
// debug listener, whose address it returns, when -profile asks for a
// profile.
func startMeasuredServer(ctx context.Context, cfg *config, env []string, work string) (srv *server, debugAddr string, err error) {
	var extra []string
	if cfg.profile != "" {
		if debugAddr, err = freeAddr(); err != nil {
			return nil, "", err
		}
		extra = append(extra, "--debug-addr", debugAddr)
	}
	if srv, err = startServer(ctx, cfg.bin, env, filepath.Join(work, "serve.log"), extra...); err != nil {
		return nil, "", err
	}
	return srv, debugAddr, nil
}

// idleSummary starts the run's summary: the settings, and the measured
// server's start-up time and memory before any load.
func idleSummary(cfg *config, srv *server) map[string]any {
	return map[string]any{
		"driver":                cfg.driver,
		"startup_to_ready_ms":   srv.ready.Milliseconds(),
		"idle_rss_mib":          round1(srv.memMiB("VmRSS")),
		"concurrency":           cfg.concurrency,
		"duration_s":            cfg.duration.Seconds(),
		"list_user_token_count": cfg.listTokens,
	}
}

// database creates the bench's database (on mysqlDSN for mysql and galera,
// a MySQL server or a cluster's load balancer) and returns the server
// environment for it and a function that drops it.
func database(db, mysqlDSN, work string) ([]string, func(), error) {
	switch db {
	case "sqlite":
		return []string{"TOKENSERVICE_DB_DRIVER=sqlite", "TOKENSERVICE_DB_DSN=" + filepath.Join(work, "bench.db")}, func() {}, nil
	case "mysql", dbGalera:
	default:
		return nil, nil, fmt.Errorf("-db must be mysql or sqlite, not %q", db)
	}
	dsn, err := mysqldriver.ParseDSN(mysqlDSN)
	if err != nil {
		return nil, nil, fmt.Errorf("the %s DSN: %w", db, err)
	}
	admin, err := sql.Open("mysql", dsn.FormatDSN())
	if err != nil {
		return nil, nil, err
	}
	name := "tokenbench_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		admin.Close()
		return nil, nil, fmt.Errorf("creating the bench database on %s (%s; is it running?): %w", dsn.Addr, db, err)
	}
	drop := func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name)
		admin.Close()
	}
	dsn.DBName = name
	return []string{"TOKENSERVICE_DB_DRIVER=mysql", "TOKENSERVICE_DB_DSN=" + dsn.FormatDSN()}, drop, nil
}
