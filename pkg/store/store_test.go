package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// base has a sub-millisecond part, so a backend that drops microseconds fails.
var base = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

func mustCreateUser(t *testing.T, s *store.Store, id, username string) *domain.User {
	t.Helper()
	u := &domain.User{ID: id, Username: username, PasswordHash: "$argon2id$x", CreateTime: base}
	if err := s.CreateUser(context.Background(), u, 0); err != nil {
		t.Fatalf("CreateUser(%s): %v", username, err)
	}
	return u
}

func mustCreateToken(t *testing.T, s *store.Store, tok *domain.Token) {
	t.Helper()
	if err := s.CreateToken(context.Background(), tok, 0); err != nil {
		t.Fatalf("CreateToken(%s): %v", tok.ID, err)
	}
}

func TestUsers(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		alice := mustCreateUser(t, s, "aliceAAAAAAAAAAA", "alice")
		bot := &domain.User{ID: "botBBBBBBBBBBBBB", Username: "alice-bot", OwnerID: alice.ID, CreateTime: base}
		if err := s.CreateUser(ctx, bot, 0); err != nil {
			t.Fatal(err)
		}

		got, err := s.UserByUsername(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(alice, got); diff != "" {
			t.Errorf("UserByUsername (-want +got):\n%s", diff)
		}
		got, err = s.UserByID(ctx, bot.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(bot, got); diff != "" {
			t.Errorf("UserByID (-want +got):\n%s", diff)
		}

		dup := &domain.User{ID: "otherOOOOOOOOOOO", Username: "alice", CreateTime: base}
		if err := s.CreateUser(ctx, dup, 0); domain.KindOf(err) != domain.KindConflict {
			t.Errorf("duplicate username: got %v, want a conflict", err)
		}
		// IDs are case-sensitive: a MySQL table with a case-insensitive
		// collation would find alice here.
		if _, err := s.UserByID(ctx, "ALICEAAAAAAAAAAA"); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("UserByID with other case: got %v, want not found", err)
		}
		if _, err := s.UserByUsername(ctx, "nobody"); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("UserByUsername(nobody): got %v, want not found", err)
		}

		if err := s.SetPasswordHash(ctx, alice.ID, "$argon2id$new"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.UserByID(ctx, alice.ID); got.PasswordHash != "$argon2id$new" {
			t.Errorf("password hash = %q after SetPasswordHash", got.PasswordHash)
		}
		if err := s.SetPasswordHash(ctx, "nobodyNNNNNNNNNN", "x"); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("SetPasswordHash(unknown): got %v, want not found", err)
		}

		// Deleting a user deletes its machine users and all their tokens.
		mustCreateToken(t, s, &domain.Token{ID: "tokAAAAAAAAAAAAA", UserID: alice.ID, SecretHash: make([]byte, 32), CreateTime: base})
		mustCreateToken(t, s, &domain.Token{ID: "tokBBBBBBBBBBBBB", UserID: bot.ID, SecretHash: make([]byte, 32), CreateTime: base})
		ids, err := s.DeleteUser(ctx, alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{alice.ID, bot.ID}, ids); diff != "" {
			t.Errorf("DeleteUser's deleted IDs (-want +got):\n%s", diff)
		}
		for _, id := range []string{alice.ID, bot.ID} {
			if _, err := s.UserByID(ctx, id); domain.KindOf(err) != domain.KindNotFound {
				t.Errorf("user %s after DeleteUser: %v, want not found", id, err)
			}
		}
		for _, id := range []string{"tokAAAAAAAAAAAAA", "tokBBBBBBBBBBBBB"} {
			if _, err := s.TokenByID(ctx, id); domain.KindOf(err) != domain.KindNotFound {
				t.Errorf("token %s after DeleteUser: %v, want not found", id, err)
			}
		}
		if _, err := s.DeleteUser(ctx, alice.ID); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("DeleteUser twice: %v, want not found", err)
		}
	})
}

