package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"syscall"
	"time"
)

// op makes one request; worker is the caller's index, for per-worker state.
type op func(ctx context.Context, worker int) error

// errRunOut is what an op returns when it has nothing left to do (delete,
// when no token is left to delete): its caller stops, uncounted, and the
// run measures the time until the last caller stopped.
var errRunOut = errors.New("nothing left to do")

// result is one scenario's measurement.
type result struct {
	DB          string  `json:"db,omitempty"` // the database the server ran on
	Scenario    string  `json:"scenario"`
	Transport   string  `json:"transport"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	RPS         float64 `json:"rps"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	CPUPer1k    float64 `json:"cpu_s_per_1k"`
	// ClientCPUPer1k is tokenbench's own CPU per 1,000 requests: on a
	// machine the client shares with the server, what it takes from it.
	ClientCPUPer1k float64 `json:"client_cpu_s_per_1k"`
	// Ratios within this run; 0 when they do not apply.
	OfCeiling  float64 `json:"of_ceiling,omitempty"`
	OfNoop     float64 `json:"of_noop,omitempty"` // of noop-401: the same API stack, refused before any work
	RESTOfGRPC float64 `json:"rest_of_grpc,omitempty"`
	// OfHot is a fleet scenario's throughput of its hot-token scenario's
	// (the same request with one token) over the same transport.
	OfHot float64 `json:"of_hot,omitempty"`
	// PeakRSSMiB is the server's peak resident set during the run (its
	// VmHWM, reset before it).
	PeakRSSMiB float64 `json:"peak_rss_mib,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
	// The server's write transactions over the warm-up and the run, from
	// its metrics.
	WriteCounts
}

// run calls do from concurrency workers for d (after a short warm-up) and
// measures CPU time (the server's, by cpuSeconds) meanwhile.
func run(ctx context.Context, cpuSeconds func() float64, concurrency int, d time.Duration, do op) result {
	hammer(ctx, time.Now().Add(d/5), concurrency, do)

	cpu0, own0 := cpuSeconds(), ownCPUSeconds()
	start := time.Now()
	lat, errs, firstErr := hammer(ctx, start.Add(d), concurrency, do)
	elapsed := time.Since(start)
	cpu, own := cpuSeconds()-cpu0, ownCPUSeconds()-own0

	r := result{Concurrency: concurrency, Seconds: elapsed.Seconds(), Requests: len(lat) + errs, Errors: errs}
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	r.RPS = float64(len(lat)) / elapsed.Seconds()
	if len(lat) > 0 {
		slices.Sort(lat)
		r.P50ms = float64(lat[len(lat)/2].Microseconds()) / 1000
		r.P99ms = float64(lat[len(lat)*99/100].Microseconds()) / 1000
		r.CPUPer1k = cpu / float64(r.Requests) * 1000
		r.ClientCPUPer1k = own / float64(r.Requests) * 1000
	}
	return r
}

// ownCPUSeconds is this process's user and system CPU time so far.
func ownCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// hammer runs do in a loop on concurrency goroutines until the end time
// (calls under way then finish) and returns the latencies of the successful
// calls, the number of errors and the first.
func hammer(ctx context.Context, end time.Time, concurrency int, do op) ([]time.Duration, int, error) {
	var mu sync.Mutex
	var all []time.Duration
	var errs int
	var firstErr error
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			n := 0
			var first error
			for ctx.Err() == nil && time.Now().Before(end) {
				t0 := time.Now()
				err := do(ctx, w)
				if ctx.Err() != nil || errors.Is(err, errRunOut) {
					break // interrupted, or done
				}
				if err != nil {
					n++
					if first == nil {
						first = err
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += n
			if firstErr == nil {
				firstErr = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return all, errs, firstErr
}
