package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The harness itself, end to end and briefly, so `make bench` cannot rot
// unnoticed: a real server on SQLite, every scenario, a JSON line each.
func TestTokenbenchRunsEveryScenario(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tokenservice")
	if out, err := exec.Command("go", "build", "-o", bin, "../tokenservice").CombinedOutput(); err != nil {
		t.Fatalf("building tokenservice: %v\n%s", err, out)
	}
	var stdout bytes.Buffer
	err := realMain(context.Background(), []string{"-bin", bin, "-db", "sqlite", "-duration", "250ms", "-list-tokens", "60", "-sweep", "4,8"}, &stdout, io.Discard)
	if err != nil {
		t.Fatalf("tokenbench: %v\n%s", err, stdout.String())
	}
	seen := map[string]bool{}
	var summary bool
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r struct {
			Scenario, Transport string
			RPS                 float64
			Summary             map[string]any
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if r.Summary != nil {
			summary = r.Summary["peak_rss_mib"].(float64) > 0 && r.Summary["startup_to_ready_ms"].(float64) > 0
		}
		if r.Scenario != "" {
			if r.RPS <= 0 {
				t.Errorf("%s over %s: %v req/s", r.Scenario, r.Transport, r.RPS)
			}
			seen[r.Scenario+"/"+r.Transport] = true
		}
	}
	for _, sc := range scenarios {
		for _, tr := range []string{"rest", "grpc"} {
			if !seen[sc.name+"/"+tr] {
				t.Errorf("no result for %s over %s", sc.name, tr)
			}
		}
	}
	for _, name := range []string{"oauth-token/rest", "introspect/rest", "exchange-sweep/rest", "exchange-sweep/grpc", "exchange-lastused-on/rest", "exchange-lastused-off/rest", "exchange-no-reuse/rest", "exchange-no-reuse/grpc"} {
		if !seen[name] {
			t.Errorf("no result for %s", name)
		}
	}
	if !summary {
		t.Error("no summary line with the server's memory and start-up time")
	}
}