func TestTokenRoundTripAndDelete(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		u := mustCreateUser(t, s, "userUUUUUUUUUUUU", "u")
		want := &domain.Token{
			ID: "tok0000000000001", UserID: u.ID, SecretHash: []byte("0123456789abcdef0123456789abcdef"),
			Note: "ci deploy ' \" ; -- ü", CreateTime: base, ExpireTime: base.Add(time.Hour + time.Microsecond),
			Scopes: domain.NewScopes("orders:read", "tokens:read"),
		}
		mustCreateToken(t, s, want)
		got, err := s.TokenByID(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("TokenByID (-want +got):\n%s", diff)
		}
		if err := s.CreateToken(ctx, want, 0); domain.KindOf(err) != domain.KindConflict {
			t.Errorf("duplicate token ID: %v, want conflict", err)
		}

		first := base.Add(time.Minute)
		if err := s.DeleteToken(ctx, want.ID, first); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteToken(ctx, want.ID, first.Add(time.Hour)); err != nil {
			t.Fatalf("deleting again: %v", err)
		}
		got, _ = s.TokenByID(ctx, want.ID)
		if !got.DeleteTime.Equal(first) {
			t.Errorf("delete time = %v, want the first one, %v", got.DeleteTime, first)
		}
		if err := s.DeleteToken(ctx, "nopeNNNNNNNNNNNN", first); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("DeleteToken(unknown): %v, want not found", err)
		}
	})
}

func TestListTokensKeyset(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		u := mustCreateUser(t, s, "userUUUUUUUUUUUU", "u")
		other := mustCreateUser(t, s, "otherOOOOOOOOOOO", "other")
		now := base.Add(time.Hour)

		// Times differ below the millisecond and some tie, so the order needs
		// microseconds and the id tie-break.
		var want []string
		for i, offset := range []time.Duration{0, time.Microsecond, time.Microsecond, 500 * time.Microsecond, time.Second, 90 * time.Second} {
			id := "tok" + string(rune('A'+i)) + "000000000000"
			mustCreateToken(t, s, &domain.Token{ID: id, UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: base.Add(offset)})
			want = append(want, id)
		}
		mustCreateToken(t, s, &domain.Token{ID: "expired000000000", UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: base, ExpireTime: now})
		mustCreateToken(t, s, &domain.Token{ID: "deleted000000000", UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: base, DeleteTime: base})
		mustCreateToken(t, s, &domain.Token{ID: "others0000000000", UserID: other.ID, SecretHash: make([]byte, 32), CreateTime: base})

		for _, reverse := range []bool{false, true} {
			var got []string
			var after *domain.Cursor
			for page := 0; ; page++ {
				toks, err := s.ListTokens(ctx, domain.TokenQuery{UserID: u.ID, Now: now, Limit: 4, Reverse: reverse, After: after})
				if err != nil {
					t.Fatal(err)
				}
				for _, tok := range toks {
					got = append(got, tok.ID)
				}
				if len(toks) < 4 {
					break
				}
				last := toks[len(toks)-1]
				after = &domain.Cursor{CreateTime: last.CreateTime, ID: last.ID}
			}
			w := append([]string(nil), want...)
			if reverse {
				for i, j := 0, len(w)-1; i < j; i, j = i+1, j-1 {
					w[i], w[j] = w[j], w[i]
				}
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("reverse=%v (-want +got):\n%s", reverse, diff)
			}
		}
	})
}

