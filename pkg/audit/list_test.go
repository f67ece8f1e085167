package audit_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
)

// fakeLog is a sealed trail in memory: it keeps the order, the position
// and the limit a query asks for, and records each query; which events a
// query's filters and visibility select is the store's (and the end-to-end
// tests').
type fakeLog struct {
	events  []*domain.AuditEvent // by seq
	queries []domain.AuditQuery
}

var _ domain.AuditLog = (*fakeLog)(nil)

func (f *fakeLog) AppendAuditEvents(context.Context, []*domain.AuditEvent) error { return nil }
func (f *fakeLog) SealAuditEvents(context.Context, int, bool) ([]*domain.AuditEvent, error) {
	return nil, nil
}

func (f *fakeLog) ListAuditEvents(_ context.Context, q domain.AuditQuery) ([]*domain.AuditEvent, error) {
	f.queries = append(f.queries, q)
	var out []*domain.AuditEvent
	for _, e := range f.events {
		if (q.BeforeSeq == 0 || e.Seq < q.BeforeSeq) && e.Seq > q.AfterSeq {
			out = append(out, e)
		}
	}
	if q.AfterSeq == 0 {
		slices.Reverse(out)
	}
	return out[:min(len(out), q.Limit)], nil
}

// add appends an event with the next seq.
func (f *fakeLog) add() {
	seq := int64(len(f.events) + 1)
	f.events = append(f.events, &domain.AuditEvent{Seq: seq, Time: time.Unix(1_800_000_000+seq, 0).UTC(), Action: domain.ActionTokenCreate})
}

func newLister(t *testing.T, events int) (*audit.Service, *fakeLog) {
	t.Helper()
	log := &fakeLog{}
	for range events {
		log.add()
	}
	return audit.NewService(audit.Deps{Log: log, Pages: pagetoken.NewWithKey([]byte("a key for the tests' page tokens"))}), log
}

// The callers of the tests. IDs are 16 letters and digits, as the API's.
var (
	admin    = &domain.Principal{User: &domain.User{ID: "AdminAdminAdmin1", Username: "root", Admin: true}}
	alice    = &domain.Principal{User: &domain.User{ID: "AliceAliceAlice1", Username: "alice"}}
	aliceBot = &domain.Principal{User: &domain.User{ID: "AliceBotAliceBot", Username: "alice-bot", OwnerID: alice.User.ID}}
	operator = &domain.Principal{User: &domain.User{Username: "(operator)", Admin: true}, AllScopes: true}
)

// TestListSeesWhatTheCallerMay: an admin's listing is unrestricted; a
// person's covers itself and its machine users (the person columns); a
// machine user's only itself. The filters go along, and narrow it.
func TestListSeesWhatTheCallerMay(t *testing.T) {
	start, end := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	filters := audit.ListInput{ActorID: "ActorActorActor1", SubjectUserID: "SubjectSubject01", TokenID: "TokenTokenToken1",
		Action: "token.delete", StartTime: start, EndTime: end}
	for name, tc := range map[string]struct {
		caller *domain.Principal
		in     audit.ListInput
		want   domain.AuditQuery
	}{
		"an admin sees everything":         {caller: admin, want: domain.AuditQuery{Limit: 51}},
		"the operator sees everything":     {caller: operator, want: domain.AuditQuery{Limit: 51}},
		"a person sees its machine users'": {caller: alice, want: domain.AuditQuery{VisibleTo: alice.User.ID, VisibleToPerson: true, Limit: 51}},
		"a machine user sees its own":      {caller: aliceBot, want: domain.AuditQuery{VisibleTo: aliceBot.User.ID, Limit: 51}},
		"a person's filters narrow it": {caller: alice, in: filters, want: domain.AuditQuery{VisibleTo: alice.User.ID, VisibleToPerson: true,
			ActorID: "ActorActorActor1", SubjectUserID: "SubjectSubject01", TokenID: "TokenTokenToken1", Action: domain.ActionTokenDelete,
			StartTime: start, EndTime: end, Limit: 51}},
		"an admin's filters": {caller: admin, in: filters, want: domain.AuditQuery{ActorID: "ActorActorActor1", SubjectUserID: "SubjectSubject01",
			TokenID: "TokenTokenToken1", Action: domain.ActionTokenDelete, StartTime: start, EndTime: end, Limit: 51}},
		"following": {caller: aliceBot, in: audit.ListInput{AfterSeq: 7, PageSize: 10},
			want: domain.AuditQuery{VisibleTo: aliceBot.User.ID, AfterSeq: 7, Limit: 11}},
	} {
		t.Run(name, func(t *testing.T) {
			svc, log := newLister(t, 0)
			if _, _, err := svc.List(context.Background(), tc.caller, tc.in); err != nil {
				t.Fatal(err)
			}
			if len(log.queries) != 1 {
				t.Fatalf("%d queries, want 1", len(log.queries))
			}
			if diff := cmp.Diff(tc.want, log.queries[0]); diff != "" {
				t.Errorf("the query (-want +got):\n%s", diff)
			}
		})
	}
}

