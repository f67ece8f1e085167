package main

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunMeasures(t *testing.T) {
	var calls atomic.Int64
	do := func(ctx context.Context, worker int) error {
		n := calls.Add(1)
		time.Sleep(2 * time.Millisecond)
		if n%10 == 0 {
			return errors.New("every tenth call fails")
		}
		return nil
	}
	cpu := 0.0
	r := run(context.Background(), func() float64 { cpu += 0.5; return cpu }, 4, 500*time.Millisecond, do)
	if r.Requests < 100 || r.Errors == 0 {
		t.Fatalf("%d requests, %d errors: the run did not run", r.Requests, r.Errors)
	}
	if got := float64(r.Errors) / float64(r.Requests); got < 0.05 || got > 0.15 {
		t.Errorf("error share %.2f, want about 0.1", got)
	}
	if r.P50ms < 2 || r.P99ms < r.P50ms {
		t.Errorf("p50 %.2f ms, p99 %.2f ms: each call takes at least 2 ms", r.P50ms, r.P99ms)
	}
	if want := float64(r.Requests-r.Errors) / r.Seconds; r.RPS < want*0.99 || r.RPS > want*1.01 {
		t.Errorf("rps %.0f, want successes per second %.0f", r.RPS, want)
	}
	if want := 0.5 / float64(r.Requests) * 1000; r.CPUPer1k < want*0.99 || r.CPUPer1k > want*1.01 {
		t.Errorf("CPU per 1k %.4f, want %.4f", r.CPUPer1k, want)
	}
	if r.FirstError == "" {
		t.Error("the first error was not kept")
	}
}

func TestTargets(t *testing.T) {
	results := []result{
		{Scenario: "ceiling", Transport: "rest", RPS: 40000, CPUPer1k: 0.020},
		{Scenario: "ceiling-hey", Transport: "rest", RPS: 42000, CPUPer1k: 0.020},
		{Scenario: "noop-401", Transport: "rest", RPS: 20000, CPUPer1k: 0.031},
		{Scenario: "exchange", Transport: "rest", RPS: 22000, CPUPer1k: 0.036},
		{Scenario: "exchange", Transport: "grpc", RPS: 25000, CPUPer1k: 0.030},
		{Scenario: "bearer-jwt", Transport: "rest", RPS: 22000, CPUPer1k: 0.040},
		{Scenario: "bearer-jwt", Transport: "grpc", RPS: 25000, CPUPer1k: 0.028},
		{Scenario: "exchange-no-reuse", Transport: "rest", RPS: 12000, CPUPer1k: 0.1},
		{Scenario: "exchange-sweep", Transport: "rest", Concurrency: 16, RPS: 1000},
		{Scenario: "exchange-sweep", Transport: "rest", Concurrency: 256, RPS: 790},
	}
	summary := map[string]any{"peak_rss_mib": 100.0, "idle_rss_mib": 41.0, "startup_to_ready_ms": int64(900), "lastused_on_of_off": 0.95,
		"tokenbench_ceiling_of_hey": 0.95}
	met := map[string]bool{}
	for _, tg := range targets(results, summary, []int{16, 64, 256}) {
		met[tg.What] = tg.Met
	}
	for what, want := range map[string]bool{
		"noop-401 over REST: server CPU per request, of /healthz's":              false, // 1.55
		"exchange over REST: server CPU per request, of /healthz's":              false, // 1.8
		"bearer-jwt over REST: server CPU per request, of /healthz's":            false, // 2.0
		"exchange: REST server CPU per request, of gRPC's":                       true,  // 1.2
		"bearer-jwt: REST server CPU per request, of gRPC's":                     false, // 1.43
		"exchange over REST: throughput, of hey's /healthz ceiling":              true,  // 0.52
		"bearer-jwt over REST: throughput, of hey's /healthz ceiling":            false, // 0.52
		"exchange-no-reuse over REST: throughput, of hey's /healthz ceiling":     false, // 0.29
		"tokenbench's REST ceiling, of hey's (the client is not the bottleneck)": true,
		"exchange over rest: throughput at 256 of that at 16":                    false,
		"exchange over rest: errors at 256":                                      true,
		"exchange with last-used tracking, of without":                           true,
		"peak server RSS under the bench, MiB":                                   true,
		"idle server RSS, MiB":                                                   false,
		"start-up to ready on an existing database, ms":                          true,
	} {
		got, ok := met[what]
		if !ok {
			t.Errorf("target %q not evaluated", what)
		} else if got != want {
			t.Errorf("target %q: met=%v, want %v", what, got, want)
		}
	}
}

// TestPrintTargetsShowsANarrowMiss checks that a target missed by less
// than two decimals show is not printed as its own threshold.
func TestPrintTargetsShowsANarrowMiss(t *testing.T) {
	var out strings.Builder
	printTargets(&out, []target{
		{What: "narrow miss", Got: 1.302, Want: 1.3, AtMost: true},
		{What: "clear miss", Got: 1.5, Want: 1.3, AtMost: true},
		{What: "met", Got: 1.298, Want: 1.3, AtMost: true, Met: true},
	})
	for _, want := range []string{"narrow miss  1.302  ≤ 1.30  MISSED", "clear miss   1.50   ≤ 1.30  MISSED", "met          1.30   ≤ 1.30  met"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
}
