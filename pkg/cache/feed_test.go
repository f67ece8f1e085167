package cache_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/cache"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// feed is a change feed over the store that a test can break, and that
// tells the test of each poll.
type feed struct {
	domain.Changes
	broken atomic.Bool
	skip   atomic.Int64 // changes to pretend were pruned
	polls  chan error
	// gate is held over each read of the feed: a test holding it knows no
	// poll reads the feed meanwhile.
	gate sync.Mutex
}

func (f *feed) ChangesAfter(ctx context.Context, seq int64, limit int) ([]domain.Change, error) {
	f.gate.Lock()
	defer f.gate.Unlock()
	if f.broken.Load() {
		return nil, errors.New("the database went away")
	}
	return f.Changes.ChangesAfter(ctx, seq+f.skip.Swap(0), limit)
}

func (f *feed) FeedPolled(_ int, err error) {
	select {
	case f.polls <- err:
	default:
	}
}

// follow starts c following f until the test ends, and waits for its first
// poll.
func follow(t *testing.T, c *cache.Cache, f *feed) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	f.polls = make(chan error)
	wg.Go(func() {
		c.Follow(ctx, f, cache.FeedConfig{Interval: 5 * time.Millisecond}, f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	nextPoll(t, f)
}

// nextPoll waits for a poll that begins after the call, and returns its
// error.
func nextPoll(t *testing.T, f *feed) error {
	t.Helper()
	<-f.polls // one that may have begun before
	select {
	case err := <-f.polls:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no poll of the change feed")
		return nil
	}
}

// hits counts the reads the cache answered.
type hits struct{ n atomic.Int64 }

func (h *hits) CacheRead(_ cache.Kind, hit bool) {
	if hit {
		h.n.Add(1)
	}
}

// Following the feed, a deletion elsewhere (another replica: here,
// straight in the store) is seen at the next poll, though the clock never
// moves: the feed, not the TTL, dropped it.
func TestFeedDropsADeletionElsewhere(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st, tok := setup(t, driver)
		clk := &clock{t: base}
		c := cache.New(st, cache.Config{TTL: 5 * time.Second, MaxAge: time.Hour, Size: 100}, clk.now, nil)
		f := &feed{Changes: st}
		follow(t, c, f)
		if deleted(t, c, tok.ID) {
			t.Fatal("deleted before any delete")
		}
		// No poll between the deletion and the read (the feed polls every
		// 5 ms: one landed there once in CI and dropped the entry first).
		cached := func() bool {
			f.gate.Lock()
			defer f.gate.Unlock() // also when a Fatal ends the test in here
			if err := st.DeleteToken(context.Background(), tok.ID, base); err != nil {
				t.Fatal(err)
			}
			return !deleted(t, c, tok.ID)
		}()
		if !cached {
			t.Fatal("the cached entry was not used")
		}
		nextPoll(t, f)
		if !deleted(t, c, tok.ID) {
			t.Error("a deletion elsewhere is unseen after a poll of the change feed")
		}
	})
}

// So a deleted user, its machine users, their tokens; and only theirs.
func TestFeedDropsADeletedUsersTokens(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st, tok := setup(t, driver)
		ctx := context.Background()
		bob := &domain.User{ID: "bobbobbobbobbobb", Username: "bob", CreateTime: base}
		if err := st.CreateUser(ctx, bob, 0); err != nil {
			t.Fatal(err)
		}
		bobTok := &domain.Token{ID: "bobTTTTTTTTTTTTT", UserID: bob.ID, SecretHash: make([]byte, 32), CreateTime: base}
		if err := st.CreateToken(ctx, bobTok, 0); err != nil {
			t.Fatal(err)
		}
		h := &hits{}
		c := cache.New(st, cache.Config{TTL: 5 * time.Second, MaxAge: time.Hour, Size: 100}, (&clock{t: base}).now, h)
		f := &feed{Changes: st}
		follow(t, c, f)
		deleted(t, c, tok.ID)
		deleted(t, c, bobTok.ID)
		if _, err := st.DeleteUser(ctx, tok.UserID); err != nil {
			t.Fatal(err)
		}
		nextPoll(t, f)
		if _, err := c.TokenByID(ctx, tok.ID); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("a deleted user's token after a poll: %v, want not found", err)
		}
		before := h.n.Load()
		deleted(t, c, bobTok.ID)
		if h.n.Load() != before+1 {
			t.Error("bob's token was dropped by alice's deletion")
		}
	})
}