func TestSecretAndKeys(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		first, err := s.Secret(ctx, "page_token", []byte("first"))
		if err != nil {
			t.Fatal(err)
		}
		second, err := s.Secret(ctx, "page_token", []byte("second"))
		if err != nil {
			t.Fatal(err)
		}
		if string(first) != "first" || string(second) != "first" {
			t.Errorf("Secret = %q then %q, want the first value both times", first, second)
		}

		k := &domain.SigningKey{ID: "kidKKKKKKKKKKKKK", Algorithm: "ES256", PrivateDER: []byte{1, 2, 3}, CreateTime: base}
		if added, err := s.AddSigningKey(ctx, k, time.Time{}); err != nil || !added {
			t.Fatalf("the first key: %v, %v", added, err)
		}
		// Not while a key created since the given time exists.
		later := &domain.SigningKey{ID: "kidLLLLLLLLLLLLL", Algorithm: "ES256", PrivateDER: []byte{4}, CreateTime: base.Add(time.Hour), ActivateTime: base.Add(2 * time.Hour)}
		if added, err := s.AddSigningKey(ctx, later, base.Add(-time.Minute)); err != nil || added {
			t.Errorf("a key with one created since: added %v, %v", added, err)
		}
		if added, err := s.AddSigningKey(ctx, later, base.Add(time.Minute)); err != nil || !added {
			t.Errorf("a key with none created since: added %v, %v", added, err)
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]*domain.SigningKey{k, later}, keys); diff != "" {
			t.Errorf("SigningKeys (-want +got):\n%s", diff)
		}
		if err := s.DeleteSigningKeys(ctx, []string{k.ID, "nosuchkid0000000"}); err != nil {
			t.Fatal(err)
		}
		if keys, _ := s.SigningKeys(ctx); len(keys) != 1 || keys[0].ID != later.ID {
			t.Errorf("after deleting the first: %v", keys)
		}
		// Migrating an up-to-date schema is a no-op.
		if err := s.Migrate(ctx); err != nil {
			t.Errorf("second Migrate: %v", err)
		}
	})
}

// Every call is bounded by QueryTimeout, whatever its caller's context: a
// database that hangs fails calls with UNAVAILABLE, it does not hold them.
func TestEveryCallHasADeadline(t *testing.T) {
	cfg, proxy := storetest.MustMySQLViaProxy(t)
	cfg.QueryTimeout = 300 * time.Millisecond
	s := storetest.MustOpenConfig(t, cfg)
	ctx := context.Background()
	u := mustCreateUser(t, s, "uuuuuuuuuuuuuuuu", "alice")
	tok := &domain.Token{ID: "tttttttttttttttt", UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: base}
	mustCreateToken(t, s, tok)

	proxy.Stall()
	defer proxy.Restore()
	calls := map[string]func() error{
		"Ping": func() error { return s.Ping(ctx) },
		"CreateUser": func() error {
			return s.CreateUser(ctx, &domain.User{ID: "vvvvvvvvvvvvvvvv", Username: "bob", OwnerID: u.ID, CreateTime: base}, 5)
		},
		"UserByID":       func() error { _, err := s.UserByID(ctx, u.ID); return err },
		"UserByUsername": func() error { _, err := s.UserByUsername(ctx, "alice"); return err },
		"ListUsers":      func() error { _, err := s.ListUsers(ctx, domain.UserQuery{Limit: 10}); return err },
		"SetPassword":    func() error { return s.SetPasswordHash(ctx, u.ID, "$argon2id$y") },
		"DeleteUser":     func() error { _, err := s.DeleteUser(ctx, u.ID); return err },
		"CreateToken": func() error {
			return s.CreateToken(ctx, &domain.Token{ID: "ssssssssssssssss", UserID: u.ID, CreateTime: base}, 5)
		},
		"TokenByID": func() error { _, err := s.TokenByID(ctx, tok.ID); return err },
		"ListTokens": func() error {
			_, err := s.ListTokens(ctx, domain.TokenQuery{UserID: u.ID, Limit: 10, Now: base})
			return err
		},
		"DeleteToken": func() error { return s.DeleteToken(ctx, tok.ID, base) },
		"SigningKeys": func() error { _, err := s.SigningKeys(ctx); return err },
		"AddSigningKey": func() error {
			_, err := s.AddSigningKey(ctx, &domain.SigningKey{ID: "kkkkkkkkkkkkkkkk", Algorithm: "ES256", PrivateDER: []byte{1}, CreateTime: base}, base)
			return err
		},
		"DeleteSigningKeys": func() error { return s.DeleteSigningKeys(ctx, []string{"kkkkkkkkkkkkkkkk"}) },
		"Secret":            func() error { _, err := s.Secret(ctx, "x", []byte("y")); return err },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		took := time.Since(start)
		if domain.KindOf(err) != domain.KindUnavailable {
			t.Errorf("%s with the database hanging: %v, want an UNAVAILABLE error", name, err)
		}
		if took > 2*time.Second {
			t.Errorf("%s took %v with a 300ms query timeout", name, took)
		}
	}
}

