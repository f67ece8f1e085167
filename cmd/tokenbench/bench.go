package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// bench is one run against the measured server: the scenarios, the
// comparisons with servers set otherwise, and their results.
type bench struct {
	ctx context.Context
	cfg *config
	// The measured server on -db, its clients and fixture.
	*testbed
	// With -galera-dsn, the same on the cluster; else nil.
	cluster        *testbed
	issuer         *issuerStandIn // the trusted issuer of the federated scenarios
	work           string         // the run's directory, for the servers' logs
	stderr         io.Writer      // progress
	results        results        // the measured server's
	clusterResults results        // the cluster's
}

// runAll measures, in order: the scenarios over both transports (each also
// on the cluster right after, with -galera-dsn), the ceiling with hey
// (with -hey), the OAuth endpoints, the federated exchange and the
// unknown-kid flood, then exchange at each sweep concurrency, with
// last-used tracking on and off, and without access token reuse (and the
// federated exchange beside it), and last the fleet scenarios: what they
// leave behind (a grown heap, a full cache, the last-used times of tens of
// thousands of tokens to write) would weigh on whatever came after them.
// It adds to summary what it compares.
func (b *bench) runAll(summary map[string]any) error {
	b.measureScenarios()
	if err := b.measureOthers(summary); err != nil {
		return err
	}
	if b.cfg.wantsFleet(false) {
		// The fleet fills the cache: the peak before it is the hot-token
		// scenarios' (summary's peak_rss_mib stays the whole run's).
		summary["peak_rss_before_fleet_mib"] = round1(b.srv.peakRSS())
	}
	for _, sc := range fleetScenarios {
		if b.wants(sc.name) {
			if err := b.measureFleet(sc); err != nil {
				return err
			}
		}
	}
	if b.wants("fleet-exchange") {
		return b.compareFleetLastUsed(summary)
	}
	return nil
}

// measureOthers measures what runAll does between the scenarios and the fleet.
func (b *bench) measureOthers(summary map[string]any) error {
	if b.cfg.hey != "" {
		if err := b.checkCeilingWithHey(summary); err != nil {
			return err
		}
	}
	b.measureOAuth()
	if b.wants("gateway-nginx") {
		if err := b.measureNginx(summary); err != nil {
			return err
		}
	}
	if b.wants("gateway-offline") {
		if err := b.measureOffline(summary); err != nil {
			return err
		}
	}
	if err := b.measureFederated(summary); err != nil {
		return err
	}
	if !b.wants("exchange") {
		return nil
	}
	b.measureExchangeSweep()
	if err := b.compareLastUsed(summary); err != nil {
		return err
	}
	return b.measureNoReuse(summary)
}

// wants reports whether -scenarios asks for the named scenario.
func (b *bench) wants(name string) bool { return b.cfg.wants(name) }

// measure runs one scenario on the measured server and records the result.
func (b *bench) measure(name, transport string, conc int, do op) *result {
	return b.results.add(name, transport, b.measureOn(b.testbed, name+"/"+transport, conc, do))
}

// measureOn runs one scenario on t's server, taking a CPU profile of it
// meanwhile if -profile names it, and counting the server's write
// transactions.
func (b *bench) measureOn(t *testbed, what string, conc int, do op) result {
	if t != b.testbed {
		what += "@" + t.db
	}
	fmt.Fprintf(b.stderr, "%s at %d...\n", what, conc)
	var profiled chan error
	if b.cfg.profile != "" && b.cfg.profile == what {
		profiled = make(chan error, 1)
		go func() { profiled <- fetchProfile(b.ctx, t.debugAddr, b.cfg.duration, b.cfg.profileOut) }()
	}
	before, scraped := scrapeWrites(b.ctx, t.srv.metricsURL)
	t.srv.resetPeakRSS()
	r := run(b.ctx, t.srv.cpuSeconds, conc, b.cfg.duration, do)
	r.PeakRSSMiB = round1(t.srv.memMiB("VmHWM"))
	after, err := scrapeWrites(b.ctx, t.srv.metricsURL)
	if err = errors.Join(scraped, err); err != nil {
		fmt.Fprintf(b.stderr, "%s: %v\n", what, err)
	} else {
		r.WriteCounts = after.minus(before)
	}
	r.DB = t.db
	if r.Seconds < b.cfg.duration.Seconds()*0.9 && b.ctx.Err() == nil {
		fmt.Fprintf(b.stderr, "%s ran out of work after %.1f s\n", what, r.Seconds)
	}
	if profiled != nil {
		if err := <-profiled; err != nil {
			fmt.Fprintf(b.stderr, "profile: %v\n", err)
		} else {
			fmt.Fprintf(b.stderr, "profile written to %s\n", b.cfg.profileOut)
		}
	}
	return r
}

