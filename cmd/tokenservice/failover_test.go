package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// The failover tests kill and cut the nodes of a Galera cluster, so they
// start one of their own (scripts/galera.sh, on ports from
// failoverPortBase, data under bin/galera-failover) rather than use the
// cluster make test starts for every package's Galera tests.
const failoverPortBase = 13400

// failoverWithin is the bound: replicas behind the load balancer
// serve again within it of the balancer marking a failed node down.
const failoverWithin = 5 * time.Second

// ownCluster is a three-node Galera cluster with HAProxy that one test
// started and stops.
type ownCluster struct {
	t     *testing.T
	dir   string
	nodes []string // each node's DSN
	lb    string   // HAProxy's DSN
}

func mustOwnCluster(t *testing.T) *ownCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Galera cluster: make test runs it, make test-fast (-short) does not")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	c := &ownCluster{t: t, dir: filepath.Join(root, "bin", "galera-failover")}
	stop := func() {
		if out, err := c.script("down"); err != nil {
			t.Errorf("stopping the cluster: %v\n%s", err, out)
		}
	}
	stop() // one a killed test run left behind (make test's trap stops it too)
	t.Cleanup(stop)
	out, err := c.script("up")
	if err != nil {
		t.Fatalf("starting a Galera cluster of the test's own: %v\n%s", err, out)
	}
	for line := range strings.Lines(out) {
		name, value, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "export "), "=")
		value = strings.Trim(value, "'")
		switch {
		case !ok:
		case name == storetest.GaleraDSNsEnv:
			c.nodes = strings.Split(value, ",")
		case name == storetest.GaleraLBDSNEnv:
			c.lb = value
		}
	}
	if len(c.nodes) != 3 || c.lb == "" {
		t.Fatalf("scripts/galera.sh up printed no DSNs:\n%s", out)
	}
	return c
}

// script runs scripts/galera.sh on this cluster and returns its output.
func (c *ownCluster) script(verb string) (string, error) {
	cmd := exec.Command(filepath.Join(filepath.Dir(filepath.Dir(c.dir)), "scripts", "galera.sh"), verb)
	cmd.Env = append(os.Environ(), "GALERA_DIR="+c.dir, "GALERA_PORT_BASE="+strconv.Itoa(failoverPortBase))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// kill kills node n (1-based) at once, as a crash or an OOM kill would.
// It returns an error rather than fail the test: it runs in a fault's
// goroutine.
func (c *ownCluster) kill(n int) error {
	pid, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node%d", n), "mariadbd.pid"))
	if err != nil {
		return fmt.Errorf("node%d's pid: %w", n, err)
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err != nil {
		return fmt.Errorf("node%d's pid: %w", n, err)
	}
	if os.Geteuid() == 0 {
		err = syscall.Kill(p, syscall.SIGKILL)
	} else {
		err = exec.Command("sudo", "kill", "-KILL", strconv.Itoa(p)).Run()
	}
	if err != nil {
		return fmt.Errorf("killing node%d: %w", n, err)
	}
	return nil
}

// rejoin starts the nodes that are not running and waits until all three
// are Synced; it returns how node n caught up, from its log: "IST" (the
// writes it missed, from another node's gcache) or "SST" (a full copy).
func (c *ownCluster) rejoin(n int) string {
	c.t.Helper()
	if out, err := c.script("up"); err != nil {
		c.t.Fatalf("rejoining: %v\n%s", err, out)
	}
	log, _ := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node%d", n), "error.log"))
	last := string(log[max(0, bytes.LastIndex(log, []byte("Starting MariaDB"))):])
	// The rsync script runs either way; it says which it did.
	switch {
	case strings.Contains(last, "rsync IST completed on joiner"):
		return "IST"
	case strings.Contains(last, "rsync SST completed on joiner"):
		return "SST"
	}
	return "a way its log does not say"
}

// isolate cuts node n off from the others (on) or lets it back (off), as a
// network partition would: alone, it is no longer Primary.
func (c *ownCluster) isolate(n int, on bool) {
	c.t.Helper()
	db, err := sql.Open("mysql", c.nodes[n-1])
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	v := 0
	if on {
		v = 1
	}
	if _, err := db.Exec(fmt.Sprintf("SET GLOBAL wsrep_provider_options='gmcast.isolate=%d'", v)); err != nil {
		c.t.Fatalf("isolating node%d (%v): %v", n, on, err)
	}
}

// lbUp reports whether HAProxy sends connections to node n, from its
// stats socket (srv_op_state 2: running).
func (c *ownCluster) lbUp(n int) (bool, error) {
	conn, err := net.DialTimeout("unix", filepath.Join(c.dir, "haproxy.sock"), time.Second)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return false, err
	}
	if _, err := conn.Write([]byte("show servers state galera\n")); err != nil {
		return false, err
	}
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		// be_id be_name srv_id srv_name srv_addr srv_op_state ...
		f := strings.Fields(sc.Text())
		if len(f) > 5 && f[3] == fmt.Sprintf("node%d", n) {
			return f[5] == "2", nil
		}
	}
	return false, fmt.Errorf("node%d not in HAProxy's servers state", n)
}