func TestWriteLastUsed(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.MustOpen(t, driver)
		testWriteLastUsed(t, s)
	})
}

// The statements for a server without JSON_TABLE (found out at the first
// flush) do the same.
func TestWriteLastUsedWithoutJSONTable(t *testing.T) {
	s := storetest.MustOpen(t, store.DriverMySQL)
	store.WithoutJSONTable(s)
	testWriteLastUsed(t, s)
}

func testWriteLastUsed(t *testing.T, s *store.Store) {
	{
		ctx := context.Background()
		u := mustCreateUser(t, s, "uuuuuuuuuuuuuuuu", "alice")
		var ids []string
		for i := range 3 {
			tok := &domain.Token{ID: fmt.Sprintf("t%015d", i), UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: base}
			mustCreateToken(t, s, tok)
			ids = append(ids, tok.ID)
		}
		t1, t2 := base.Add(time.Minute), base.Add(2*time.Minute)
		if err := s.WriteLastUsed(ctx, map[string]time.Time{ids[0]: t2, ids[1]: t1, "nosuchtokenxxxxx": t1}); err != nil {
			t.Fatal(err)
		}
		// Never back in time.
		if err := s.WriteLastUsed(ctx, map[string]time.Time{ids[0]: t1}); err != nil {
			t.Fatal(err)
		}
		for i, want := range []time.Time{t2, t1, {}} {
			got, err := s.TokenByID(ctx, ids[i])
			if err != nil {
				t.Fatal(err)
			}
			if !got.LastUsedTime.Equal(want) {
				t.Errorf("token %d: last used %v, want %v", i, got.LastUsedTime, want)
			}
		}
		// Creating never sets it.
		tok := &domain.Token{ID: "tttttttttttttttt", UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: base, LastUsedTime: t2}
		mustCreateToken(t, s, tok)
		if got, _ := s.TokenByID(ctx, tok.ID); !got.LastUsedTime.IsZero() {
			t.Errorf("a new token has last used time %v", got.LastUsedTime)
		}
	}
}