// TestListRefusesBadFilters: each filter that is not well formed is a 400
// naming it in plain words, before anything is read.
func TestListRefusesBadFilters(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		in    audit.ListInput
		field string
		says  string
	}{
		"an actor that is a username":   {in: audit.ListInput{ActorID: "alice"}, field: "actor_id", says: "16 letters and digits"},
		"an actor ID too long":          {in: audit.ListInput{ActorID: "AliceAliceAlice12"}, field: "actor_id", says: "16 letters and digits"},
		"a subject with a dash":         {in: audit.ListInput{SubjectUserID: "Alice-AliceAlice"}, field: "subject_user_id", says: "16 letters and digits"},
		"a plaintext token as token ID": {in: audit.ListInput{TokenID: "tks_AliceAliceAlice1_x"}, field: "token_id", says: "16 letters and digits"},
		"a token ID with a space":       {in: audit.ListInput{TokenID: "TokenTokenToken "}, field: "token_id", says: "16 letters and digits"},
		"an unknown action": {in: audit.ListInput{Action: "token.created"}, field: "action",
			says: `unknown action "token.created": the actions are user.login, user.create,`},
		"an action in upper case":   {in: audit.ListInput{Action: "TOKEN.CREATE"}, field: "action", says: "unknown action"},
		"an empty time range":       {in: audit.ListInput{StartTime: at, EndTime: at}, field: "end_time", says: "must be after the start time"},
		"an inverted time range":    {in: audit.ListInput{StartTime: at, EndTime: at.Add(-time.Nanosecond)}, field: "end_time", says: "must be after the start time"},
		"a negative sequence":       {in: audit.ListInput{AfterSeq: -1}, field: "after_seq", says: "must not be negative"},
		"a page token of no one":    {in: audit.ListInput{PageToken: "AAAA"}, field: "page_token", says: "same query"},
		"a page token not base64":   {in: audit.ListInput{PageToken: "%%%"}, field: "page_token", says: "same query"},
		"an action with the actors": {in: audit.ListInput{Action: "user.login user.create"}, field: "action", says: "unknown action"},
	} {
		t.Run(name, func(t *testing.T) {
			svc, log := newLister(t, 3)
			_, _, err := svc.List(context.Background(), alice, tc.in)
			var e *domain.Error
			if !errors.As(err, &e) || e.Kind != domain.KindInvalid || len(e.Fields) != 1 || e.Fields[0].Field != tc.field ||
				!strings.Contains(e.Message, tc.says) {
				t.Fatalf("%v, want a KindInvalid error about %s saying %q", err, tc.field, tc.says)
			}
			if len(log.queries) != 0 {
				t.Errorf("the trail was read: %v", log.queries)
			}
		})
	}
	// Every action is known: one of the vocabulary is no bad filter.
	for _, a := range domain.AuditActions {
		svc, _ := newLister(t, 0)
		if _, _, err := svc.List(context.Background(), alice, audit.ListInput{Action: string(a)}); err != nil {
			t.Errorf("action %s: %v", a, err)
		}
	}
}

// seqs returns the events' sequence numbers.
func seqs(events []*domain.AuditEvent) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.Seq
	}
	return out
}

