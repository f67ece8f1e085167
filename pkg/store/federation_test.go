package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

func fedCredential(id, userID, issuer, subject string) *domain.FederatedCredential {
	return &domain.FederatedCredential{ID: id, UserID: userID, Issuer: issuer, Subject: subject,
		Audiences: []string{"https://tokens.example.com", "other"}, Condition: `claims.ref == "refs/heads/main"`,
		Scopes: domain.NewScopes("deploy", "tokens:read"), MaxLifetime: 10 * time.Minute, Description: "ci", CreateTime: base}
}

// mustCreateAliceAndBot creates alice and her machine user alice-bot.
func mustCreateAliceAndBot(t *testing.T, s *store.Store) (alice, bot *domain.User) {
	t.Helper()
	alice = mustCreateUser(t, s, "aliceAAAAAAAAAAA", "alice")
	bot = &domain.User{ID: "botBBBBBBBBBBBBB", Username: "alice-bot", OwnerID: alice.ID, CreateTime: base}
	if err := s.CreateUser(context.Background(), bot, 0); err != nil {
		t.Fatal(err)
	}
	return alice, bot
}

func TestFederatedCredentials(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		alice, bot := mustCreateAliceAndBot(t, s)
		gh := "https://token.actions.githubusercontent.com"
		long := strings.Repeat("s", 512) // the longest subject
		a := fedCredential("fc_AAAAAAAAAAAAAAAA", bot.ID, gh, "repo:acme/app:ref:refs/heads/main")
		b := fedCredential("fc_BBBBBBBBBBBBBBBB", bot.ID, gh, long)
		b.Condition, b.MaxLifetime, b.CreateTime = "", 0, base.Add(time.Second)
		// The same subject at another issuer: its own match.
		c := fedCredential("fc_CCCCCCCCCCCCCCCC", bot.ID, "https://gitlab.com", "repo:acme/app:ref:refs/heads/main")
		c.CreateTime = base.Add(2 * time.Second)
		for _, fc := range []*domain.FederatedCredential{a, b, c} {
			if err := s.CreateFederatedCredential(ctx, fc, 3); err != nil {
				t.Fatalf("CreateFederatedCredential(%s): %v", fc.ID, err)
			}
		}
		if err := s.CreateFederatedCredential(ctx, fedCredential("fc_DDDDDDDDDDDDDDDD", bot.ID, gh, "x"), 3); err != domain.ErrLimitReached {
			t.Errorf("a fourth past a quota of 3: %v, want ErrLimitReached", err)
		}
		if err := s.CreateFederatedCredential(ctx, fedCredential("fc_EEEEEEEEEEEEEEEE", "nobodyNNNNNNNNNN", gh, "x"), 0); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("for an unknown user: %v, want not found", err)
		}

		got, err := s.FederatedCredentialByID(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(a, got); diff != "" {
			t.Errorf("FederatedCredentialByID (-want +got):\n%s", diff)
		}
		list, err := s.ListFederatedCredentials(ctx, bot.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]*domain.FederatedCredential{a, b, c}, list); diff != "" {
			t.Errorf("ListFederatedCredentials (-want +got):\n%s", diff)
		}
		for _, tc := range []struct {
			issuer, subject string
			want            []*domain.FederatedCredential
		}{
			{gh, a.Subject, []*domain.FederatedCredential{a}},
			{gh, long, []*domain.FederatedCredential{b}},
			{"https://gitlab.com", a.Subject, []*domain.FederatedCredential{c}},
			{gh, "repo:acme/app:ref:refs/heads/mai", nil},
			{gh + "/", a.Subject, nil},
		} {
			got, err := s.FederatedCredentialsFor(ctx, tc.issuer, tc.subject)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(x, y []*domain.FederatedCredential) bool {
				return len(x) == len(y) && (len(x) == 0 || cmp.Equal(x, y))
			})); diff != "" {
				t.Errorf("FederatedCredentialsFor(%q, %.40q) (-want +got):\n%s", tc.issuer, tc.subject, diff)
			}
		}

		ev := domain.NewAuditEvent(ctx, base, domain.ActionFederatedCredentialDelete, domain.OutcomeSuccess, nil)
		if err := s.DeleteFederatedCredential(ctx, a.ID, ev); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteFederatedCredential(ctx, a.ID, ev); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("deleting it again: %v, want not found", err)
		}
		if _, err := s.FederatedCredentialByID(ctx, a.ID); domain.KindOf(err) != domain.KindNotFound {
			t.Errorf("FederatedCredentialByID after delete: %v, want not found", err)
		}
		if n := countAuditEvents(t, s, domain.ActionFederatedCredentialDelete); n != 1 {
			t.Errorf("%d federated_credential.delete events, want 1 (none for the delete that found nothing)", n)
		}

		// Deleting the owner takes the machine user's credentials, each with its event.
		del := domain.NewAuditEvent(ctx, base, domain.ActionUserDelete, domain.OutcomeSuccess, nil)
		del.Subject = domain.SubjectUser(alice)
		if _, err := s.DeleteUser(ctx, alice.ID, del); err != nil {
			t.Fatal(err)
		}
		if list, _ := s.ListFederatedCredentials(ctx, bot.ID); len(list) != 0 {
			t.Errorf("after the owner's deletion %d credentials left", len(list))
		}
		if n := countAuditEvents(t, s, domain.ActionFederatedCredentialDelete); n != 3 {
			t.Errorf("%d federated_credential.delete events after the owner's deletion, want 3", n)
		}
	})
}

// TestFederatedCredentialQuotaHoldsUnderConcurrency: creates racing past
// a quota make exactly the quota.
func TestFederatedCredentialQuotaHoldsUnderConcurrency(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		alice := mustCreateUser(t, s, "aliceAAAAAAAAAAA", "alice")
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := "fc_" + strings.Repeat(string(rune('a'+i)), 16)
				s.CreateFederatedCredential(ctx, fedCredential(id, alice.ID, "https://i", id), 5)
			}()
		}
		wg.Wait()
		if list, _ := s.ListFederatedCredentials(ctx, alice.ID); len(list) != 5 {
			t.Errorf("%d credentials after 12 racing creates with a quota of 5", len(list))
		}
	})
}

func countAuditEvents(t *testing.T, s *store.Store, action domain.AuditAction) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow("SELECT COUNT(*) FROM audit_events WHERE action = ?", string(action)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The longest audiences the API allows (8 of 255 characters), of the
// characters JSON escapes, and many long scopes fit their columns.
func TestFederatedCredentialsLongestValuesFit(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		s := storetest.MustOpen(t, driver)
		_, bot := mustCreateAliceAndBot(t, s)
		fc := fedCredential("fc_AAAAAAAAAAAAAAAA", bot.ID, "https://issuer.example", "sub")
		fc.Audiences = nil
		for _, c := range []string{`"`, `<`, `\`, `&`, `>`, "é", `'`, "\u2028"} {
			fc.Audiences = append(fc.Audiences, strings.Repeat(c, 255))
		}
		var scopes []string
		for i := range 64 {
			scopes = append(scopes, fmt.Sprintf("%03d", i)+strings.Repeat("s", 125))
		}
		fc.Scopes = domain.NewScopes(scopes...)
		if err := s.CreateFederatedCredential(ctx, fc, 0); err != nil {
			t.Fatalf("CreateFederatedCredential: %v", err)
		}
		got, err := s.FederatedCredentialByID(ctx, fc.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(fc, got); diff != "" {
			t.Errorf("read back (-want +got):\n%s", diff)
		}
	})
}