func TestListUsers(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.MustOpen(t, driver)
		ctx := context.Background()
		// Two humans with two machine users each, created a microsecond apart.
		var all []string
		for i, owner := range []string{"ann", "ben"} {
			o := &domain.User{ID: fmt.Sprintf("%s%013d", owner, 0), Username: owner, CreateTime: base.Add(time.Duration(3*i) * time.Microsecond)}
			if err := s.CreateUser(ctx, o, 0); err != nil {
				t.Fatal(err)
			}
			all = append(all, o.ID)
			for j := 1; j <= 2; j++ {
				bot := &domain.User{ID: fmt.Sprintf("%s%013d", owner, j), Username: fmt.Sprintf("%s-bot%d", owner, j), OwnerID: o.ID,
					CreateTime: base.Add(time.Duration(3*i+j) * time.Microsecond)}
				if err := s.CreateUser(ctx, bot, 0); err != nil {
					t.Fatal(err)
				}
				all = append(all, bot.ID)
			}
		}
		ids := func(q domain.UserQuery) []string {
			t.Helper()
			users, err := s.ListUsers(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, u := range users {
				out = append(out, u.ID)
			}
			return out
		}
		if diff := cmp.Diff(all, ids(domain.UserQuery{Limit: 10})); diff != "" {
			t.Errorf("every user (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(all[3:], ids(domain.UserQuery{VisibleTo: all[3], Limit: 10})); diff != "" {
			t.Errorf("visible to ben (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(all[1:2], ids(domain.UserQuery{VisibleTo: all[1], Limit: 10})); diff != "" {
			t.Errorf("visible to a machine user (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(all[4:5], ids(domain.UserQuery{Username: "ben-bot1", Limit: 10})); diff != "" {
			t.Errorf("by username (-want +got):\n%s", diff)
		}
		if got := ids(domain.UserQuery{VisibleTo: all[0], Username: "ben-bot1", Limit: 10}); len(got) != 0 {
			t.Errorf("another's machine user by username: %v, want none", got)
		}
		after := &domain.Cursor{CreateTime: base.Add(2 * time.Microsecond), ID: all[2]}
		if diff := cmp.Diff(all[3:5], ids(domain.UserQuery{Limit: 2, After: after})); diff != "" {
			t.Errorf("a page after the cursor (-want +got):\n%s", diff)
		}
	})
}

// Quotas hold under concurrent creates: the count and the insert are one
// transaction holding the owner's row.
func TestQuotasHoldUnderConcurrency(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.MustOpen(t, driver)
		ctx := context.Background()
		u := mustCreateUser(t, s, "uuuuuuuuuuuuuuuu", "alice")
		const limit, tries = 5, 20
		// Expired and deleted tokens are not live: they do not count.
		mustCreateToken(t, s, &domain.Token{ID: "expired000000000", UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: base, ExpireTime: base.Add(time.Second)})
		mustCreateToken(t, s, &domain.Token{ID: "deleted000000000", UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: base, DeleteTime: base})
		later := base.Add(time.Minute)
		results := make(chan error, 2*tries)
		for i := range tries {
			go func() {
				results <- s.CreateToken(ctx, &domain.Token{ID: fmt.Sprintf("t%015d", i), UserID: u.ID, SecretHash: make([]byte, 32), CreateTime: later}, limit)
			}()
			go func() {
				results <- s.CreateUser(ctx, &domain.User{ID: fmt.Sprintf("b%015d", i), Username: fmt.Sprintf("bot%d", i), OwnerID: u.ID, CreateTime: later}, limit)
			}()
		}
		created, refused := 0, 0
		for range 2 * tries {
			switch err := <-results; {
			case err == nil:
				created++
			case err == domain.ErrLimitReached:
				refused++
			default:
				t.Errorf("create: %v", err)
			}
		}
		if created != 2*limit || refused != 2*(tries-limit) {
			t.Errorf("%d created and %d refused, want %d and %d", created, refused, 2*limit, 2*(tries-limit))
		}
		if err := s.CreateToken(ctx, &domain.Token{ID: "nouser0000000000", UserID: "nosuchuser000000", SecretHash: make([]byte, 32), CreateTime: later}, limit); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("a token for an unknown user: %v, want not found", err)
		}
	})
}

// Deleting a user while machine users and tokens are being created for it
// leaves none behind: creates hold the owner's row, as the delete does.
func TestDeleteUserLeavesNoOrphans(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.MustOpen(t, driver)
		ctx := context.Background()
		for round := range 10 {
			owner := mustCreateUser(t, s, fmt.Sprintf("owner%011d", round), fmt.Sprintf("owner%d", round))
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					id := fmt.Sprintf("r%03db%012d", round, i)
					s.CreateUser(ctx, &domain.User{ID: id, Username: "bot-" + id, OwnerID: owner.ID, CreateTime: base}, 0)
					s.CreateToken(ctx, &domain.Token{ID: fmt.Sprintf("r%03dt%012d", round, i), UserID: owner.ID, SecretHash: make([]byte, 32), CreateTime: base}, 0)
					s.CreateToken(ctx, &domain.Token{ID: fmt.Sprintf("r%03ds%012d", round, i), UserID: id, SecretHash: make([]byte, 32), CreateTime: base}, 0)
				})
			}
			wg.Go(func() {
				if _, err := s.DeleteUser(ctx, owner.ID); err != nil {
					t.Errorf("DeleteUser: %v", err)
				}
			})
			wg.Wait()
		}
		orphans, err := s.ListUsers(ctx, domain.UserQuery{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(orphans) != 0 {
			t.Errorf("%d users outlived their owner's deletion: %v", len(orphans), orphans[0])
		}
		for round := range 10 {
			for i := range 8 {
				for _, kind := range "ts" {
					id := fmt.Sprintf("r%03d%c%012d", round, kind, i)
					if _, err := s.TokenByID(ctx, id); domain.KindOf(err) != domain.KindNotFound {
						t.Errorf("token %s outlived its user's deletion: %v", id, err)
					}
				}
			}
		}
	})
}

