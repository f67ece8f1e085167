package main

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestCompareWithCluster checks issue 19's comparison: each cluster result
// against the single database's of the same scenario and transport, the
// throughput and CPU ratios, the targets (0.5 for writes, 0.9 for the
// checks, none for the rest) met or missed, and conflicts per transaction.
func TestCompareWithCluster(t *testing.T) {
	single := []result{
		{DB: "mysql", Scenario: "ceiling", Transport: "rest", Concurrency: 16, RPS: 10000, CPUPer1k: 0.05},
		{DB: "mysql", Scenario: "exchange", Transport: "rest", Concurrency: 16, RPS: 6000, CPUPer1k: 0.1},
		{DB: "mysql", Scenario: "exchange", Transport: "grpc", Concurrency: 16, RPS: 7000, CPUPer1k: 0.08},
		{DB: "mysql", Scenario: "create", Transport: "rest", Concurrency: 16, RPS: 400, CPUPer1k: 1, WriteCounts: WriteCounts{Transactions: 2000}},
		{DB: "mysql", Scenario: "delete", Transport: "grpc", Concurrency: 16, RPS: 800, CPUPer1k: 0.6, WriteCounts: WriteCounts{Transactions: 4000}},
		{DB: "mysql", Scenario: "list", Transport: "rest", Concurrency: 16, RPS: 3000},
	}
	cluster := []result{
		{DB: "galera", Scenario: "ceiling", Transport: "rest", Concurrency: 16, RPS: 9000, CPUPer1k: 0.05},
		{DB: "galera", Scenario: "exchange", Transport: "rest", Concurrency: 16, RPS: 5500, CPUPer1k: 0.1},
		{DB: "galera", Scenario: "exchange", Transport: "grpc", Concurrency: 16, RPS: 6000, CPUPer1k: 0.08},
		{DB: "galera", Scenario: "create", Transport: "rest", Concurrency: 16, RPS: 150, CPUPer1k: 2.5,
			WriteCounts: WriteCounts{Transactions: 1000, Conflicts: 2500, GaveUp: 9}},
		{DB: "galera", Scenario: "delete", Transport: "grpc", Concurrency: 16, RPS: 400, CPUPer1k: 0.66, WriteCounts: WriteCounts{Transactions: 2000}},
		{DB: "galera", Scenario: "bearer-jwt", Transport: "rest", Concurrency: 16, RPS: 5000}, // no single result: left out
	}
	cs := compare(single, cluster)
	type row struct {
		Scenario, Transport   string
		Ratio, CPURatio, Want float64
	}
	var got []row
	for _, c := range cs {
		got = append(got, row{c.Scenario, c.Transport, c.Ratio, c.CPURatio, c.Want})
		if c.Compare != "galera" || c.Single.DB != "mysql" || c.Cluster.DB != "galera" {
			t.Errorf("%s/%s: compared %s (single %s, cluster %s)", c.Scenario, c.Transport, c.Compare, c.Single.DB, c.Cluster.DB)
		}
	}
	want := []row{
		{"ceiling", "rest", 0.9, 1, 0},
		{"exchange", "rest", 0.92, 1, 0.9},
		{"exchange", "grpc", 0.86, 1, 0.9},
		{"create", "rest", 0.38, 2.5, 0.5},
		{"delete", "grpc", 0.5, 1.1, 0.5},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("comparisons (-want +got):\n%s", diff)
	}

	met := map[string]bool{}
	for _, tg := range comparisonTargets(cs) {
		met[tg.What] = tg.Met
	}
	wantMet := map[string]bool{
		"exchange over REST: throughput on galera through its load balancer, of one mysql's": true,
		"exchange over gRPC: throughput on galera through its load balancer, of one mysql's": false,
		"create over REST: throughput on galera through its load balancer, of one mysql's":   false,
		"delete over gRPC: throughput on galera through its load balancer, of one mysql's":   true, // exactly 0.5
	}
	if diff := cmp.Diff(wantMet, met); diff != "" {
		t.Errorf("targets met (-want +got):\n%s", diff)
	}

	var out strings.Builder
	printComparisons(&out, cs)
	for _, want := range []string{"mysql req/s", "galera conflicts/tx", "2.500 (1000 tx)", "0.000 (2000 tx)", "≥ 0.50"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
	if lines := strings.Count(out.String(), "\n"); lines != 1+len(cs) {
		t.Errorf("%d lines, want a header and %d rows:\n%s", lines, len(cs), out.String())
	}
}

func TestReportWithoutClusterHasNoComparison(t *testing.T) {
	var rs results
	rs.add("ceiling", "rest", result{RPS: 1000})
	var out strings.Builder
	report(&out, rs, nil, map[string]any{}, nil)
	if strings.Contains(out.String(), "galera") || strings.Contains(out.String(), `"compare"`) {
		t.Errorf("a report without a cluster compares:\n%s", out.String())
	}
}

func TestParseWrites(t *testing.T) {
	text := `# HELP tokenservice_db_transactions_total Write transactions begun.
# TYPE tokenservice_db_transactions_total counter
tokenservice_db_transactions_total 1234
tokenservice_db_transaction_conflicts_total 56
tokenservice_db_transactions_given_up_total 7
tokenservice_db_transactions_total_other 99
`
	w, err := parseWrites(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if want := (WriteCounts{Transactions: 1234, Conflicts: 56, GaveUp: 7}); w != want {
		t.Errorf("got %+v, want %+v", w, want)
	}
	d := WriteCounts{Transactions: 1300, Conflicts: 60, GaveUp: 7}.minus(w)
	if want := (WriteCounts{Transactions: 66, Conflicts: 4}); d != want {
		t.Errorf("minus: got %+v, want %+v", d, want)
	}
	if got := d.conflictsPerTransaction(); got < 0.0606 || got > 0.0607 {
		t.Errorf("conflicts per transaction %v, want 4/66", got)
	}
	if got := (WriteCounts{}).conflictsPerTransaction(); got != 0 {
		t.Errorf("no transaction: %v conflicts per transaction", got)
	}
	if _, err := parseWrites(strings.NewReader("tokenservice_db_transactions_total 1\n")); err == nil {
		t.Error("a server without the conflict counters was read as having none")
	}
}

// TestRunStopsWhenRunOut checks that a caller whose op has nothing left to
// do stops uncounted, and that the run measures until the last one stopped.
func TestRunStopsWhenRunOut(t *testing.T) {
	var left atomic.Int64
	// The warm-up (a fifth of the second) takes at most 4 callers × 200
	// calls of a millisecond or more: some are left for the run.
	left.Store(1200)
	do := func(ctx context.Context, worker int) error {
		if left.Add(-1) < 0 {
			return errRunOut
		}
		time.Sleep(time.Millisecond)
		return nil
	}
	r := run(context.Background(), func() float64 { return 0 }, 4, time.Second, do)
	if r.Errors != 0 {
		t.Errorf("%d errors: running out was counted as failing", r.Errors)
	}
	if r.Seconds > 0.9 {
		t.Errorf("the run went on for %.1f s after the work ran out", r.Seconds)
	}
	if r.Requests == 0 || r.Requests > 1200 {
		t.Errorf("%d requests measured, want some of the 1,200 (the rest were the warm-up's)", r.Requests)
	}
	if want := float64(r.Requests) / r.Seconds; r.RPS < want*0.99 || r.RPS > want*1.01 {
		t.Errorf("rps %.0f, want %.0f", r.RPS, want)
	}
}

func TestIDPool(t *testing.T) {
	f := newFixture()
	f.pool("rest").put("a")
	f.pool("rest").put("b")
	f.pool("grpc").put("c")
	var got []string
	for {
		id, ok := f.pool("rest").take()
		if !ok {
			break
		}
		got = append(got, id)
	}
	if diff := cmp.Diff([]string{"b", "a"}, got); diff != "" {
		t.Errorf("taken (-want +got):\n%s", diff)
	}
	if id, ok := f.pool("grpc").take(); !ok || id != "c" {
		t.Errorf("grpc pool: %q, %v", id, ok)
	}
}
