// Package throttle limits how often each key (a username, a client address)
// may attempt something, in bounded memory.
package throttle

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Limiter allows each key n attempts a period, in bursts of up to n,
// remembering at most maxKeys keys (the least recently used are forgotten
// first, which only ever lets a forgotten key start afresh).
type Limiter struct {
	mu     sync.Mutex
	n      int
	period time.Duration
	keys   *lru.Cache[string, *rate.Limiter]
	now    func() time.Time
}

// New returns a Limiter of perMinute attempts a minute; perMinute <= 0
// means no limit.
func New(perMinute, maxKeys int, now func() time.Time) *Limiter {
	return NewPer(perMinute, time.Minute, maxKeys, now)
}

// NewPer returns a Limiter of n attempts a period; n <= 0 means no limit.
func NewPer(n int, period time.Duration, maxKeys int, now func() time.Time) *Limiter {
	keys, _ := lru.New[string, *rate.Limiter](max(maxKeys, 1))
	return &Limiter{n: n, period: period, keys: keys, now: now}
}

// Allow takes one attempt for key. If none is left it takes nothing and
// returns false with how long until the next one is.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if l.n <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, found := l.keys.Get(key)
	if !found {
		lim = rate.NewLimiter(rate.Limit(float64(l.n)/l.period.Seconds()), l.n)
		l.keys.Add(key, lim)
	}
	now := l.now()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