// waitLB waits until HAProxy has node n up (want true) or down, and
// returns when it saw that.
func (c *ownCluster) waitLB(n int, want bool, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	for {
		up, err := c.lbUp(n)
		if err == nil && up == want {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("HAProxy did not mark node%d up=%v within %v (last: %v, %v)", n, want, within, up, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serves reports whether s answers /readyz 200 and creates a token for
// bearer (a write, which needs a usable node), each within a second.
func (s *service) serves(bearer string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.httpURL+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz %d", resp.StatusCode)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.grpcCaller().call(ctx, pb.TokenService_CreateToken_FullMethodName, bearer, &pb.CreateTokenRequest{Note: "probe"}, &pb.CreateTokenResponse{})
}

// servesBy waits until s serves, and fails the test (from any goroutine)
// if that is not by deadline.
func (s *service) servesBy(t *testing.T, name, bearer string, deadline time.Time) {
	t.Helper()
	for {
		err := s.serves(bearer)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s does not serve by the deadline: %v", name, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A node cut off from the others (a partition) still takes logins, pings
// and SELECT 1, and fails every query of a table with error 1047. A replica
// straight on it is not ready and answers 503 (never 500) until the node is
// back; HAProxy takes it out of the rotation, so replicas behind it go on.
func TestGaleraNodeCutOff(t *testing.T) {
	c := mustOwnCluster(t)
	g := storetest.MustGaleraOn(t, c.nodes, c.lb)
	onNode3 := startService(t, g.Nodes[2], "TOKENSERVICE_DB_QUERY_TIMEOUT", "2s", "TOKENSERVICE_CACHE_TTL", "0")
	behindLB := startService(t, g.LB, "TOKENSERVICE_DB_QUERY_TIMEOUT", "2s")
	behindLB.mustUser(t, "alice", "human")
	bearer := rpc{t, behindLB.grpcCaller()}.login("alice")

	c.isolate(3, true)
	onNode3.waitReady(t, false, 20*time.Second)
	for _, cl := range onNode3.callers(t) {
		err := cl.call(context.Background(), pb.TokenService_CreateToken_FullMethodName, bearer, &pb.CreateTokenRequest{Note: "cut off"}, &pb.CreateTokenResponse{})
		wantCode(t, cl.name+": a create on the cut-off node", err, codes.Unavailable)
	}
	marked, err := c.waitLB(3, false, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	behindLB.servesBy(t, "the replica behind HAProxy", bearer, marked.Add(failoverWithin))

	c.isolate(3, false)
	onNode3.waitReady(t, true, 30*time.Second)
	if err := onNode3.serves(bearer); err != nil {
		t.Errorf("the replica on the node back in the cluster: %v", err)
	}
}

// A node killed under a mixed load through HAProxy: the failed calls are
// UNAVAILABLE (503 with Retry-After over REST), never INTERNAL; the
// replicas behind HAProxy serve again within failoverWithin of HAProxy
// marking the node down; a replica straight on the dead node is not ready
// until it is back; the node rejoins and catches up (the replica on it
// then answers the audit of every acknowledged write: nothing lost,
// nothing invented).
func TestGaleraNodeKilledUnderLoad(t *testing.T) {
	c := mustOwnCluster(t)
	g := storetest.MustGaleraOn(t, c.nodes, c.lb)
	const timeout = "TOKENSERVICE_DB_QUERY_TIMEOUT"
	a := startService(t, g.LB, timeout, "2s")
	b := startService(t, g.LB, timeout, "2s")
	// No cache: its answers come from its own node.
	onNode2 := startService(t, g.Nodes[1], timeout, "2s", "TOKENSERVICE_CACHE_TTL", "0")
	load := ledgerLoad{workers: 24, opsPerWorker: 100, bearers: ledgerUsers(t, a, 3),
		callers: append(a.callers(t), b.callers(t)...)}
	a.mustUser(t, "prober", "human") // the probes' tokens stay out of the ledgers' users
	prober := rpc{t, a.grpcCaller()}.login("prober")
	load.fault = func() {
		if err := c.kill(2); err != nil {
			t.Error(err)
			return
		}
		killed := time.Now()
		marked, err := c.waitLB(2, false, 10*time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		for name, s := range map[string]*service{"replica a": a, "replica b": b} {
			s.servesBy(t, name, prober, marked.Add(failoverWithin))
		}
		t.Logf("HAProxy marked node2 down %v after the kill; both replicas behind it served %v after that",
			marked.Sub(killed).Round(time.Millisecond), time.Since(marked).Round(time.Millisecond))
		if err := onNode2.serves(prober); err == nil || !strings.Contains(err.Error(), "/readyz 503") {
			t.Errorf("the replica on the dead node: %v, want /readyz 503", err)
		}
	}
	ledgers := load.run(t)

	if how := c.rejoin(2); how != "IST" {
		t.Errorf("node2 rejoined by %s, want IST: a few seconds' writes are in the others' gcache", how)
	}
	if _, err := c.waitLB(2, true, 10*time.Second); err != nil {
		t.Error(err)
	}
	onNode2.waitReady(t, true, 30*time.Second)
	load.callers = onNode2.callers(t)
	load.audit(t, ledgers)
}
