package throttle

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(6, 100, func() time.Time { return now }) // one every 10s, bursts of 6
	for i := range 6 {
		if ok, _ := l.Allow("alice"); !ok {
			t.Fatalf("attempt %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow("alice")
	if ok || wait != 10*time.Second {
		t.Fatalf("7th attempt: %v, retry after %v; want refused, 10s", ok, wait)
	}
	if ok, _ := l.Allow("bob"); !ok {
		t.Error("another key shares alice's budget")
	}
	// Refused attempts take nothing: after the wait exactly one is allowed.
	for range 3 {
		l.Allow("alice")
	}
	now = now.Add(10 * time.Second)
	if ok, _ := l.Allow("alice"); !ok {
		t.Error("refused after waiting the retry-after")
	}
	if ok, _ := l.Allow("alice"); ok {
		t.Error("two attempts allowed after one interval")
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	l := New(1, 10, time.Now)
	for i := range 1000 {
		l.Allow(fmt.Sprint("user", i))
	}
	if n := l.keys.Len(); n != 10 {
		t.Errorf("remembers %d keys, want at most 10", n)
	}
}

func TestNoLimit(t *testing.T) {
	l := New(0, 10, time.Now)
	for range 1000 {
		if ok, _ := l.Allow("k"); !ok {
			t.Fatal("perMinute 0 refused an attempt")
		}
	}
}