// measureBoth measures a scenario over REST, then over gRPC, and sets the
// REST result's throughput of the gRPC one's.
func (b *bench) measureBoth(name string, conc int, rest, grpc op) {
	r := b.measure(name, "rest", conc, rest)
	g := b.measure(name, "grpc", conc, grpc)
	r.RESTOfGRPC = ratio(r.RPS, g.RPS)
}

// measureScenarios measures the scenarios -scenarios names, and always the
// references the others are compared with (ceiling, noop-401, and the
// hot-token scenario of each fleet scenario named).
func (b *bench) measureScenarios() {
	for _, sc := range scenarios {
		if b.wants(sc.name) || sc.name == "ceiling" || sc.name == "noop-401" || b.wantsFleetOf(sc.name) {
			b.measureScenario(sc)
		}
	}
}

// wantsFleetOf reports whether -scenarios asks for a fleet scenario whose
// hot-token scenario is hot.
func (b *bench) wantsFleetOf(hot string) bool {
	for _, fs := range fleetScenarios {
		if fs.hot == hot && b.wants(fs.name) {
			return true
		}
	}
	return false
}

// measureFleet measures a fleet scenario over REST, then over gRPC, on the
// measured server only (its hot-token scenario was measured earlier in the
// run, by measureScenarios).
func (b *bench) measureFleet(sc fleetScenario) error {
	if b.fix.fleet == nil {
		return fmt.Errorf("%s: no fleet was seeded", sc.name)
	}
	rest, grpc, err := sc.ops(b.fix.fleet, b.c)
	if err != nil {
		return fmt.Errorf("%s: %w", sc.name, err)
	}
	fmt.Fprintf(b.stderr, "%s: warming, each of the %d tokens once...\n", sc.name, len(b.fix.fleet.tokens))
	start := time.Now()
	if err := sc.warm(b.ctx, b.fix.fleet, b.c, b.cfg.concurrency); err != nil {
		return fmt.Errorf("%s: %w", sc.name, err)
	}
	fmt.Fprintf(b.stderr, "%s: warm in %s\n", sc.name, time.Since(start).Round(100*time.Millisecond))
	b.measureBoth(sc.name, b.cfg.concurrency, rest, grpc)
	return nil
}

// measureScenario measures a scenario over REST, then over gRPC, each
// followed at once by the same on the cluster (with -galera-dsn), so that
// the machine's drift falls on both alike; and sets the REST result's
// throughput of the gRPC one's.
func (b *bench) measureScenario(sc scenario) {
	conc := b.cfg.concurrency
	r := b.measure(sc.name, "rest", conc, sc.rest(b.fix, b.c))
	b.measureOnCluster(sc.name, "rest", sc.rest)
	g := b.measure(sc.name, "grpc", conc, sc.grpc(b.fix, b.c))
	b.measureOnCluster(sc.name, "grpc", sc.grpc)
	r.RESTOfGRPC = ratio(r.RPS, g.RPS)
}

// measureOnCluster measures a scenario on the cluster, if there is one.
func (b *bench) measureOnCluster(name, transport string, makeOp func(*fixture, *clients) op) {
	if b.cluster == nil {
		return
	}
	r := b.measureOn(b.cluster, name+"/"+transport, b.cfg.concurrency, makeOp(b.cluster.fix, b.cluster.c))
	b.clusterResults.add(name, transport, r)
}

// checkCeilingWithHey measures the REST ceiling with hey, an independent
// load generator, to show tokenbench's own is not held down by tokenbench.
func (b *bench) checkCeilingWithHey(summary map[string]any) error {
	fmt.Fprintf(b.stderr, "ceiling over rest with hey at %d...\n", b.cfg.concurrency)
	h, err := runHey(b.ctx, b.cfg.hey, b.srv.httpURL+"/healthz", b.cfg.concurrency, b.cfg.duration, b.srv.cpuSeconds)
	if err != nil {
		return err
	}
	hey := b.results.add("ceiling-hey", "rest", h)
	summary["hey_ceiling_rps"] = round1(hey.RPS)
	summary["tokenbench_ceiling_of_hey"] = ratio(b.results.rps("ceiling", "rest"), hey.RPS)
	return nil
}

// measureOAuth measures the OAuth endpoints -scenarios names, over REST.
func (b *bench) measureOAuth() {
	for _, sc := range oauthScenarios {
		if b.wants(sc.name) {
			b.measure(sc.name, "rest", b.cfg.concurrency, sc.rest(b.fix, b.c))
		}
	}
}

