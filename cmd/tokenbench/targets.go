package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// target is one of the performance goals (docs/performance.md), checked
// against this run.
type target struct {
	What   string  `json:"target"`
	Got    float64 `json:"got"`
	Want   float64 `json:"want"`
	AtMost bool    `json:"at_most,omitempty"`
	Met    bool    `json:"met"`
}

func find(results []result, scenario, transport string, conc int) (result, bool) {
	for _, r := range results {
		if r.Scenario == scenario && r.Transport == transport && (conc == 0 || r.Concurrency == conc) {
			return r, true
		}
	}
	return result{}, false
}

// targets evaluates the goals this run measured.
func targets(results []result, summary map[string]any, sweep []int) []target {
	var ts []target
	atLeast := func(what string, got, want float64) {
		ts = append(ts, target{What: what, Got: got, Want: want, Met: got >= want})
	}
	atMost := func(what string, got, want float64) {
		ts = append(ts, target{What: what, Got: got, Want: want, AtMost: true, Met: got <= want})
	}
	// Issue 12's: the REST path at the cost of the HTTP server. Server CPU
	// per request against /healthz's, REST against gRPC, and throughput
	// against the ceiling an independent client (hey) measures, else
	// tokenbench's own.
	if ceiling, ok := find(results, "ceiling", "rest", 0); ok && ceiling.CPUPer1k > 0 {
		for _, t := range []struct {
			scenario string
			want     float64
		}{{"noop-401", 1.5}, {"exchange", 1.7}, {"bearer-jwt", 1.6}} {
			if r, ok := find(results, t.scenario, "rest", 0); ok {
				atMost(t.scenario+" over REST: server CPU per request, of /healthz's", r.CPUPer1k/ceiling.CPUPer1k, t.want)
			}
		}
	}
	for _, r := range results {
		if r.Transport != "rest" || r.Scenario == "ceiling" || r.Scenario == "exchange-sweep" {
			continue
		}
		if g, ok := find(results, r.Scenario, "grpc", r.Concurrency); ok && g.CPUPer1k > 0 {
			atMost(r.Scenario+": REST server CPU per request, of gRPC's", r.CPUPer1k/g.CPUPer1k, 1.3)
		}
	}
	ceilingRPS, by := 0.0, "tokenbench's"
	if c, ok := find(results, "ceiling", "rest", 0); ok {
		ceilingRPS = c.RPS
	}
	if h, ok := find(results, "ceiling-hey", "rest", 0); ok {
		ceilingRPS, by = h.RPS, "hey's"
	}
	if ceilingRPS > 0 {
		for _, t := range []struct {
			scenario string
			want     float64
		}{{"exchange", 0.5}, {"bearer-jwt", 0.55}, {"bearer-api", 0.55}, {"exchange-no-reuse", 0.3}} {
			if r, ok := find(results, t.scenario, "rest", 0); ok {
				atLeast(t.scenario+" over REST: throughput, of "+by+" /healthz ceiling", r.RPS/ceilingRPS, t.want)
			}
		}
	}
	if v, ok := summary["tokenbench_ceiling_of_hey"].(float64); ok {
		atLeast("tokenbench's REST ceiling, of hey's (the client is not the bottleneck)", v, 0.9)
	}
	if len(sweep) > 1 {
		lo, hi := sweep[0], sweep[len(sweep)-1]
		for _, tr := range []string{"rest", "grpc"} {
			a, okA := find(results, "exchange-sweep", tr, lo)
			b, okB := find(results, "exchange-sweep", tr, hi)
			if okA && okB && a.RPS > 0 {
				atLeast(fmt.Sprintf("exchange over %s: throughput at %d of that at %d", tr, hi, lo), ratio(b.RPS, a.RPS), 0.8)
				atMost(fmt.Sprintf("exchange over %s: errors at %d", tr, hi), float64(b.Errors), 0)
			}
		}
	}
	if v, ok := summary["lastused_on_of_off"].(float64); ok {
		atLeast("exchange with last-used tracking, of without", v, 0.95)
	}
	// Issue 23's: nginx asking the service per request (auth_request, with
	// the example's keepalive) against the same nginx with no check.
	if v, ok := summary["nginx_auth_of_open"].(float64); ok {
		atLeast("nginx with auth_request: throughput, of nginx with no check", v, 0.5)
	}
	if v, ok := summary["offline_jwt_of_open"].(float64); ok {
		atLeast("oauth2-proxy verifying access tokens offline: throughput, of its own with no check", v, 0.8)
	}
	if v, ok := summary["fleet_lastused_on_of_off"].(float64); ok {
		atLeast("fleet-exchange with last-used tracking, of without", v, 0.9)
	}
	// Issue 21's: a federated exchange with a warm JWKS costs one RS256
	// verification more than an API token's exchange, both minting a new
	// access token; and an unknown kid, however many, one fetch per
	// refresh interval.
	if v, ok := summary["federated_of_exchange_no_reuse"].(float64); ok {
		atLeast("federated exchange over REST, without reuse: throughput, of the API token's exchange without reuse", v, 0.8)
	}
	if v, ok := summary["unknown_kid_jwks_fetches"].(float64); ok {
		allowed, _ := summary["unknown_kid_fetches_allowed"].(float64)
		atMost("unknown-kid flood: the issuer's JWKS fetches (one per refresh interval)", v, allowed)
	}
	if v, ok := summary["peak_rss_mib"].(float64); ok {
		atMost("peak server RSS under the bench, MiB", v, 100)
	}
	if v, ok := summary["idle_rss_mib"].(float64); ok {
		atMost("idle server RSS, MiB", v, 40)
	}
	if v, ok := summary["startup_to_ready_ms"].(int64); ok {
		atMost("start-up to ready on an existing database, ms", float64(v), 1000)
	}
	return ts
}

func printTargets(w io.Writer, ts []target) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tgot\twant\t")
	for _, t := range ts {
		op, verdict := "≥", "met"
		if t.AtMost {
			op = "≤"
		}
		if !t.Met {
			verdict = "MISSED"
		}
		got := fmt.Sprintf("%.2f", t.Got)
		if !t.Met && got == fmt.Sprintf("%.2f", t.Want) {
			got = fmt.Sprintf("%.3f", t.Got) // missed by less than the rounding shows
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %.2f\t%s\n", t.What, got, op, t.Want, verdict)
	}
	tw.Flush()
}
