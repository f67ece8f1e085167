package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one `tokenservice serve` process under test.
type server struct {
	cmd        *exec.Cmd
	httpURL    string
	grpcAddr   string
	metricsURL string // its Prometheus metrics
	env        []string
	logPath    string
	ready      time.Duration // from exec to /readyz answering 200
	// peakSeen is the highest VmHWM read before resetPeakRSS reset it.
	peakSeen float64
}

// freeAddr returns a loopback address with a port free at the time of asking.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startServer runs bin serve with env added to the bench's environment and
// waits until /readyz says ready.
func startServer(ctx context.Context, bin string, env []string, logPath string, extraArgs ...string) (*server, error) {
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	grpcAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	s := &server{httpURL: "http://" + httpAddr, grpcAddr: grpcAddr, metricsURL: "http://" + metricsAddr + "/metrics", env: env, logPath: logPath}
	s.cmd = exec.Command(bin, append([]string{"serve", "--http-addr", httpAddr, "--grpc-addr", grpcAddr, "--metrics-addr", metricsAddr, "--log-level", "warn"}, extraArgs...)...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	start := time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.httpURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.ready = time.Since(start)
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("the server was not ready within 30s; its log is %s", logPath)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the process to end.
func (s *server) stop() error {
	if s.cmd.Process == nil {
		return nil
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		return fmt.Errorf("the server did not stop within 20s of SIGTERM")
	}
}

// procStatus returns a field of /proc/<pid>/status in MiB (VmRSS, VmHWM).
func (s *server) memMiB(field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// peakRSS returns the process's peak resident set in MiB over its whole
// life, resets by resetPeakRSS included.
func (s *server) peakRSS() float64 { return max(s.peakSeen, s.memMiB("VmHWM")) }

// resetPeakRSS sets the process's VmHWM to its current resident set
// (Linux's clear_refs 5), so that VmHWM read after a scenario is that
// scenario's peak; remembering the peak so far for peakRSS. If the reset
// is not allowed, VmHWM stays the peak since the start.
func (s *server) resetPeakRSS() {
	s.peakSeen = s.peakRSS()
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.cmd.Process.Pid), []byte("5"), 0)
}

// cpuSeconds returns the user plus system CPU time the process has used.
func (s *server) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from after its ")".
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return (utime + stime) / ticksPerSecond
}