// measureExchangeSweep measures exchange at each -sweep concurrency.
func (b *bench) measureExchangeSweep() {
	exchange := scenarioNamed("exchange")
	for _, conc := range b.cfg.sweep {
		b.measureBoth("exchange-sweep", conc, exchange.rest(b.fix, b.c), exchange.grpc(b.fix, b.c))
	}
}

// compareLastUsed shows that last-used tracking costs (almost) nothing: the
// same exchange on a second server with tracking off, alternating with the
// measured server to share the drift.
func (b *bench) compareLastUsed(summary map[string]any) error {
	off, cOff, err := startVariant(b.ctx, b.cfg.bin, b.env, filepath.Join(b.work, "serve-off.log"), "--last-used-flush-interval", "0")
	if err != nil {
		return err
	}
	defer off.stop()
	defer cOff.close()
	exchange := scenarioNamed("exchange")
	var onRPS, offRPS float64
	for range 2 {
		onRPS += b.measure("exchange-lastused-on", "rest", b.cfg.concurrency, exchange.rest(b.fix, b.c)).RPS
		o := run(b.ctx, off.cpuSeconds, b.cfg.concurrency, b.cfg.duration, exchange.rest(b.fix, cOff))
		offRPS += b.results.add("exchange-lastused-off", "rest", o).RPS
	}
	summary["lastused_on_of_off"] = ratio(onRPS, offRPS)
	return nil
}

// compareFleetLastUsed is compareLastUsed over the fleet (issue 22: its cost
// at 40,000 distinct tokens at most 10% of throughput): fleet-exchange on
// the measured server alternating with a server with tracking off, both
// warmed just before.
func (b *bench) compareFleetLastUsed(summary map[string]any) error {
	off, cOff, err := startVariant(b.ctx, b.cfg.bin, b.env, filepath.Join(b.work, "serve-fleet-off.log"), "--last-used-flush-interval", "0")
	if err != nil {
		return err
	}
	defer off.stop()
	defer cOff.close()
	sc := fleetScenarios[0]
	on, _, err := sc.ops(b.fix.fleet, b.c)
	if err != nil {
		return err
	}
	offOp, _, err := sc.ops(b.fix.fleet, cOff)
	if err != nil {
		return err
	}
	// Both warmed again just before: an access token is reused for
	// --access-token-reuse (a minute) after it was minted, so a server
	// warmed minutes earlier would sign anew and be the slower for it.
	fmt.Fprintf(b.stderr, "%s with last-used tracking on and off: warming both...\n", sc.name)
	for _, c := range []*clients{cOff, b.c} {
		if err := sc.warm(b.ctx, b.fix.fleet, c, b.cfg.concurrency); err != nil {
			return err
		}
	}
	var onRPS, offRPS float64
	for range 2 {
		onRPS += b.measure(sc.name+"-lastused-on", "rest", b.cfg.concurrency, on).RPS
		o := run(b.ctx, off.cpuSeconds, b.cfg.concurrency, b.cfg.duration, offOp)
		offRPS += b.results.add(sc.name+"-lastused-off", "rest", o).RPS
	}
	summary["fleet_lastused_on_of_off"] = ratio(onRPS, offRPS)
	return nil
}

// measureNoReuse measures exchange with a new signature every time
// (--access-token-reuse 0), on a server of its own: what a client that
// exchanges each API token once costs; and then, with -scenarios naming
// federated, the federated exchange on the same server (issue 21 compares
// the two).
func (b *bench) measureNoReuse(summary map[string]any) error {
	mint, cMint, err := startVariant(b.ctx, b.cfg.bin, b.env, filepath.Join(b.work, "serve-mint.log"), "--access-token-reuse", "0")
	if err != nil {
		return err
	}
	defer mint.stop()
	defer cMint.close()
	exchange := scenarioNamed("exchange")
	measure := func(transport string, do op) *result {
		fmt.Fprintf(b.stderr, "exchange-no-reuse over %s at %d...\n", transport, b.cfg.concurrency)
		return b.results.add("exchange-no-reuse", transport, run(b.ctx, mint.cpuSeconds, b.cfg.concurrency, b.cfg.duration, do))
	}
	r := measure("rest", exchange.rest(b.fix, cMint))
	g := measure("grpc", exchange.grpc(b.fix, cMint))
	r.RESTOfGRPC = ratio(r.RPS, g.RPS)
	if !b.wants("federated") {
		return nil
	}
	return b.measureFederatedNoReuse(summary, mint, cMint, r)
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

func scenarioNamed(name string) scenario { return scenarioOf(scenarios, name) }

// scenarioOf returns the scenario of list by its name.
func scenarioOf(list []scenario, name string) scenario {
	for _, sc := range list {
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
