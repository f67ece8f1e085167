package app_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// BenchmarkFullCache fills every per-token memory a fleet fills (the token
// cache, the access tokens kept for reuse, the verified access tokens; the
// last-used times pending) with one entry per token of a fleet as large as
// the cache, and reports the live heap each token costs (B/cached-token);
// then it exchanges and checks bearers over the full cache, tokens chosen
// at random, and reports the collector's share of the CPU (gc-cpu-%) under
// the server's default collector settings (GOGC 400, a memory limit).
// docs/performance.md's memory rule rests on these figures.
func BenchmarkFullCache(b *testing.B) {
	fleet := benchFleet()
	cfg := apptest.Config(b, "sqlite")
	cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.Cache.TTL, cfg.Cache.MaxAge, cfg.Cache.Size = 5*time.Second, time.Hour, fleet
	cfg.Feed.Interval = time.Second // as serve: entries live MaxAge
	cfg.Minter.Lifetime, cfg.Minter.Reuse = time.Hour, time.Hour
	cfg.Tokens.MaxTokensPerUser = 0
	cfg.LastUsedFlushInterval = time.Hour // pending all along
	a := apptest.MustStart(b, cfg)
	ctx := context.Background()
	first := apptest.MustUserToken(b, a, users.CreateInput{Username: "fleet", Password: "a password long enough"})
	caller, err := a.Tokens().AuthenticateBearerToChange(ctx, first)
	if err != nil {
		b.Fatal(err)
	}
	plain := make([]string, fleet)
	for i := range plain {
		if plain[i], _, err = a.Tokens().Create(ctx, caller, tokens.CreateInput{}); err != nil {
			b.Fatal(err)
		}
	}
	use := func(i int) {
		x, err := a.Tokens().Exchange(ctx, tokens.ExchangeInput{APIToken: plain[i]})
		if err != nil {
			b.Fatal(err)
		}
		// A copy, as a request's header would bring it: the cache must not
		// keep what a request brought.
		if _, err := a.Tokens().AuthenticateBearer(ctx, strings.Clone(x.AccessToken.JWT)); err != nil {
			b.Fatal(err)
		}
	}
	before := liveHeap()
	for i := range plain {
		use(i)
	}
	perToken := float64(liveHeap()-before) / float64(fleet)
	if f := os.Getenv("HEAPPROFILE"); f != "" {
		out, _ := os.Create(f)
		pprof.Lookup("heap").WriteTo(out, 0)
		out.Close()
	}

	// The server's collector settings (serve's --gc-percent and
	// --memory-limit-mib defaults), as serve sets them.
	defer debug.SetGCPercent(debug.SetGCPercent(app.DefaultGCPercent))
	limit := int64(app.DefaultMemoryLimitMiB)
	if n, err := strconv.ParseInt(os.Getenv("TOKENSERVICE_BENCH_MEMORY_LIMIT_MIB"), 10, 64); err == nil {
		limit = n // to compare limits
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(limit << 20))
	gcBefore, cpuBefore := cpuSeconds()
	for b.Loop() {
		use(rand.IntN(fleet))
	}
	gcAfter, cpuAfter := cpuSeconds()
	b.ReportMetric(perToken, "B/cached-token")
	if cpuAfter > cpuBefore {
		b.ReportMetric(100*(gcAfter-gcBefore)/(cpuAfter-cpuBefore), "gc-cpu-%")
	}
}

// liveHeap collects, then returns the heap's live bytes.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// cpuSeconds returns the process's CPU time so far spent collecting, and
// in all (the runtime's estimates).
func cpuSeconds() (gc, total float64) {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64(), s[1].Value.Float64()
}

// benchFleet is BenchmarkFullCache's fleet: TOKENSERVICE_BENCH_FLEET, else
// 10,000 tokens.
func benchFleet() int {
	if n, err := strconv.Atoi(os.Getenv("TOKENSERVICE_BENCH_FLEET")); err == nil && n > 0 {
		return n
	}
	return 10000
}