// Replicas adding a signing key at the same moment (a rotation falling due
// on all of them) add one between them.
func TestConcurrentKeyAddsAddOne(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := storetest.MustOpen(t, driver)
		ctx := context.Background()
		var wg sync.WaitGroup
		var mu sync.Mutex
		added := 0
		for i := range 8 {
			wg.Go(func() {
				k := &domain.SigningKey{ID: fmt.Sprintf("kid%013d", i), Algorithm: "ES256", PrivateDER: []byte{1}, CreateTime: base}
				ok, err := s.AddSigningKey(ctx, k, base.Add(-time.Hour))
				if err != nil {
					t.Errorf("AddSigningKey: %v", err)
				}
				if ok {
					mu.Lock()
					added++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if keys, _ := s.SigningKeys(ctx); added != 1 || len(keys) != 1 {
			t.Errorf("%d adds reported, %d keys stored; want 1 and 1", added, len(keys))
		}
	})
}

// RewriteSealed rewrites every signing key and server secret, or, if the
// rewrite fails for one, none.
func TestRewriteSealed(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		for i, id := range []string{"kidAAAAAAAAAAAAA", "kidBBBBBBBBBBBBB"} {
			k := &domain.SigningKey{ID: id, Algorithm: "ES256", PrivateDER: []byte(id), CreateTime: base.Add(time.Duration(i) * time.Hour)}
			if added, err := s.AddSigningKey(ctx, k, k.CreateTime.Add(-time.Second)); err != nil || !added {
				t.Fatalf("adding %s: %v, %v", id, added, err)
			}
		}
		if _, err := s.Secret(ctx, "page_token", []byte("page_token")); err != nil {
			t.Fatal(err)
		}
		state := func() []string {
			keys, err := s.SigningKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			secret, err := s.Secret(ctx, "page_token", []byte("not stored: one is"))
			if err != nil {
				t.Fatal(err)
			}
			return []string{string(keys[0].PrivateDER), string(keys[1].PrivateDER), string(secret)}
		}

		// Failing on the last value written leaves the others as they were.
		boom := errors.New("boom")
		_, err := s.RewriteSealed(ctx, func(v domain.SealedValue) ([]byte, error) {
			if v.Kind == domain.SealedSecret {
				return nil, boom
			}
			return []byte("x" + string(v.Value)), nil
		})
		if !errors.Is(err, boom) {
			t.Errorf("a failing rewrite: %v, want its error", err)
		}
		if got := state(); !slices.Equal(got, []string{"kidAAAAAAAAAAAAA", "kidBBBBBBBBBBBBB", "page_token"}) {
			t.Errorf("after a failed rewrite: %q, want nothing changed", got)
		}

		n, err := s.RewriteSealed(ctx, func(v domain.SealedValue) ([]byte, error) {
			if string(v.Value) != v.Name {
				return nil, fmt.Errorf("%s %s came with %q", v.Kind, v.Name, v.Value)
			}
			return []byte("sealed:" + v.Name), nil
		})
		if got := state(); err != nil || n != 3 || !slices.Equal(got, []string{"sealed:kidAAAAAAAAAAAAA", "sealed:kidBBBBBBBBBBBBB", "sealed:page_token"}) {
			t.Errorf("a rewrite: %d values, %v, state %q", n, err, got)
		}
	})
}
