package main

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// peakRSS returns this process's peak resident set size (VmHWM) in MiB.
func peakRSS(t *testing.T) float64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// resetPeakRSS starts a new peak: the server runs in this test's process.
func resetPeakRSS(t *testing.T) {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak RSS: %v", err)
	}
}

// 200 concurrent password logins: argon2id (19 MiB each) runs at most
// --max-concurrent-password-hashes at once, so memory stays bounded, and token
// exchange, which needs no password hash, keeps answering meanwhile.
func TestPasswordFloodIsBoundedAndExchangeKeepsAnswering(t *testing.T) {
	const (
		logins    = 200
		maxHashes = 2
		// Unbounded, 200 hashes would hold 200 × 19 MiB ≈ 3.7 GiB at once.
		// The bound leaves room for the race detector, which doubles memory.
		growthLimitMiB = 1024
	)
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver),
			"TOKENSERVICE_LOGIN_ATTEMPTS_PER_USER", "0", "TOKENSERVICE_LOGIN_ATTEMPTS_PER_USER_AND_ADDRESS", "0", "TOKENSERVICE_LOGIN_ATTEMPTS_PER_ADDRESS", "0",
			"TOKENSERVICE_MAX_CONCURRENT_PASSWORD_HASHES", strconv.Itoa(maxHashes),
			// The last logins wait for 199 hashes before theirs (a minute and
			// more under the race detector): this test is about memory and
			// starvation, not the write timeout, which would cut them off.
			"TOKENSERVICE_HTTP_WRITE_TIMEOUT", "5m")
		s.mustUser(t, "alice", "human")
		callers := s.callers(t)
		tok := rpc{t: t, c: callers[1]}.login("alice")

		resetPeakRSS(t)
		before := peakRSS(t)
		var flood sync.WaitGroup
		var loginsDone, loginsOK atomic.Int64
		start := time.Now()
		for i := range logins {
			flood.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				err := callers[i%2].call(ctx, pb.TokenService_CreateToken_FullMethodName, "", &pb.CreateTokenRequest{Username: "alice", Password: password}, &pb.CreateTokenResponse{})
				if err == nil {
					loginsOK.Add(1)
				} else {
					t.Errorf("login during the flood: %s", describe(err))
				}
				loginsDone.Add(1)
			})
		}

		// Exchange while the logins queue for the hasher.
		var exchanges int
		var slowest time.Duration
		for loginsDone.Load() < logins/2 {
			took, err := timedCall(callers[exchanges%2], pb.TokenService_GetAccessToken_FullMethodName, "", &pb.GetAccessTokenRequest{Token: tok}, &pb.GetAccessTokenResponse{})
			if err != nil {
				t.Fatalf("exchange during the password flood: %s", describe(err))
			}
			exchanges++
			slowest = max(slowest, took)
		}
		flood.Wait()
		peak := peakRSS(t)
		t.Logf("%d concurrent logins (%d ok) in %v, at most %d hashes at once; meanwhile %d exchanges, slowest %v; peak RSS %.0f MiB (%.0f MiB before)",
			logins, loginsOK.Load(), time.Since(start).Round(time.Millisecond), maxHashes, exchanges, slowest.Round(time.Millisecond), peak, before)
		if exchanges < 20 {
			t.Errorf("only %d exchanges answered while half the logins ran", exchanges)
		}
		if slowest > 2*time.Second {
			t.Errorf("an exchange took %v during the flood: starved", slowest)
		}
		if peak-before > growthLimitMiB {
			t.Errorf("peak RSS grew by %.0f MiB during the flood, over %d MiB", peak-before, growthLimitMiB)
		}
	})
}
