package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

func key(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// People the provider vouches for are linked by issuer and subject, once;
// a username or an identity taken is a conflict that makes nobody; a
// user's deletion takes its link and its sessions; a new password ends
// its sessions; an admin flag set twice is no error.
func TestSignInsAndSessions(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		alice, _ := mustCreateAliceAndBot(t, s)
		id := domain.ExternalIdentity{Issuer: "https://idp.example", Subject: "s-ann"}
		ann := &domain.User{ID: "ann0000000000000", Username: "ann@example.com", CreateTime: base}
		if err := s.CreateExternalUser(ctx, ann, id); err != nil {
			t.Fatal(err)
		}
		if got, err := s.UserByExternalIdentity(ctx, id); err != nil || got.ID != ann.ID {
			t.Fatalf("the linked user: %v, %v", got, err)
		}
		if _, err := s.UserByExternalIdentity(ctx, domain.ExternalIdentity{Issuer: id.Issuer, Subject: "other"}); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("another subject: %v, want not found", err)
		}
		for name, u := range map[string]*domain.User{
			"a username taken":   {ID: "dup0000000000000", Username: alice.Username, CreateTime: base},
			"an identity linked": {ID: "dup1000000000000", Username: "new@example.com", CreateTime: base},
		} {
			link := domain.ExternalIdentity{Issuer: id.Issuer, Subject: "s-" + u.ID}
			if name == "an identity linked" {
				link = id
			}
			if err := s.CreateExternalUser(ctx, u, link); domain.KindOf(err) != domain.KindConflict {
				t.Errorf("%s: %v, want a conflict", name, err)
			}
			if _, err := s.UserByID(ctx, u.ID); domain.KindOf(err) != domain.KindNotFound {
				t.Errorf("%s: the user was made anyway", name)
			}
		}
		for range 2 {
			if err := s.SetAdmin(ctx, ann.ID, true); err != nil {
				t.Errorf("setting the admin flag (again): %v", err)
			}
		}
		if err := s.SetAdmin(ctx, "nobody0000000000", true); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("the admin flag of nobody: %v", err)
		}

		later := base.Add(time.Hour)
		for _, ses := range []*domain.Session{
			{ID: key("a1"), UserID: alice.ID, CreateTime: base, ExpireTime: later, LastSeenTime: base},
			{ID: key("n1"), UserID: ann.ID, CreateTime: base, ExpireTime: later, LastSeenTime: base},
			{ID: key("old"), UserID: ann.ID, CreateTime: base, ExpireTime: base.Add(time.Minute), LastSeenTime: base},
		} {
			if err := s.CreateSession(ctx, ses); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.TouchSession(ctx, key("a1"), base.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.SessionByID(ctx, key("a1")); err != nil || !got.LastSeenTime.Equal(base.Add(time.Minute)) || got.UserID != alice.ID {
			t.Errorf("a session: %+v, %v", got, err)
		}
		if err := s.DeleteSessionsBefore(ctx, base.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		gone := func(name, k string) {
			t.Helper()
			if _, err := s.SessionByID(ctx, key(k)); domain.KindOf(err) != domain.KindNotFound {
				t.Errorf("%s: session %s is still there (%v)", name, k, err)
			}
		}
		gone("expired", "old")
		if err := s.SetPasswordHash(ctx, alice.ID, "$argon2id$new"); err != nil {
			t.Fatal(err)
		}
		gone("a new password", "a1")
		if _, err := s.DeleteUser(ctx, ann.ID); err != nil {
			t.Fatal(err)
		}
		gone("the user's deletion", "n1")
		if _, err := s.UserByExternalIdentity(ctx, id); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("the deleted user's link: %v", err)
		}
		// The identity is free again: a later sign-in makes a new user.
		if err := s.CreateExternalUser(ctx, &domain.User{ID: "ann1000000000000", Username: "ann@example.com", CreateTime: base}, id); err != nil {
			t.Errorf("a sign-in after the deletion: %v", err)
		}
		// A link a deletion left (its clean-up runs after its transaction)
		// gives way to the next sign-in.
		stale := domain.ExternalIdentity{Issuer: id.Issuer, Subject: "s-stale"}
		if _, err := s.DB().Exec("INSERT INTO user_identities (match_key, user_id, issuer, subject, create_time) VALUES (?, ?, ?, ?, ?)",
			stale.Key(), "gone000000000000", stale.Issuer, stale.Subject, base); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateExternalUser(ctx, &domain.User{ID: "sta1000000000000", Username: "stale@example.com", CreateTime: base}, stale); err != nil {
			t.Errorf("a sign-in over a stale link: %v", err)
		}
		if got, err := s.UserByExternalIdentity(ctx, stale); err != nil || got.ID != "sta1000000000000" {
			t.Errorf("the replaced link: %v, %v", got, err)
		}
	})
}

