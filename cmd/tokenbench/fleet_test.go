package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The fleet scenarios against a real server, briefly, with a small fleet:
// each runs over both transports beside its hot-token scenario, the seeded
// tokens (written straight into the database) and the access tokens minted
// from them are accepted (realMain fails on any failed request), and the
// ratios and the server's peak memory are reported. On SQLite, and on
// MySQL when TOKENSERVICE_TEST_MYSQL_DSN names one.
func TestFleetScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scenarios against a server: make test runs it, make test-fast (-short) does not")
	}
	bin := filepath.Join(t.TempDir(), "tokenservice")
	if out, err := exec.Command("go", "build", "-o", bin, "../tokenservice").CombinedOutput(); err != nil {
		t.Fatalf("building tokenservice: %v\n%s", err, out)
	}
	dbs := map[string][]string{"sqlite": {"-db", "sqlite"}}
	if dsn := os.Getenv("TOKENSERVICE_TEST_MYSQL_DSN"); dsn != "" {
		dbs["mysql"] = []string{"-db", "mysql", "-mysql-dsn", dsn}
	}
	for name, dbArgs := range dbs {
		t.Run(name, func(t *testing.T) {
			var stdout bytes.Buffer
			args := append(dbArgs, "-bin", bin, "-duration", "250ms", "-sweep", "", "-list-tokens", "10",
				"-fleet-rows", "1200", "-fleet-tokens", "200", "-scenarios", "fleet-exchange,fleet-bearer,fleet-access-bearer")
			if err := realMain(context.Background(), args, &stdout, io.Discard); err != nil {
				t.Fatalf("tokenbench: %v\n%s", err, stdout.String())
			}
			checkFleetOutput(t, stdout.String())
		})
	}
}

func checkFleetOutput(t *testing.T, out string) {
	t.Helper()
	if !strings.Contains(out, "fleet scenario") {
		t.Errorf("no table of the fleet against the hot token:\n%s", out)
	}
	seen := map[string]result{}
	var summary map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r struct {
			result
			Summary map[string]any
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if r.Summary != nil {
			summary = r.Summary
		}
		if r.Scenario != "" {
			seen[r.Scenario+"/"+r.Transport] = r.result
		}
	}
	for _, fs := range fleetScenarios {
		for _, tr := range []string{"rest", "grpc"} {
			r, ok := seen[fs.name+"/"+tr]
			_, hotOK := seen[fs.hot+"/"+tr]
			switch {
			case !ok || !hotOK:
				t.Errorf("%s over %s: no result for it (%v) or its hot-token scenario %s (%v)", fs.name, tr, ok, fs.hot, hotOK)
			case r.Requests == 0 || r.Errors > 0:
				t.Errorf("%s over %s: %d requests, %d errors (%s)", fs.name, tr, r.Requests, r.Errors, r.FirstError)
			case r.OfHot <= 0 || r.PeakRSSMiB <= 0 || r.CPUPer1k <= 0 || r.P99ms <= 0:
				t.Errorf("%s over %s: of hot %v, peak RSS %v MiB, CPU %v s/1k, p99 %v ms", fs.name, tr, r.OfHot, r.PeakRSSMiB, r.CPUPer1k, r.P99ms)
			}
		}
	}
	if v, _ := summary["peak_rss_before_fleet_mib"].(float64); v <= 0 || v > summary["peak_rss_mib"].(float64) {
		t.Errorf("summary: peak RSS before the fleet %v MiB, over the run %v MiB", summary["peak_rss_before_fleet_mib"], summary["peak_rss_mib"])
	}
	if v, _ := summary["fleet_lastused_on_of_off"].(float64); v <= 0 {
		t.Errorf("summary: fleet-exchange with last-used tracking of without %v", summary["fleet_lastused_on_of_off"])
	}
	for _, name := range []string{"fleet-exchange-lastused-on/rest", "fleet-exchange-lastused-off/rest"} {
		if r := seen[name]; r.Requests == 0 || r.Errors > 0 {
			t.Errorf("%s: %d requests, %d errors (%s)", name, r.Requests, r.Errors, r.FirstError)
		}
	}
	if summary["fleet_rows"] != 1200.0 || summary["fleet_tokens"] != 200.0 || summary["fleet_seed_s"] == nil || summary["fleet_access_mint_s"] == nil {
		t.Errorf("summary: fleet_rows %v, fleet_tokens %v, fleet_seed_s %v, fleet_access_mint_s %v",
			summary["fleet_rows"], summary["fleet_tokens"], summary["fleet_seed_s"], summary["fleet_access_mint_s"])
	}
}
