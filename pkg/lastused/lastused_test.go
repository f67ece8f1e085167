package lastused_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/lastused"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// countingStore counts the batches written and can be made to fail.
type countingStore struct {
	*store.Store
	mu      sync.Mutex
	batches int
	fail    bool
}

func (c *countingStore) WriteLastUsed(ctx context.Context, uses map[string]time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return errors.New("database unavailable")
	}
	c.batches++
	return c.Store.WriteLastUsed(ctx, uses)
}

func TestUsesAreCoalescedAndFlushedInOneBatch(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := storetest.MustOpen(t, driver)
		ctx := context.Background()
		if err := st.CreateUser(ctx, &domain.User{ID: "uuuuuuuuuuuuuuuu", Username: "alice", CreateTime: base}, 0); err != nil {
			t.Fatal(err)
		}
		ids := make([]string, 5)
		for i := range ids {
			ids[i] = fmt.Sprintf("t%015d", i)
			if err := st.CreateToken(ctx, &domain.Token{ID: ids[i], UserID: "uuuuuuuuuuuuuuuu", SecretHash: make([]byte, 32), CreateTime: base}, 0); err != nil {
				t.Fatal(err)
			}
		}
		cs := &countingStore{Store: st}
		r := lastused.New(cs, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)

		// 1,000 uses of five tokens from 8 goroutines; token i's latest use
		// is base + i minutes (+ a sub-second part, kept to the second).
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for n := range 125 {
					i := (g + n) % len(ids)
					r.Record(ids[i], base.Add(time.Duration(i)*time.Minute-time.Duration(n)*time.Second+999*time.Millisecond))
				}
			})
		}
		wg.Wait()
		cs.fail = true
		if err := r.Flush(ctx); err == nil {
			t.Fatal("the failing flush reported success")
		}
		cs.fail = false
		r.Record(ids[0], base.Add(-time.Hour)) // older than what is pending: ignored
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if cs.batches != 1 {
			t.Errorf("%d batches written for 1,000 uses, want 1", cs.batches)
		}
		for i, id := range ids {
			got, err := st.TokenByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if want := base.Add(time.Duration(i) * time.Minute); !got.LastUsedTime.Equal(want) {
				t.Errorf("token %d: last used %v, want %v (kept through the failed flush)", i, got.LastUsedTime, want)
			}
		}
		if err := r.Flush(ctx); err != nil || cs.batches != 1 {
			t.Errorf("an empty flush wrote a batch (%d) or failed (%v)", cs.batches, err)
		}
	})
}

// batchStore keeps the batches it is given.
type batchStore struct {
	mu      sync.Mutex
	batches []map[string]time.Time
}

func (b *batchStore) WriteLastUsed(_ context.Context, uses map[string]time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batches = append(b.batches, uses)
	return nil
}

// Past MaxPending tokens, the uses of new tokens are dropped until the
// next flush; those of pending tokens still count; the flush holds each
// token's latest second.
func TestPendingIsBounded(t *testing.T) {
	bs := &batchStore{}
	r := lastused.New(bs, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	id := func(i int) string { return fmt.Sprintf("t%015d", i) }
	for i := range lastused.MaxPending + 100 {
		r.Record(id(i), base.Add(time.Duration(i%7)*time.Second+time.Millisecond))
	}
	r.Record(id(0), base.Add(time.Hour))
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(bs.batches) != 1 || len(bs.batches[0]) != lastused.MaxPending {
		t.Fatalf("flushed %d batches, the first of %d tokens; want 1 of %d", len(bs.batches), len(bs.batches[0]), lastused.MaxPending)
	}
	for i := range lastused.MaxPending {
		want := base.Add(time.Duration(i%7) * time.Second)
		if i == 0 {
			want = base.Add(time.Hour)
		}
		if got := bs.batches[0][id(i)]; !got.Equal(want) || got.Location() != time.UTC {
			t.Fatalf("token %d: %v, want %v", i, got, want)
		}
	}
	// The flush made room again.
	r.Record(id(lastused.MaxPending+1), base)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(bs.batches) != 2 || len(bs.batches[1]) != 1 {
		t.Errorf("after a flush, a new token's use was not kept")
	}
}

// BenchmarkRecord measures recording a use from every core, over 40,000
// distinct tokens (issue 22 part 3's scale): "pending", uses of tokens
// already pending (most uses: a token is used again within the flush
// interval); "flushed", the same with a flush (to a store that discards)
// every 40,000 uses, so that every token is new again to the recorder
// after each flush. Each flush's cost is counted among the uses.
func BenchmarkRecord(b *testing.B) {
	const n = 40_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%015d", i)
	}
	for _, flushEvery := range []int64{0, n} {
		name := "pending"
		if flushEvery > 0 {
			name = "flushed"
		}
		b.Run(name, func(b *testing.B) {
			r := lastused.New(discardStore{}, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			for i, id := range ids {
				r.Record(id, base.Add(time.Duration(i)))
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := next.Add(1)
					r.Record(ids[(k*7919)%n], base.Add(time.Duration(k)*time.Millisecond))
					if flushEvery > 0 && k%flushEvery == 0 {
						_ = r.Flush(context.Background())
					}
				}
			})
		})
	}
}

type discardStore struct{}

func (discardStore) WriteLastUsed(context.Context, map[string]time.Time) error { return nil }

// collected keeps every batch written, in memory.
type collected struct {
	mu   sync.Mutex
	uses map[string]time.Time
}

func (c *collected) WriteLastUsed(_ context.Context, uses map[string]time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, at := range uses {
		c.uses[id] = at
	}
	return nil
}

// Uses recorded while flushes run (every request records one, whatever a
// flush is doing) are neither lost nor raced on: run with -race, as make
// test does, a flush that read a shard outside its lock fails here.
func TestRecordWhileFlushing(t *testing.T) {
	w := &collected{uses: map[string]time.Time{}}
	r := lastused.New(w, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	var recorders sync.WaitGroup
	done := make(chan struct{})
	for g := range 4 {
		recorders.Go(func() {
			for i := range 2000 {
				r.Record(fmt.Sprintf("tok-%d-%d", g, i%50), base)
			}
		})
	}
	flusher := make(chan struct{})
	go func() {
		defer close(flusher)
		for {
			select {
			case <-done:
				return
			default:
				if err := r.Flush(context.Background()); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	recorders.Wait()
	close(done)
	<-flusher
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(w.uses) != 200 {
		t.Errorf("%d tokens' uses written, want 200", len(w.uses))
	}
}