// A sign-in under way, and a CLI grant, are taken once, by one of many
// callers at once; a sign-in too old is not taken; only a pending grant
// is decided.
func TestSignInsAndGrantsAreTakenOnce(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		if err := s.StartSignIn(ctx, key("b1"), "/console/x", base, base.Add(-10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.StartSignIn(ctx, key("b2"), "/console/", base, base.Add(-10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TakeSignIn(ctx, key("b2"), base.Add(time.Second)); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("a sign-in started too long ago: %v, want not found", err)
		}
		g := &domain.CLIGrant{ID: key("code"), UserID: "u1", Status: domain.CLIGrantApproved, Challenge: "c", RedirectURI: "http://127.0.0.1:1/cb",
			Host: "h", CreateTime: base, ExpireTime: base.Add(time.Minute), PollTime: base}
		if err := s.CreateCLIGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
		var took, takes atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if back, err := s.TakeSignIn(ctx, key("b1"), base.Add(-time.Minute)); err == nil && back == "/console/x" {
					took.Add(1)
				}
				if ok, err := s.TakeCLIGrant(ctx, key("code")); err == nil && ok {
					takes.Add(1)
				}
			})
		}
		wg.Wait()
		if took.Load() != 1 || takes.Load() != 1 {
			t.Errorf("8 callers at once took the sign-in %d times and the grant %d times, want once each", took.Load(), takes.Load())
		}

		dev := &domain.CLIGrant{ID: key("device"), UserCode: key("ABCD-EFGH"), Status: domain.CLIGrantPending, Host: "h",
			CreateTime: base, ExpireTime: base.Add(10 * time.Minute)}
		if err := s.CreateCLIGrant(ctx, dev); err != nil {
			t.Fatal(err)
		}
		if got, err := s.CLIGrantByUserCode(ctx, key("ABCD-EFGH")); err != nil || !bytes.Equal(got.ID, dev.ID) {
			t.Fatalf("the grant of a user code: %v, %v", got, err)
		}
		if before, err := s.PollCLIGrant(ctx, dev.ID, base.Add(5*time.Second)); err != nil || !before.IsZero() && !before.Equal(time.Time{}.UTC()) {
			t.Errorf("the first poll: %v, %v", before, err)
		}
		if before, err := s.PollCLIGrant(ctx, dev.ID, base.Add(9*time.Second)); err != nil || !before.Equal(base.Add(5*time.Second)) {
			t.Errorf("the second poll saw %v (%v), want the first's time", before, err)
		}
		if err := s.DecideCLIGrant(ctx, dev.ID, "u1", domain.CLIGrantApproved); err != nil {
			t.Fatal(err)
		}
		if err := s.DecideCLIGrant(ctx, dev.ID, "u2", domain.CLIGrantDenied); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("deciding a decided grant: %v, want not found", err)
		}
		if got, _ := s.CLIGrant(ctx, dev.ID); got == nil || got.UserID != "u1" || got.Status != domain.CLIGrantApproved {
			t.Errorf("the decided grant: %+v", got)
		}
		// A new grant forgets the expired ones.
		if err := s.CreateCLIGrant(ctx, &domain.CLIGrant{ID: key("late"), Status: domain.CLIGrantPending, CreateTime: base.Add(time.Hour),
			ExpireTime: base.Add(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CLIGrant(ctx, dev.ID); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("an expired grant outlived a new one: %v", err)
		}
	})
}