// While the feed is read, entries live past the TTL (up to MaxAge): a
// fleet's tokens used less often than the TTL stay cached.
func TestEntriesOutliveTheTTLWhileTheFeedIsRead(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st, tok := setup(t, driver)
		clk := &clock{t: base}
		h := &hits{}
		c := cache.New(st, cache.Config{TTL: 5 * time.Second, MaxAge: time.Minute, Size: 100}, clk.now, h)
		f := &feed{Changes: st}
		follow(t, c, f)
		deleted(t, c, tok.ID)
		for range 10 { // 50 s, polled all along
			clk.add(5 * time.Second)
			nextPoll(t, f)
		}
		deleted(t, c, tok.ID)
		if h.n.Load() != 1 {
			t.Fatalf("an entry 50 s old, the feed read all along: %d hits, want 1", h.n.Load())
		}
		clk.add(10 * time.Second)
		nextPoll(t, f)
		deleted(t, c, tok.ID)
		if h.n.Load() != 1 {
			t.Error("an entry past MaxAge was used")
		}
	})
}

// When the feed cannot be read, entries go stale the TTL after the last
// poll that succeeded: a deletion elsewhere is seen within the TTL, as
// without the feed. When it can again, the poll applies what it missed.
func TestAFeedThatFailsFallsBackToTheTTL(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st, tok := setup(t, driver)
		clk := &clock{t: base}
		c := cache.New(st, cache.Config{TTL: 5 * time.Second, MaxAge: time.Hour, Size: 100}, clk.now, nil)
		f := &feed{Changes: st}
		follow(t, c, f)
		deleted(t, c, tok.ID)
		clk.add(time.Minute)
		nextPoll(t, f)
		f.broken.Store(true)
		if err := nextPoll(t, f); err == nil {
			t.Fatal("the broken feed was read")
		}
		if err := st.DeleteToken(context.Background(), tok.ID, base); err != nil {
			t.Fatal(err)
		}
		clk.add(4 * time.Second)
		if deleted(t, c, tok.ID) {
			t.Fatal("the entry was dropped before the TTL after the last poll")
		}
		clk.add(time.Second)
		if !deleted(t, c, tok.ID) {
			t.Error("with the feed failing, a deletion elsewhere is unseen the TTL after the last poll")
		}
	})
}

// A poll that finds changes missing (pruned while the replica was away)
// empties the cache: it cannot tell what they touched.
func TestAGapInTheFeedEmptiesTheCache(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st, tok := setup(t, driver)
		ctx := context.Background()
		other := &domain.Token{ID: "oooooooooooooooo", UserID: tok.UserID, SecretHash: make([]byte, 32), CreateTime: base}
		if err := st.CreateToken(ctx, other, 0); err != nil {
			t.Fatal(err)
		}
		c := cache.New(st, cache.Config{TTL: 5 * time.Second, MaxAge: time.Hour, Size: 100}, (&clock{t: base}).now, nil)
		f := &feed{Changes: st}
		follow(t, c, f)
		deleted(t, c, tok.ID)
		// Deleted, and its change pruned while this replica could not
		// read the feed.
		f.broken.Store(true)
		nextPoll(t, f)
		if err := st.DeleteToken(ctx, tok.ID, base); err != nil {
			t.Fatal(err)
		}
		if err := st.DeleteToken(ctx, other.ID, base); err != nil {
			t.Fatal(err)
		}
		f.skip.Store(1)
		f.broken.Store(false)
		if err := nextPoll(t, f); err != nil {
			t.Fatal(err)
		}
		if !deleted(t, c, tok.ID) {
			t.Error("a token whose change was missed is still cached after a gap")
		}
	})
}
