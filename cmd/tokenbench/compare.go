package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// comparison is one scenario over one transport on the Galera cluster
// (through its load balancer) against the single database, the two
// measured one right after the other.
type comparison struct {
	Compare   string `json:"compare"` // the cluster, "galera"
	Scenario  string `json:"scenario"`
	Transport string `json:"transport"`
	Single    result `json:"single"`
	Cluster   result `json:"cluster"`
	// Ratio is the cluster's throughput of the single database's; CPURatio
	// its server CPU per request of the single database's (the load
	// generator and the databases share the machine's cores with the
	// server: CPU per request is what does not move with them).
	Ratio    float64 `json:"ratio"`
	CPURatio float64 `json:"cpu_ratio"`
	// Want is the target for the ratio; 0: none.
	Want float64 `json:"want,omitempty"`
}

// clusterTargets are issue 19's: throughput on the cluster through its
// load balancer, of one MySQL's, in the same run.
var clusterTargets = map[string]float64{
	"create":     0.5,
	"delete":     0.5,
	"exchange":   0.9,
	"bearer-api": 0.9,
	"bearer-jwt": 0.9,
}

// compare pairs each cluster result with the single database's of the same
// scenario, transport and concurrency, in the cluster's order.
func compare(single, cluster []result) []comparison {
	var cs []comparison
	for _, c := range cluster {
		s, ok := find(single, c.Scenario, c.Transport, c.Concurrency)
		if !ok {
			continue
		}
		cs = append(cs, comparison{
			Compare: c.DB, Scenario: c.Scenario, Transport: c.Transport, Single: s, Cluster: c,
			Ratio: ratio(c.RPS, s.RPS), CPURatio: ratio(c.CPUPer1k, s.CPUPer1k), Want: clusterTargets[c.Scenario],
		})
	}
	return cs
}

// comparisonTargets checks each comparison that has a target.
func comparisonTargets(cs []comparison) []target {
	var ts []target
	for _, c := range cs {
		if c.Want > 0 {
			what := fmt.Sprintf("%s over %s: throughput on %s through its load balancer, of one %s's", c.Scenario, transportName(c.Transport), c.Cluster.DB, c.Single.DB)
			ts = append(ts, target{What: what, Got: c.Ratio, Want: c.Want, Met: c.Ratio >= c.Want})
		}
	}
	return ts
}

func transportName(t string) string {
	if t == "grpc" {
		return "gRPC"
	}
	return strings.ToUpper(t)
}

// printComparisons prints one row per comparison: throughput and its
// ratio, server CPU per request and its ratio, latency, and the write
// transactions' conflicts (attempts that lost and ran again, per
// transaction) and those given up.
func printComparisons(w io.Writer, cs []comparison) {
	if len(cs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	single, cluster := cs[0].Single.DB, cs[0].Cluster.DB
	fmt.Fprintf(tw, "scenario\ttransport\t%[1]s req/s\t%[2]s req/s\tratio\ttarget\t%[1]s CPU s/1k\t%[2]s CPU s/1k\tCPU ratio\t%[1]s p50/p99 ms\t%[2]s p50/p99 ms\t%[1]s conflicts/tx\t%[2]s conflicts/tx\t%[2]s given up\t\n", single, cluster)
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.2f\t%s\t%.3f\t%.3f\t%.2f\t%.2f/%.2f\t%.2f/%.2f\t%s\t%s\t%s\t\n", c.Scenario, c.Transport,
			c.Single.RPS, c.Cluster.RPS, c.Ratio, wantText(c.Want), c.Single.CPUPer1k, c.Cluster.CPUPer1k, c.CPURatio,
			c.Single.P50ms, c.Single.P99ms, c.Cluster.P50ms, c.Cluster.P99ms,
			perTransaction(c.Single.WriteCounts), perTransaction(c.Cluster.WriteCounts), blankZeroInt(c.Cluster.GaveUp))
	}
	tw.Flush()
}

func wantText(want float64) string {
	if want == 0 {
		return ""
	}
	return fmt.Sprintf("≥ %.2f", want)
}

// perTransaction formats the conflicts per write transaction, with the
// transactions; nothing when there was no write.
func perTransaction(w WriteCounts) string {
	if w.Transactions == 0 {
		return ""
	}
	return fmt.Sprintf("%.3f (%.0f tx)", w.conflictsPerTransaction(), w.Transactions)
}

func blankZeroInt(f float64) string {
	if f == 0 {
		return ""
	}
	return fmt.Sprintf("%.0f", f)
}
