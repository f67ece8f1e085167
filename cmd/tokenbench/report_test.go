package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRelateToReferences checks the ratios set on each result: of the
// ceiling and of noop-401 over its own transport, none on the references
// themselves, and the REST of gRPC ratio left as measureBoth set it.
func TestRelateToReferences(t *testing.T) {
	var rs results
	rs.add("ceiling", "rest", result{RPS: 1000})
	rs.add("ceiling", "grpc", result{RPS: 800})
	rs.add("noop-401", "rest", result{RPS: 500})
	rs.add("noop-401", "grpc", result{RPS: 400})
	ex := rs.add("exchange", "rest", result{RPS: 250, RESTOfGRPC: 0.5})
	rs.add("exchange", "grpc", result{RPS: 200})
	rs.add("ceiling-hey", "rest", result{RPS: 1100})
	rs.relateToReferences()
	if ex != rs[4] {
		t.Fatal("add did not return the result it recorded")
	}
	want := []result{
		{Scenario: "ceiling", Transport: "rest", RPS: 1000},
		{Scenario: "ceiling", Transport: "grpc", RPS: 800},
		{Scenario: "noop-401", Transport: "rest", RPS: 500, OfCeiling: 0.5},
		{Scenario: "noop-401", Transport: "grpc", RPS: 400, OfCeiling: 0.5},
		{Scenario: "exchange", Transport: "rest", RPS: 250, OfCeiling: 0.25, OfNoop: 0.5, RESTOfGRPC: 0.5},
		{Scenario: "exchange", Transport: "grpc", RPS: 200, OfCeiling: 0.25, OfNoop: 0.5},
		{Scenario: "ceiling-hey", Transport: "rest", RPS: 1100, OfCeiling: 1.1, OfNoop: 2.2},
	}
	if diff := cmp.Diff(want, rs.values()); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if err := rs.failures(); err != nil {
		t.Errorf("no request failed, yet: %v", err)
	}
	rs[1].Errors = 3
	if err := rs.failures(); err == nil || err.Error() != "3 requests failed (the first error of each scenario is in its JSON line)" {
		t.Errorf("failures: %v", err)
	}
}
