// Package cache keeps recently read tokens, users and federated
// credentials in memory in front of the store: token exchange and bearer
// checks then cost no database round trip.
//
// Revocation stays honest. A credential ended through this process stops
// working here at once (the change replaces the cached entry, and a read
// that raced with it cannot put its stale answer back). One ended through
// another replica is recorded in the database's change feed in the same
// transaction; Follow reads the feed every poll interval and drops what
// each change touches, so it is seen here within the interval and a query.
// An entry is trusted for TTL past the later of its read and the last
// poll that succeeded: while the feed is read, entries live up to MaxAge
// (bounded by Size); when the database cannot be polled, each goes stale
// TTL after that poll, the bound the cache had before the feed.
package cache

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// Config sizes the cache.
type Config struct {
	// TTL is how long an entry is trusted past the later of its read and
	// the last successful poll of the change feed: without the feed, the
	// bound on how late another replica's revocation is seen here.
	TTL time.Duration
	// MaxAge is how long an entry is kept at most, however recent the
	// feed's last poll (less than TTL: TTL).
	MaxAge time.Duration
	// Size bounds the number of tokens, of users and of federated
	// credentials held.
	Size int
}

// Store is what the cache sits in front of.
type Store interface {
	domain.Users
	domain.Tokens
	domain.FederatedCredentials
}

// Observer is told whether each read was answered from the cache, for
// metrics.
type Observer interface {
	CacheRead(kind Kind, hit bool)
}

// Kind is what a cache holds.
type Kind string

// The kinds.
const (
	Tokens               Kind = "tokens"
	Users                Kind = "users"
	FederatedCredentials Kind = "federated_credentials"
)

type noObserver struct{}

func (noObserver) CacheRead(Kind, bool) {}

// Cache implements domain.Users and domain.Tokens over a Store. Methods it
// does not cache go straight to the store.
type Cache struct {
	Store
	ttl, maxAge time.Duration
	now         func() time.Time
	obs         Observer
	// polled is when the last successful poll of the change feed began
	// (Unix nanoseconds; 0: none): every change committed before it has
	// been applied.
	polled atomic.Int64

	tokens *lru.Cache[string, entry[domain.Token]]
	users  *lru.Cache[string, entry[domain.User]]
	// credentials holds federated credentials by ID; matches, the
	// credentials of an issuer and subject (matchKey), never none.
	credentials *lru.Cache[string, entry[domain.FederatedCredential]]
	matches     *lru.Cache[string, entry[[]domain.FederatedCredential]]

	// mu orders puts against deletes: a read that began before a delete
	// (seen by a changed generation) does not put its answer.
	mu  sync.Mutex
	gen uint64
}

type entry[T any] struct {
	value T
	read  time.Time
}

// fresh reports whether an entry read at read may answer at now.
func (c *Cache) fresh(read, now time.Time) bool {
	if now.Sub(read) >= c.maxAge {
		return false
	}
	since := read
	if polled := c.polled.Load(); polled > read.UnixNano() {
		since = time.Unix(0, polled)
	}
	return now.Sub(since) < c.ttl
}

var (
	_ domain.Users  = (*Cache)(nil)
	_ domain.Tokens = (*Cache)(nil)
)

// New returns a cache over st. now is the clock entries expire by; obs
// (nil: none) is told of each read.
func New(st Store, cfg Config, now func() time.Time, obs Observer) *Cache {
	size := max(cfg.Size, 1)
	tokens, _ := lru.New[string, entry[domain.Token]](size) // size > 0: cannot fail
	users, _ := lru.New[string, entry[domain.User]](size)
	credentials, _ := lru.New[string, entry[domain.FederatedCredential]](size)
	matches, _ := lru.New[string, entry[[]domain.FederatedCredential]](size)
	if obs == nil {
		obs = noObserver{}
	}
	return &Cache{Store: st, ttl: cfg.TTL, maxAge: max(cfg.MaxAge, cfg.TTL), now: now, obs: obs, tokens: tokens, users: users,
		credentials: credentials, matches: matches}
}

// TokenByID implements domain.Tokens.
func (c *Cache) TokenByID(ctx context.Context, id string) (*domain.Token, error) {
	return get(c, Tokens, c.tokens, ctx, id, c.readToken, func(t *domain.Token) string { return t.ID })
}

// readToken reads a token from the store, its user and scope set interned:
// a fleet's tokens share them (issue 22's bytes per cached token).
func (c *Cache) readToken(ctx context.Context, id string) (*domain.Token, error) {
	t, err := c.Store.TokenByID(ctx, id)
	if err == nil {
		t.UserID, t.Scopes = domain.Intern(t.UserID), t.Scopes.Interned()
	}
	return t, err
}

// UserByID implements domain.Users.
func (c *Cache) UserByID(ctx context.Context, id string) (*domain.User, error) {
	return get(c, Users, c.users, ctx, id, c.Store.UserByID, func(u *domain.User) string { return u.ID })
}

