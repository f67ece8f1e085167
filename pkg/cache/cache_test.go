package cache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/cache"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func setup(t *testing.T, driver string) (*store.Store, *domain.Token) {
	t.Helper()
	st := storetest.MustOpen(t, driver)
	ctx := context.Background()
	u := &domain.User{ID: "uuuuuuuuuuuuuuuu", Username: "alice", CreateTime: base}
	if err := st.CreateUser(ctx, u, 0); err != nil {
		t.Fatal(err)
	}
	tok := &domain.Token{ID: "tttttttttttttttt", UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: base}
	if err := st.CreateToken(ctx, tok, 0); err != nil {
		t.Fatal(err)
	}
	return st, tok
}

func deleted(t *testing.T, c *cache.Cache, id string) bool {
	t.Helper()
	got, err := c.TokenByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return !got.DeleteTime.IsZero()
}

// A deletion made elsewhere (another replica: here, straight in the store)
// is seen once the entry's TTL has passed, and not before: the cache is used.
func TestDeletionElsewhereIsSeenWithinTheTTL(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st, tok := setup(t, driver)
		clk := &clock{t: base}
		c := cache.New(st, cache.Config{TTL: 5 * time.Second, Size: 100}, clk.now, nil)
		if deleted(t, c, tok.ID) {
			t.Fatal("deleted before any delete")
		}
		if err := st.DeleteToken(context.Background(), tok.ID, base); err != nil {
			t.Fatal(err)
		}
		clk.add(4 * time.Second)
		if deleted(t, c, tok.ID) {
			t.Error("the cached entry was not used within its TTL")
		}
		clk.add(time.Second)
		if !deleted(t, c, tok.ID) {
			t.Error("a deletion elsewhere is still unseen when the TTL has passed")
		}
	})
}

// A deletion through the cache takes effect at once.
func TestDeletionHereIsSeenAtOnce(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st, tok := setup(t, driver)
		c := cache.New(st, cache.Config{TTL: time.Hour, Size: 100}, (&clock{t: base}).now, nil)
		deleted(t, c, tok.ID) // cache it
		if err := c.DeleteToken(context.Background(), tok.ID, base); err != nil {
			t.Fatal(err)
		}
		if !deleted(t, c, tok.ID) {
			t.Error("a token deleted through this cache still reads as live")
		}
	})
}

// racingStore runs a delete through the cache after reading a token and
// before answering: the read's answer is then stale.
type racingStore struct {
	*store.Store
	cache *cache.Cache
	once  sync.Once
}

func (r *racingStore) TokenByID(ctx context.Context, id string) (*domain.Token, error) {
	tok, err := r.Store.TokenByID(ctx, id)
	r.once.Do(func() {
		if err := r.cache.DeleteToken(ctx, id, base); err != nil {
			panic(err)
		}
	})
	return tok, err
}

// A read that began before a delete cannot put its stale answer in the cache.
func TestAReadRacingADeleteDoesNotResurrectTheToken(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st, tok := setup(t, driver)
		r := &racingStore{Store: st}
		r.cache = cache.New(r, cache.Config{TTL: time.Hour, Size: 100}, (&clock{t: base}).now, nil)
		if deleted(t, r.cache, tok.ID) {
			t.Fatal("the racing read should answer with the token as it was before the delete")
		}
		if !deleted(t, r.cache, tok.ID) {
			t.Error("the stale answer of a read that raced the delete was cached")
		}
	})
}

// Deleting a user through the cache drops that user's, and its machine
// users', users and tokens at once, and only theirs: the others stay cached
// (deleting a machine user must not empty everyone's cache).
func TestDeletingAUserDropsOnlyItsEntries(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st, alicesTok := setup(t, driver)
		ctx := context.Background()
		bot := &domain.User{ID: "botbotbotbotbotb", Username: "alice-bot", OwnerID: "uuuuuuuuuuuuuuuu", CreateTime: base}
		bob := &domain.User{ID: "bobbobbobbobbobb", Username: "bob", CreateTime: base}
		for _, u := range []*domain.User{bot, bob} {
			if err := st.CreateUser(ctx, u, 0); err != nil {
				t.Fatal(err)
			}
		}
		botTok := &domain.Token{ID: "botTTTTTTTTTTTTT", UserID: bot.ID, SecretHash: make([]byte, 32), CreateTime: base}
		bobTok := &domain.Token{ID: "bobTTTTTTTTTTTTT", UserID: bob.ID, SecretHash: make([]byte, 32), CreateTime: base}
		for _, tok := range []*domain.Token{botTok, bobTok} {
			if err := st.CreateToken(ctx, tok, 0); err != nil {
				t.Fatal(err)
			}
		}
		clk := &clock{t: base}
		c := cache.New(st, cache.Config{TTL: time.Hour, Size: 100}, clk.now, nil)
		for _, id := range []string{alicesTok.ID, botTok.ID, bobTok.ID} {
			deleted(t, c, id) // cached
		}
		if _, err := c.UserByID(ctx, bob.ID); err != nil {
			t.Fatal(err)
		}
		// bob's token deleted elsewhere: a cached entry keeps answering until its TTL.
		if err := st.DeleteToken(ctx, bobTok.ID, base); err != nil {
			t.Fatal(err)
		}

		ids, err := c.DeleteUser(ctx, "uuuuuuuuuuuuuuuu")
		if err != nil || len(ids) != 2 {
			t.Fatalf("DeleteUser = %v, %v", ids, err)
		}
		for _, id := range []string{alicesTok.ID, botTok.ID} {
			if _, err := c.TokenByID(ctx, id); domain.KindOf(err) != domain.KindNotFound {
				t.Errorf("token %s of a deleted user through the cache: %v, want not found at once", id, err)
			}
		}
		if deleted(t, c, bobTok.ID) {
			t.Error("bob's token was dropped from the cache by alice's deletion")
		}
	})
}
