package lastused_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
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
