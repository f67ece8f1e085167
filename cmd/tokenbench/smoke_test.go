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

// heyVersion is the Makefile's HEY_VERSION.
const heyVersion = "v0.1.4"

// The harness itself, end to end and briefly, so `make bench` cannot rot
// unnoticed: a real server on SQLite, every scenario (the federated ones
// against the bench's stand-in issuer), a JSON line each.
func TestTokenbenchRunsEveryScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario against a server (half a minute): make test runs it, make test-fast (-short) does not")
	}
	bin := filepath.Join(t.TempDir(), "tokenservice")
	if out, err := exec.Command("go", "build", "-o", bin, "../tokenservice").CombinedOutput(); err != nil {
		t.Fatalf("building tokenservice: %v\n%s", err, out)
	}
	// hey at the Makefile's pinned version, as `make bench` installs it.
	makefile, _ := os.ReadFile("../../Makefile")
	if !strings.Contains(string(makefile), "HEY_VERSION          := "+heyVersion) {
		t.Fatalf("the Makefile does not pin hey at %s, as this test does", heyVersion)
	}
	heyDir := t.TempDir()
	install := exec.Command("go", "install", "github.com/rakyll/hey@"+heyVersion)
	install.Env = append(os.Environ(), "GOBIN="+heyDir)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("installing hey: %v\n%s", err, out)
	}
	var stdout bytes.Buffer
	err := realMain(context.Background(), []string{"-bin", bin, "-db", "sqlite", "-duration", "250ms", "-list-tokens", "60", "-sweep", "4,8", "-fleet-rows", "300", "-fleet-tokens", "200",
		"-hey", filepath.Join(heyDir, "hey"), "-gateways-dir", filepath.Join("..", "..", "deploy", "gateways"),
		"-oauth2-proxy", filepath.Join("..", "..", "bin", "oauth2-proxy")}, &stdout, io.Discard)
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
			ClientCPU           float64 `json:"client_cpu_s_per_1k"`
			Summary             map[string]any
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if r.Summary != nil {
			summary = r.Summary["peak_rss_mib"].(float64) > 0 && r.Summary["startup_to_ready_ms"].(float64) > 0 &&
				r.Summary["hey_ceiling_rps"].(float64) > 0
			// The federated exchange against the API token's, and the
			// unknown-kid flood's fetches: at least the server's first
			// (discovery, then the JWKS), at most one an interval.
			for _, k := range []string{"nginx_auth_of_open", "offline_jwt_of_open"} {
				if v, _ := r.Summary[k].(float64); v <= 0 {
					t.Errorf("summary: %s %v", k, r.Summary[k])
				}
			}
			if v, _ := r.Summary["federated_of_exchange_no_reuse"].(float64); v <= 0 {
				t.Errorf("summary: federated_of_exchange_no_reuse %v", r.Summary["federated_of_exchange_no_reuse"])
			}
			fetches, _ := r.Summary["unknown_kid_jwks_fetches"].(float64)
			allowed, _ := r.Summary["unknown_kid_fetches_allowed"].(float64)
			if fetches < 1 || fetches > allowed || r.Summary["unknown_kid_discovery_fetches"] != 1.0 {
				t.Errorf("summary: the unknown-kid flood made %v JWKS fetches (%v allowed) and %v of discovery, want 1 to %v and 1",
					fetches, allowed, r.Summary["unknown_kid_discovery_fetches"], allowed)
			}
		}
		if r.Scenario != "" {
			if r.RPS <= 0 {
				t.Errorf("%s over %s: %v req/s", r.Scenario, r.Transport, r.RPS)
			}
			if r.ClientCPU <= 0 {
				t.Errorf("%s over %s: no client CPU measured", r.Scenario, r.Transport)
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
	for _, sc := range fleetScenarios {
		for _, tr := range []string{"rest", "grpc"} {
			if !seen[sc.name+"/"+tr] {
				t.Errorf("no result for %s over %s", sc.name, tr)
			}
		}
	}
	for _, name := range []string{"ceiling-hey/rest", "oauth-token/rest", "introspect/rest", "exchange-sweep/rest", "exchange-sweep/grpc", "exchange-lastused-on/rest", "exchange-lastused-off/rest", "exchange-no-reuse/rest", "exchange-no-reuse/grpc",
		"federated/rest", "federated-unknown-kid/rest", "federated-no-reuse/rest", "oauth-token-no-reuse/rest",
		"gateway-nginx-open/rest", "gateway-nginx-auth/rest", "gateway-offline-open/rest", "gateway-offline-jwt/rest"} {
		if !seen[name] {
			t.Errorf("no result for %s", name)
		}
	}
	if !summary {
		t.Error("no summary line with the server's memory, start-up time and hey's ceiling")
	}
}
