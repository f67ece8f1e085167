//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenservice/tokenservice/internal/testlog"
)

// serveNofileEnv, set, makes TestServeProcess run serve under that open-file limit.
const serveNofileEnv = "TOKENSERVICE_TEST_SERVE_NOFILE"

// TestServeProcess is the child process of startServeProcess, not a test of
// its own: `tokenservice serve` as main runs it, under a low open-file limit
// (soft and hard, as `ulimit -n` sets them), until SIGTERM.
func TestServeProcess(t *testing.T) {
	limit := os.Getenv(serveNofileEnv)
	if limit == "" {
		t.Skip("the child process of TestConnectionFloodsCannotExhaustFiles")
	}
	n, err := strconv.ParseUint(limit, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := run(ctx, []string{"tokenservice", "serve"}, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		t.Fatal(err)
	}
}

// servedAddrs are the addresses a serve process logged as "serving", and
// the connection caps it logged with them.
type servedAddrs struct {
	HTTP, GRPC, Metrics string
	MaxConnections      struct{ HTTP, GRPC, Metrics int64 } `json:"max_connections"`
}

// startServeProcess runs serve in a child process under an open-file limit
// of nofile, on free ports and a fresh SQLite database, and stops it when the
// test ends. It returns where it listens, once it is ready.
func startServeProcess(t *testing.T, nofile int) servedAddrs {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeProcess$")
	cmd.Env = append(os.Environ(),
		serveNofileEnv+"="+strconv.Itoa(nofile),
		"TOKENSERVICE_DB_DRIVER=sqlite",
		"TOKENSERVICE_DB_DSN="+filepath.Join(t.TempDir(), "tokenservice.db"),
		"TOKENSERVICE_HTTP_ADDR=127.0.0.1:0",
		"TOKENSERVICE_GRPC_ADDR=127.0.0.1:0",
		"TOKENSERVICE_METRICS_ADDR=127.0.0.1:0",
		"TOKENSERVICE_ISSUER=http://tokenservice.test",
		"TOKENSERVICE_LOG_FORMAT=json",
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	served := make(chan servedAddrs, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			var line struct {
				Msg string
				servedAddrs
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
				served <- line.servedAddrs
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		stopped := make(chan error, 1)
		go func() { <-drained; stopped <- cmd.Wait() }()
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("serve exited with %v:\n%s", err, logs)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("serve did not stop within 20s of SIGTERM:\n%s", logs)
		}
	})
	var addrs servedAddrs
	select {
	case addrs = <-served:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not log \"serving\" within 30s:\n%s", logs)
	}
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := hc.Get("http://" + addrs.HTTP + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready within 20s:\n%s", logs)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve's log:\n%s", logs)
		}
	})
	return addrs
}

// flood opens n connections to addr (fewer if the listen queue fills),
// each of which says hello and then idles, until end is called (at the latest when the test ends). accepted
// counts those the server has answered, that is, taken from its listen queue.
func flood(t *testing.T, addr string, n int, hello []byte) (accepted *atomic.Int64, end func()) {
	t.Helper()
	accepted = &atomic.Int64{}
	var conns []net.Conn
	var readers sync.WaitGroup
	end = sync.OnceFunc(func() {
		for _, c := range conns {
			c.Close()
		}
		readers.Wait()
	})
	t.Cleanup(end)
	for range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			// The kernel's listen queue is full (net.core.somaxconn):
			// the server takes no more, and more would only wait.
			t.Logf("flood: connection %d of %d: %v; flooding with the %d opened", len(conns)+1, n, err, len(conns))
			break
		}
		conns = append(conns, c)
		if _, err := c.Write(hello); err != nil {
			t.Fatalf("flood: %v", err)
		}
		readers.Go(func() {
			if _, err := c.Read(make([]byte, 1)); err == nil {
				accepted.Add(1)
			}
		})
	}
	return accepted, end
}

// The two hellos: an HTTP/1.1 request, after whose answer the connection
// is kept alive, idle; and the HTTP/2 client preface with its SETTINGS frame
// (RFC 9113 section 3.4), after which a gRPC connection idles with no call.
var (
	httpHello = []byte("GET /healthz HTTP/1.1\r\nHost: flood\r\n\r\n")
	grpcHello = append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 0x4, 0, 0, 0, 0, 0)
)

// answersHTTP checks that a GET of url answers 200 on a new connection.
func answersHTTP(url string) error {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// answersGRPCHealth checks that the gRPC health service says SERVING on a
// new connection.
func answersGRPCHealth(addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("gRPC health: %s", resp.Status)
	}
	return nil
}

// Idle connections on one port, twice as many as the process may open
// files, leave the other ports answering: each listener keeps at most its
// share of the open-file limit open, and the rest wait in the kernel's queue.
// Once the flood ends, the flooded port answers again. serve runs as a
// process of its own, under an open-file limit of 256.
func TestConnectionFloodsCannotExhaustFiles(t *testing.T) {
	const nofile = 256
	type port struct {
		name    string
		addr    func(servedAddrs) (addr string, maxConns int64)
		hello   []byte
		answers func(addr string) error
	}
	rest := port{"REST", func(a servedAddrs) (string, int64) { return a.HTTP, a.MaxConnections.HTTP }, httpHello,
		func(addr string) error { return answersHTTP("http://" + addr + "/healthz") }}
	grpcPort := port{"gRPC", func(a servedAddrs) (string, int64) { return a.GRPC, a.MaxConnections.GRPC }, grpcHello, answersGRPCHealth}
	metrics := port{"metrics", func(a servedAddrs) (string, int64) { return a.Metrics, a.MaxConnections.Metrics }, httpHello,
		func(addr string) error { return answersHTTP("http://" + addr + "/metrics") }}
	for _, tc := range []struct {
		flooded port
		others  []port
	}{
		{grpcPort, []port{rest, metrics}},
		{rest, []port{grpcPort, metrics}},
		{metrics, []port{rest, grpcPort}},
	} {
		t.Run("flood "+tc.flooded.name, func(t *testing.T) {
			addrs := startServeProcess(t, nofile)
			floodedAddr, maxConns := tc.flooded.addr(addrs)
			accepted, endFlood := flood(t, floodedAddr, 2*nofile, tc.flooded.hello)
			// Wait until the server is taking the flood: as many connections
			// as the port's cap (as serve logged it), or a quarter of the limit.
			taking := int64(nofile / 4)
			if maxConns > 0 {
				taking = min(taking, maxConns)
			}
			for deadline := time.Now().Add(10 * time.Second); accepted.Load() < taking; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the server took only %d flood connections in 10s", accepted.Load())
				}
			}
			for _, other := range tc.others {
				addr, _ := other.addr(addrs)
				if err := other.answers(addr); err != nil {
					t.Errorf("%s flooded with %d idle connections (%d taken): %s does not answer: %v",
						tc.flooded.name, 2*nofile, accepted.Load(), other.name, err)
				}
			}
			if n := accepted.Load(); maxConns > 0 && n > maxConns {
				t.Errorf("%s took %d flood connections, over its cap of %d", tc.flooded.name, n, maxConns)
			}
			t.Logf("%s flooded with %d idle connections, %d of them taken; the others answered", tc.flooded.name, 2*nofile, accepted.Load())
			endFlood()
			if err := tc.flooded.answers(floodedAddr); err != nil {
				t.Errorf("the flood on %s ended, and it does not answer: %v", tc.flooded.name, err)
			}
		})
	}
}