// TestListPages: newest first, page by page, each page's token leading to
// the next; after a seq, oldest first. A page token is good only for the
// caller and the filters it came from.
func TestListPages(t *testing.T) {
	ctx := context.Background()
	svc, _ := newLister(t, 5)
	var got [][]int64
	in := audit.ListInput{PageSize: 2}
	for {
		page, next, err := svc.List(ctx, admin, in)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, seqs(page))
		if next == "" {
			break
		}
		in.PageToken = next
	}
	if diff := cmp.Diff([][]int64{{5, 4}, {3, 2}, {1}}, got); diff != "" {
		t.Errorf("newest first, by pages (-want +got):\n%s", diff)
	}

	got = nil
	in = audit.ListInput{AfterSeq: 1, PageSize: 2}
	for {
		page, next, err := svc.List(ctx, admin, in)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, seqs(page))
		if next == "" {
			break
		}
		in.PageToken = next
	}
	if diff := cmp.Diff([][]int64{{2, 3}, {4, 5}}, got); diff != "" {
		t.Errorf("after 1, by pages (-want +got):\n%s", diff)
	}

	_, token, err := svc.List(ctx, alice, audit.ListInput{PageSize: 1, Action: "token.create"})
	if err != nil || token == "" {
		t.Fatalf("a first page: token %q, %v", token, err)
	}
	for name, tc := range map[string]struct {
		caller *domain.Principal
		in     audit.ListInput
	}{
		"another caller":        {caller: aliceBot, in: audit.ListInput{PageSize: 1, Action: "token.create"}},
		"another action":        {caller: alice, in: audit.ListInput{PageSize: 1, Action: "token.delete"}},
		"no action":             {caller: alice, in: audit.ListInput{PageSize: 1}},
		"an actor besides":      {caller: alice, in: audit.ListInput{PageSize: 1, Action: "token.create", ActorID: "ActorActorActor1"}},
		"a subject besides":     {caller: alice, in: audit.ListInput{PageSize: 1, Action: "token.create", SubjectUserID: "ActorActorActor1"}},
		"a token besides":       {caller: alice, in: audit.ListInput{PageSize: 1, Action: "token.create", TokenID: "ActorActorActor1"}},
		"a start besides":       {caller: alice, in: audit.ListInput{PageSize: 1, Action: "token.create", StartTime: time.Unix(1, 0)}},
		"an end besides":        {caller: alice, in: audit.ListInput{PageSize: 1, Action: "token.create", EndTime: time.Unix(1, 0)}},
		"following instead":     {caller: alice, in: audit.ListInput{PageSize: 1, Action: "token.create", AfterSeq: 1}},
		"the caller made admin": {caller: &domain.Principal{User: &domain.User{ID: alice.User.ID, Admin: true}}, in: audit.ListInput{PageSize: 1, Action: "token.create"}},
	} {
		tc.in.PageToken = token
		_, _, err := svc.List(ctx, tc.caller, tc.in)
		if e := (*domain.Error)(nil); !errors.As(err, &e) || e.Kind != domain.KindInvalid || !strings.HasPrefix(e.Message, "page_token: ") {
			t.Errorf("a page token with %s: %v, want refused as an invalid page_token", name, err)
		}
	}
	// The same query continues, whatever the page size.
	if _, _, err := svc.List(ctx, alice, audit.ListInput{PageSize: 3, Action: "token.create", PageToken: token}); err != nil {
		t.Errorf("the same query, a larger page: %v", err)
	}
}

// TestListFlushesFirst: what was recorded before a listing is in it, and
// a listing whose caller went away does not cut the flush short (the
// recorder would drop what it took).
func TestListFlushesFirst(t *testing.T) {
	log := &fakeLog{}
	var flushErr error
	svc := audit.NewService(audit.Deps{Log: log, Pages: pagetoken.NewWithKey([]byte("k")), Flush: func(ctx context.Context) {
		flushErr = ctx.Err()
		log.add()
	}})
	page, _, err := svc.List(context.Background(), admin, audit.ListInput{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{1}, seqs(page)); diff != "" {
		t.Errorf("the event flushed (-want +got):\n%s", diff)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := svc.List(gone, admin, audit.ListInput{}); err != nil {
		t.Fatal(err)
	}
	if flushErr != nil {
		t.Errorf("the flush of a listing whose caller went away had its context ended: %v", flushErr)
	}
}
