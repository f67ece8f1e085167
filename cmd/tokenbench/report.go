package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// results are a run's measurements in the order they were taken, which is
// the order they are reported in. Each is added once and then reached
// through the pointer add returned, or by its scenario and transport.
type results []*result

// add records r as the measurement of scenario over transport and returns
// it, for the ratios set on it later.
func (rs *results) add(scenario, transport string, r result) *result {
	r.Scenario, r.Transport = scenario, transport
	*rs = append(*rs, &r)
	return &r
}

// rps is the throughput of the first measurement of scenario over
// transport; 0 if there is none.
func (rs results) rps(scenario, transport string) float64 {
	for _, r := range rs {
		if r.Scenario == scenario && r.Transport == transport {
			return r.RPS
		}
	}
	return 0
}

// relateToReferences sets each result's throughput of the ceiling and of
// noop-401 over the same transport (not on the references themselves), and
// each fleet scenario's of its hot-token scenario's.
func (rs results) relateToReferences() {
	for _, r := range rs {
		if hot := hotOf(r.Scenario); hot != "" {
			r.OfHot = ratio(r.RPS, rs.rps(hot, r.Transport))
		}
		if r.Scenario != "ceiling" {
			r.OfCeiling = ratio(r.RPS, rs.rps("ceiling", r.Transport))
		}
		if r.Scenario != "ceiling" && r.Scenario != "noop-401" {
			r.OfNoop = ratio(r.RPS, rs.rps("noop-401", r.Transport))
		}
	}
}

// values returns the results as values, in order.
func (rs results) values() []result {
	vs := make([]result, len(rs))
	for i, r := range rs {
		vs[i] = *r
	}
	return vs
}

// failures returns an error counting the failed requests; nil if none.
func (rs results) failures() error {
	var errs int
	for _, r := range rs {
		errs += r.Errors
	}
	if errs > 0 {
		return fmt.Errorf("%d requests failed (the first error of each scenario is in its JSON line)", errs)
	}
	return nil
}

// report prints the results as a table, the server's start-up and memory,
// the cluster's results against them (with -galera-dsn), the performance
// targets, and then all of it again as JSON lines: one per result, one per
// cluster result, one per comparison, the summary, one per target.
func report(w io.Writer, rs, cluster results, summary map[string]any, sweep []int) {
	vs, cvs := rs.values(), cluster.values()
	cs := compare(vs, cvs)
	ts := append(targets(vs, summary, sweep), comparisonTargets(cs)...)
	printTable(w, vs)
	fmt.Fprintf(w, "\nstart-up to ready %v ms; idle RSS %v MiB; peak RSS %v MiB\n\n",
		summary["startup_to_ready_ms"], summary["idle_rss_mib"], summary["peak_rss_mib"])
	if printFleet(w, vs, summary) {
		fmt.Fprintln(w)
	}
	if len(cvs) > 0 {
		fmt.Fprintf(w, "the same scenarios on %s, each measured right after the one above:\n\n", cvs[0].DB)
		printTable(w, cvs)
		fmt.Fprintln(w)
		printComparisons(w, cs)
		fmt.Fprintln(w)
	}
	printTargets(w, ts)
	fmt.Fprintln(w)
	enc := json.NewEncoder(w)
	for _, r := range vs {
		enc.Encode(r)
	}
	for _, r := range cvs {
		enc.Encode(r)
	}
	for _, c := range cs {
		enc.Encode(c)
	}
	enc.Encode(map[string]any{"summary": summary})
	for _, t := range ts {
		enc.Encode(t)
	}
}

// ratio is a of b, to two decimals; 0 when b is.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return float64(int(a/b*100+0.5)) / 100
}

// round1 rounds f to one decimal.
func round1(f float64) float64 { return float64(int(f*10+0.5)) / 10 }

// printTable prints one row per result, ratios that do not apply blank.
func printTable(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\ttransport\tconc\treq/s\tp50 ms\tp99 ms\terrors\tof ceiling\tof no-op\tREST/gRPC\tCPU s/1k req\tclient CPU s/1k\tpeak RSS MiB\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%d\t%s\t%s\t%s\t%.3f\t%.3f\t%s\t\n", r.Scenario, r.Transport, r.Concurrency,
			r.RPS, r.P50ms, r.P99ms, r.Errors, blankZero(r.OfCeiling), blankZero(r.OfNoop), blankZero(r.RESTOfGRPC), r.CPUPer1k, r.ClientCPUPer1k, blankZero1(r.PeakRSSMiB))
	}
	tw.Flush()
}

// printFleet prints each fleet scenario beside its hot-token scenario,
// after how the fleet was seeded; false if no fleet scenario ran.
func printFleet(w io.Writer, results []result, summary map[string]any) bool {
	var fleet []result
	for _, r := range results {
		if hotOf(r.Scenario) != "" {
			fleet = append(fleet, r)
		}
	}
	if len(fleet) == 0 {
		return false
	}
	fmt.Fprintf(w, "the fleet: %v token rows seeded in %v s, %v of them the fleet user's, one at random per request",
		summary["fleet_rows"], summary["fleet_seed_s"], summary["fleet_tokens"])
	if v, ok := summary["fleet_access_mint_s"]; ok {
		fmt.Fprintf(w, "; an access token minted from each in %v s", v)
	}
	if v, ok := summary["peak_rss_before_fleet_mib"]; ok {
		fmt.Fprintf(w, "; peak RSS before the fleet %v MiB", v)
	}
	fmt.Fprint(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fleet scenario\ttransport\treq/s\tof hot\tp50 ms\tp99 ms\tCPU s/1k req\tpeak RSS MiB\thot scenario\treq/s\tp50 ms\tp99 ms\tCPU s/1k req\tpeak RSS MiB\t")
	for _, r := range fleet {
		hot, _ := find(results, hotOf(r.Scenario), r.Transport, r.Concurrency)
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.3f\t%.1f\t%s\t%.0f\t%.2f\t%.2f\t%.3f\t%.1f\t\n", r.Scenario, r.Transport,
			r.RPS, r.OfHot, r.P50ms, r.P99ms, r.CPUPer1k, r.PeakRSSMiB, hotOf(r.Scenario), hot.RPS, hot.P50ms, hot.P99ms, hot.CPUPer1k, hot.PeakRSSMiB)
	}
	tw.Flush()
	return true
}

// blankZero1 formats a figure to one decimal, or nothing for 0 (not
// measured).
func blankZero1(f float64) string {
	if f == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", f)
}

// blankZero formats a ratio, or nothing for 0 (it does not apply).
func blankZero(f float64) string {
	if f == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", f)
}
