package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// heyRPS is hey's summary line of throughput.
var heyRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// runHey measures url with hey (github.com/rakyll/hey), an independent and
// light load generator: HTTP/1.1 keep-alive, concurrency callers, for d.
// Beside its throughput it reports the server's CPU per 1,000 requests
// meanwhile and hey's own, as tokenbench's rows do.
func runHey(ctx context.Context, bin, url string, concurrency int, d time.Duration, serverCPU func() float64) (result, error) {
	cmd := exec.CommandContext(ctx, bin, "-z", d.String(), "-c", strconv.Itoa(concurrency), "-disable-compression", url)
	cpu0 := serverCPU()
	out, err := cmd.Output()
	cpu := serverCPU() - cpu0
	if err != nil {
		return result{}, fmt.Errorf("hey: %w", err)
	}
	m := heyRPS.FindSubmatch(out)
	if m == nil {
		return result{}, fmt.Errorf("hey printed no Requests/sec: %s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	if rps <= 0 {
		return result{}, fmt.Errorf("hey measured %v req/s", rps)
	}
	r := result{Concurrency: concurrency, Seconds: d.Seconds(), RPS: rps, Requests: int(rps * d.Seconds())}
	own := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	r.CPUPer1k = cpu / float64(r.Requests) * 1000
	r.ClientCPUPer1k = own.Seconds() / float64(r.Requests) * 1000
	return r, nil
}
