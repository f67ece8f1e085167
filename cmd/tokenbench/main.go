// Command tokenbench measures a real `tokenservice serve` process: it seeds a
// fresh database, then drives each scenario over REST and over gRPC at a fixed
// concurrency for a fixed time, and prints requests per second, p50, p99,
// errors, the ratio to the no-work ceiling of the same run, and the server's
// CPU time per 1,000 requests and peak memory: as a table, and as one JSON
// line per scenario.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
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
	duration    time.Duration
	concurrency int
	sweep       []int
	listTokens  int
	only        map[string]bool
	profile     string // scenario/transport to profile
	profileOut  string
	hey         string // an independent load generator to check the ceiling with; "": none
}

func parseConfig(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("tokenbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.StringVar(&c.bin, "bin", "bin/tokenservice", "the tokenservice binary to run")
	fs.StringVar(&c.driver, "db", "mysql", "mysql or sqlite")
	fs.StringVar(&c.mysqlDSN, "mysql-dsn", envOr("TOKENSERVICE_BENCH_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test"), "a MySQL server the bench may create a database on (env TOKENSERVICE_BENCH_MYSQL_DSN)")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "how long each scenario runs (after a warm-up of a fifth of it)")
	fs.IntVar(&c.concurrency, "concurrency", 16, "concurrent callers in each scenario")
	sweep := fs.String("sweep", "16,64,256", "concurrencies at which exchange is also measured (empty: none)")
	fs.IntVar(&c.listTokens, "list-tokens", 10000, "tokens the list scenario's user owns")
	only := fs.String("scenarios", "", "comma-separated scenarios to run (default: all)")
	fs.StringVar(&c.profile, "profile", "", "take a CPU profile of the server during this scenario/transport (e.g. exchange/rest)")
	fs.StringVar(&c.profileOut, "profile-out", "cpu.pprof", "where -profile writes the profile (read it with go tool pprof -top)")
	fs.StringVar(&c.hey, "hey", "", "the hey binary (github.com/rakyll/hey): measure the REST ceiling with it too, to show tokenbench is not the bottleneck")
	if err := fs.Parse(args); err != nil {
		return nil, err
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
	if *only != "" {
		c.only = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			c.only[strings.TrimSpace(s)] = true
		}
	}
	return c, nil
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
	dbEnv, dropDB, err := database(cfg, work)
	if err != nil {
		return err
	}
	defer dropDB()
	// Every login comes from 127.0.0.1: no per-address login limit; and no token
	// quota: the list user gets --list-tokens tokens.
	// One issuer for every server: each listens on its own free port, and
	// without --issuer the issuer follows the HTTP port, so the seed
	// server's access tokens would not be the measured server's.
	env := append(dbEnv, "TOKENSERVICE_ISSUER=http://tokenbench.test", "TOKENSERVICE_ACCESS_TOKEN_TTL=2h", "TOKENSERVICE_LOGIN_ATTEMPTS_PER_ADDRESS=0", "TOKENSERVICE_MAX_TOKENS_PER_USER=0")
	// The server-side commands, as an operator would: the database, then the users.
	for _, args := range [][]string{{"db", "migrate"}, {"db", "create-user", "alice"}, {"db", "create-user", "lister"}} {
		cmd := exec.CommandContext(ctx, cfg.bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = strings.NewReader(benchPassword + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// Seed on a first server, then measure a restart on the existing database.
	fmt.Fprintf(stderr, "seeding %d tokens on %s...\n", cfg.listTokens, cfg.driver)
	srv, err := startServer(ctx, cfg.bin, env, filepath.Join(work, "seed.log"))
	if err != nil {
		return err
	}
	c, err := newClients(srv, 1)
	if err != nil {
		return err
	}
	fix, err := seed(ctx, c, cfg.listTokens)
	c.close()
	srv.stop()
	if err != nil {
		return err
	}
	var extra []string
	if cfg.profile != "" {
		debugAddr, err := freeAddr()
		if err != nil {
			return err
		}
		extra = append(extra, "--debug-addr", debugAddr)
		cfg.profile += "@" + debugAddr
	}
	srv, err = startServer(ctx, cfg.bin, env, filepath.Join(work, "serve.log"), extra...)
	if err != nil {
		return err
	}
	defer srv.stop()
	time.Sleep(time.Second)
	summary := map[string]any{
		"driver":                cfg.driver,
		"startup_to_ready_ms":   srv.ready.Milliseconds(),
		"idle_rss_mib":          round1(srv.memMiB("VmRSS")),
		"concurrency":           cfg.concurrency,
		"duration_s":            cfg.duration.Seconds(),
		"list_user_token_count": cfg.listTokens,
	}

	var results []result
	measure := func(name, transport string, conc int, do op) result {
		fmt.Fprintf(stderr, "%s over %s at %d...\n", name, transport, conc)
		var profiled chan error
		if want, addr, _ := strings.Cut(cfg.profile, "@"); want == name+"/"+transport {
			profiled = make(chan error, 1)
			go func() { profiled <- fetchProfile(ctx, addr, cfg.duration, cfg.profileOut) }()
		}
		r := run(ctx, srv.cpuSeconds, conc, cfg.duration, do)
		if profiled != nil {
			if err := <-profiled; err != nil {
				fmt.Fprintf(stderr, "profile: %v\n", err)
			} else {
				fmt.Fprintf(stderr, "profile written to %s\n", cfg.profileOut)
			}
		}
		r.Scenario, r.Transport = name, transport
		results = append(results, r)
		return r
	}
	c, err = newClients(srv, 4)
	if err != nil {
		return err
	}
	defer c.close()
	ceiling := map[string]float64{}
	for _, sc := range scenarios {
		if cfg.only != nil && !cfg.only[sc.name] && sc.name != "ceiling" && sc.name != "noop-401" {
			continue
		}
		rest := measure(sc.name, "rest", cfg.concurrency, sc.rest(fix, c))
		grpc := measure(sc.name, "grpc", cfg.concurrency, sc.grpc(fix, c))
		if sc.name == "ceiling" {
			ceiling["rest"], ceiling["grpc"] = rest.RPS, grpc.RPS
		}
		results[len(results)-2].RESTOfGRPC = ratio(rest.RPS, grpc.RPS)
	}
	if cfg.hey != "" {
		fmt.Fprintf(stderr, "ceiling over rest with hey at %d...\n", cfg.concurrency)
		h, err := runHey(ctx, cfg.hey, srv.httpURL+"/healthz", cfg.concurrency, cfg.duration, srv.cpuSeconds)
		if err != nil {
			return err
		}
		h.Scenario, h.Transport = "ceiling-hey", "rest"
		results = append(results, h)
		summary["hey_ceiling_rps"] = round1(h.RPS)
		summary["tokenbench_ceiling_of_hey"] = ratio(ceiling["rest"], h.RPS)
	}
	for _, sc := range oauthScenarios {
		if cfg.only == nil || cfg.only[sc.name] {
			measure(sc.name, "rest", cfg.concurrency, sc.rest(fix, c))
		}
	}
	exchange := scenarioNamed("exchange")
	if cfg.only == nil || cfg.only["exchange"] {
		for _, conc := range cfg.sweep {
			r := measure("exchange-sweep", "rest", conc, exchange.rest(fix, c))
			g := measure("exchange-sweep", "grpc", conc, exchange.grpc(fix, c))
			results[len(results)-2].RESTOfGRPC = ratio(r.RPS, g.RPS)
		}
	}
	if cfg.only == nil || cfg.only["exchange"] {
		// Last-used tracking costs (almost) nothing: the same exchange on a
		// second server with tracking off, alternating to share the drift.
		off, cOff, err := startVariant(ctx, cfg.bin, env, filepath.Join(work, "serve-off.log"), "--last-used-flush-interval", "0")
		if err != nil {
			return err
		}
		var on, offRPS []float64
		for range 2 {
			r := measure("exchange-lastused-on", "rest", cfg.concurrency, exchange.rest(fix, c))
			o := run(ctx, off.cpuSeconds, cfg.concurrency, cfg.duration, exchange.rest(fix, cOff))
			o.Scenario, o.Transport = "exchange-lastused-off", "rest"
			results = append(results, o)
			on, offRPS = append(on, r.RPS), append(offRPS, o.RPS)
		}
		cOff.close()
		off.stop()
		summary["lastused_on_of_off"] = ratio(on[0]+on[1], offRPS[0]+offRPS[1])

		// Exchange with a new signature every time (--access-token-reuse 0):
		// what a client that exchanges each API token once costs.
		mint, cMint, err := startVariant(ctx, cfg.bin, env, filepath.Join(work, "serve-mint.log"), "--access-token-reuse", "0")
		if err != nil {
			return err
		}
		for _, tr := range []struct {
			name string
			do   op
		}{{"rest", exchange.rest(fix, cMint)}, {"grpc", exchange.grpc(fix, cMint)}} {
			fmt.Fprintf(stderr, "exchange-no-reuse over %s at %d...\n", tr.name, cfg.concurrency)
			r := run(ctx, mint.cpuSeconds, cfg.concurrency, cfg.duration, tr.do)
			r.Scenario, r.Transport = "exchange-no-reuse", tr.name
			results = append(results, r)
		}
		results[len(results)-2].RESTOfGRPC = ratio(results[len(results)-2].RPS, results[len(results)-1].RPS)
		cMint.close()
		mint.stop()
	}
	noop := map[string]float64{}
	for _, r := range results {
		if r.Scenario == "noop-401" {
			noop[r.Transport] = r.RPS
		}
	}
	for i := range results {
		if results[i].Scenario != "ceiling" {
			results[i].OfCeiling = ratio(results[i].RPS, ceiling[results[i].Transport])
		}
		if results[i].Scenario != "ceiling" && results[i].Scenario != "noop-401" {
			results[i].OfNoop = ratio(results[i].RPS, noop[results[i].Transport])
		}
	}
	summary["peak_rss_mib"] = round1(srv.memMiB("VmHWM"))

	ts := targets(results, summary, cfg.sweep)
	printTable(stdout, results)
	fmt.Fprintf(stdout, "\nstart-up to ready %v ms; idle RSS %v MiB; peak RSS %v MiB\n\n",
		summary["startup_to_ready_ms"], summary["idle_rss_mib"], summary["peak_rss_mib"])
	printTargets(stdout, ts)
	fmt.Fprintln(stdout)
	enc := json.NewEncoder(stdout)
	for _, r := range results {
		enc.Encode(r)
	}
	enc.Encode(map[string]any{"summary": summary})
	for _, t := range ts {
		enc.Encode(t)
	}
	var errs int
	for _, r := range results {
		errs += r.Errors
	}
	if errs > 0 {
		return fmt.Errorf("%d requests failed (the first error of each scenario is in its JSON line)", errs)
	}
	return nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return float64(int(a/b*100+0.5)) / 100
}

func round1(f float64) float64 { return float64(int(f*10+0.5)) / 10 }

func printTable(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\ttransport\tconc\treq/s\tp50 ms\tp99 ms\terrors\tof ceiling\tof no-op\tREST/gRPC\tCPU s/1k req\tclient CPU s/1k\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%d\t%s\t%s\t%s\t%.3f\t%.3f\t\n", r.Scenario, r.Transport, r.Concurrency,
			r.RPS, r.P50ms, r.P99ms, r.Errors, blankZero(r.OfCeiling), blankZero(r.OfNoop), blankZero(r.RESTOfGRPC), r.CPUPer1k, r.ClientCPUPer1k)
	}
	tw.Flush()
}

func blankZero(f float64) string {
	if f == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", f)
}

// database creates the bench's database and returns the server environment
// for it and a function that drops it.
func database(cfg *config, work string) ([]string, func(), error) {
	switch cfg.driver {
	case "sqlite":
		return []string{"TOKENSERVICE_DB_DRIVER=sqlite", "TOKENSERVICE_DB_DSN=" + filepath.Join(work, "bench.db")}, func() {}, nil
	case "mysql":
	default:
		return nil, nil, fmt.Errorf("-db must be mysql or sqlite, not %q", cfg.driver)
	}
	dsn, err := mysqldriver.ParseDSN(cfg.mysqlDSN)
	if err != nil {
		return nil, nil, fmt.Errorf("-mysql-dsn: %w", err)
	}
	admin, err := sql.Open("mysql", dsn.FormatDSN())
	if err != nil {
		return nil, nil, err
	}
	name := "tokenbench_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		admin.Close()
		return nil, nil, fmt.Errorf("creating the bench database on %s (is MariaDB running?): %w", dsn.Addr, err)
	}
	drop := func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name)
		admin.Close()
	}
	dsn.DBName = name
	return []string{"TOKENSERVICE_DB_DRIVER=mysql", "TOKENSERVICE_DB_DSN=" + dsn.FormatDSN()}, drop, nil
}

// fetchProfile takes a CPU profile of the server for the measured part of a run.
func fetchProfile(ctx context.Context, debugAddr string, d time.Duration, out string) error {
	time.Sleep(d / 5) // the warm-up
	secs := max(int(d.Seconds()), 1)
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debugAddr, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func scenarioNamed(name string) scenario {
	for _, sc := range scenarios {
		if sc.name == name {
			return sc
		}
	}
	panic("no scenario " + name)
}

// startVariant starts another server on the same database with extra flags,
// and its clients.
func startVariant(ctx context.Context, bin string, env []string, logPath string, flags ...string) (*server, *clients, error) {
	srv, err := startServer(ctx, bin, env, logPath, flags...)
	if err != nil {
		return nil, nil, err
	}
	c, err := newClients(srv, 4)
	if err != nil {
		srv.stop()
		return nil, nil, err
	}
	return srv, c, nil
}