// get answers from the cache, or reads through and caches the answer unless
// a delete ran meanwhile. Callers get a copy: cached values are never shared.
// The entry is keyed by the value's own ID (idOf, unless nil: id is then
// the cache's own) when it is id, else by a copy: id may be part of a
// request that the cache would otherwise keep alive.
func get[T any](c *Cache, kind Kind, l *lru.Cache[string, entry[T]], ctx context.Context, id string, read func(context.Context, string) (*T, error), idOf func(*T) string) (*T, error) {
	now := c.now()
	if e, ok := l.Get(id); ok && c.fresh(e.read, now) {
		c.obs.CacheRead(kind, true)
		v := e.value
		return &v, nil
	}
	c.obs.CacheRead(kind, false)
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	v, err := read(ctx, id)
	if err != nil {
		return nil, err // not-found is not cached: ids are cheap to make up
	}
	key := id
	if idOf != nil {
		if key = idOf(v); key != id {
			key = strings.Clone(id)
		}
	}
	c.mu.Lock()
	if c.gen == gen {
		l.Add(key, entry[T]{value: *v, read: now})
	}
	c.mu.Unlock()
	return v, nil
}

// refreshAfter is how old a cached token must be before FreshTokenByID
// reads it again: wrong secrets sent for a known (public) token ID cost the
// database at most one read a second each.
const refreshAfter = time.Second

// FreshTokenByID implements domain.Tokens: it reads the store and caches
// the answer, replacing what was cached, unless that was read less than
// refreshAfter ago.
func (c *Cache) FreshTokenByID(ctx context.Context, id string) (*domain.Token, error) {
	if e, ok := c.tokens.Peek(id); ok && c.now().Sub(e.read) < min(refreshAfter, c.ttl) {
		c.obs.CacheRead(Tokens, true)
		v := e.value
		return &v, nil
	}
	c.tokens.Remove(id)
	return c.TokenByID(ctx, id)
}

// CurrentTokenByID implements domain.Tokens: it reads the store every
// time and caches the answer in place of what was cached.
func (c *Cache) CurrentTokenByID(ctx context.Context, id string) (*domain.Token, error) {
	c.tokens.Remove(id)
	return c.TokenByID(ctx, id)
}

// RotateSecret implements domain.Tokens: the old secret stops working here
// at once (unless given a grace period).
func (c *Cache) RotateSecret(ctx context.Context, id string, fromGeneration int, hash []byte, previousUntil, now time.Time, events ...*domain.AuditEvent) error {
	err := c.Store.RotateSecret(ctx, id, fromGeneration, hash, previousUntil, now, events...)
	c.forget(func() { c.tokens.Remove(id) })
	return err
}

// EndGrace implements domain.Tokens: the replaced secret stops working
// here at once.
func (c *Cache) EndGrace(ctx context.Context, id string, generation int, events ...*domain.AuditEvent) error {
	err := c.Store.EndGrace(ctx, id, generation, events...)
	c.forget(func() { c.tokens.Remove(id) })
	return err
}

// DeleteToken implements domain.Tokens: the token stops working here at once.
func (c *Cache) DeleteToken(ctx context.Context, id string, at time.Time, events ...*domain.AuditEvent) error {
	err := c.Store.DeleteToken(ctx, id, at, events...)
	c.forget(func() { c.tokens.Remove(id) })
	return err
}

// DeleteUser implements domain.Users: the users deleted and their tokens
// stop working here at once. Only theirs are dropped, so deleting a machine
// user cannot be used to empty the cache of everyone's tokens; if the store
// failed (and so may or may not have committed), everything is.
func (c *Cache) DeleteUser(ctx context.Context, id string, events ...*domain.AuditEvent) ([]string, error) {
	ids, err := c.Store.DeleteUser(ctx, id, events...)
	c.forget(func() {
		if err != nil {
			c.purge()
			return
		}
		c.dropUsers(ids)
	})
	return ids, err
}

// ForgetUser drops what the cache holds of a user changed elsewhere than
// through it (its admin flag set at a sign-in), as the change feed would.
func (c *Cache) ForgetUser(id string) {
	c.forget(func() { c.dropUsers([]string{id}) })
}

// forget drops entries after a delete (whether or not it reported success:
// it may have committed) and fences off reads that began before it.
func (c *Cache) forget(drop func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	drop()
}

// dropUsers drops the users ids and their tokens and federated
// credentials; c.mu must be held.
func (c *Cache) dropUsers(ids []string) {
	deleted := make(map[string]bool, len(ids))
	for _, id := range ids {
		deleted[id] = true
		c.users.Remove(id)
	}
	for _, key := range c.tokens.Keys() {
		if e, ok := c.tokens.Peek(key); ok && deleted[e.value.UserID] {
			c.tokens.Remove(key)
		}
	}
	c.dropCredentials(func(fc *domain.FederatedCredential) bool { return deleted[fc.UserID] })
}

// purge drops everything; c.mu must be held.
func (c *Cache) purge() {
	c.users.Purge()
	c.tokens.Purge()
	c.credentials.Purge()
	c.matches.Purge()
}
