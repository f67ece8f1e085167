package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/google/go-cmp/cmp"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// The audit listing's tests write their events straight into the trail
// (as the store's write methods and the recorder do) and leave them
// unsealed: a listing seals what was written before it. Each event they
// write carries the detail "test", its name, so that they can tell theirs
// from those the services record; where they assert that someone sees
// nothing of another, they look at every event listed.

// auditTrail writes events into s's trail, as the services' store does.
func (s *service) auditTrail(t *testing.T) *store.Store {
	t.Helper()
	return storetest.MustOpenConfig(t, store.Config{Driver: s.env["TOKENSERVICE_DB_DRIVER"], DSN: s.env["TOKENSERVICE_DB_DSN"]})
}

// mustAppend writes events, each named by its "test" detail.
func mustAppend(t *testing.T, st *store.Store, events ...*domain.AuditEvent) {
	t.Helper()
	if err := st.AppendAuditEvents(context.Background(), events); err != nil {
		t.Fatal(err)
	}
}

// testEvent returns an event named name, at, by actor, on subject.
func testEvent(name string, at time.Time, action domain.AuditAction, actor, subject domain.AuditParty) *domain.AuditEvent {
	return &domain.AuditEvent{Time: at, Action: action, Outcome: domain.OutcomeSuccess, Actor: actor, Subject: subject,
		Details: map[string]string{"test": name}}
}

// auditRPC lists audit events over a caller's transport.
func (a rpc) auditEvents(bearer string, req *pb.ListAuditEventsRequest) (*pb.ListAuditEventsResponse, error) {
	resp := &pb.ListAuditEventsResponse{}
	return resp, a.c.call(context.Background(), pb.AuditService_ListAuditEvents_FullMethodName, bearer, req, resp)
}

// allAuditEvents follows req's pages to the end.
func (a rpc) allAuditEvents(bearer string, req *pb.ListAuditEventsRequest) []*pb.AuditEvent {
	a.t.Helper()
	all, err := allPages(func(token string) ([]*pb.AuditEvent, string, error) {
		req.PageToken = token
		resp, err := a.auditEvents(bearer, req)
		return resp.GetAuditEvents(), resp.GetNextPageToken(), err
	})
	if err != nil {
		a.t.Fatalf("ListAuditEvents %v: %s", req, describe(err))
	}
	return all
}

// named returns the test names of the events that have one, in order.
func named(events []*pb.AuditEvent) []string {
	var out []string
	for _, e := range events {
		if n := e.GetDetails()["test"]; n != "" {
			out = append(out, n)
		}
	}
	return out
}

// userParty is the party a user is, by the IDs tests know it by.
func userParty(id, username, owner string) domain.AuditParty {
	return domain.AuditParty{Kind: domain.ActorUser, UserID: id, Username: username, OwnerID: owner}
}

// subjectOf is the subject party of a user (no kind).
func subjectOf(p domain.AuditParty) domain.AuditParty {
	p.Kind = ""
	return p
}

// TestAuditEventsAreSeenByWhomTheyConcern: an admin sees every event; a
// person those whose actor or subject is itself or one of its machine
// users; a machine user only those of itself; naming another in a filter
// gives nothing of theirs. Without a bearer: 401; without audit:read: 403.
func TestAuditEventsAreSeenByWhomTheyConcern(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		rootID, aliceID, bobID := s.mustUser(t, "root", "admin"), s.mustUser(t, "alice", "human"), s.mustUser(t, "bob", "human")
		botID := s.mustUser(t, "alice-bot", "machine:alice")
		g := rpc{t, s.grpcCaller()}
		tokens := map[string]string{"root": g.login("root"), "alice": g.login("alice"), "bob": g.login("bob")}
		tokens["alice-bot"] = g.mustCreate(tokens["alice"], &pb.CreateTokenRequest{UserId: botID}).GetToken()
		ids := map[string]string{"root": rootID, "alice": aliceID, "bob": bobID, "alice-bot": botID}

		root, alice, bob, bot := userParty(rootID, "root", ""), userParty(aliceID, "alice", ""), userParty(bobID, "bob", ""),
			userParty(botID, "alice-bot", aliceID)
		aliceToken := subjectOf(alice)
		aliceToken.TokenID = idOf(tokens["alice"])
		at := time.Now().UTC().Add(-time.Minute)
		full := testEvent("alice-by-herself", at, domain.ActionTokenRotate, domain.AuditParty{Kind: domain.ActorUser, UserID: aliceID, Username: "alice",
			TokenID: idOf(tokens["alice"])}, aliceToken)
		full.Origin = domain.Origin{ClientAddress: "192.0.2.7", UserAgent: "curl/8.5", RequestID: "req-1", TraceID: "0af7651916cd43dd8448eb211c80319c"}
		full.Details["reason"] = "scheduled"
		mustAppend(t, s.auditTrail(t),
			full,
			testEvent("bob-on-alice", at, domain.ActionTokenDelete, bob, aliceToken),
			testEvent("by-the-bot", at, domain.ActionAccessTokenMint, bot, subjectOf(bot)),
			testEvent("root-on-the-bot", at, domain.ActionMachineUserDelete, root, subjectOf(bot)),
			testEvent("bob-by-himself", at, domain.ActionUserChangePassword, bob, subjectOf(bob)),
			testEvent("the-operator", at, domain.ActionKeysReseal, domain.AuditParty{Kind: domain.ActorOperator}, domain.AuditParty{}),
			testEvent("alice-on-bob", at, domain.ActionUserLogin, alice, subjectOf(bob)),
			testEvent("anonymous-on-the-bot", at, domain.ActionTokenAuthenticate, domain.AuditParty{Kind: domain.ActorAnonymous},
				domain.AuditParty{UserID: botID, Username: "alice-bot", OwnerID: aliceID, TokenID: idOf(tokens["alice-bot"])}),
		)
		// Who may see each event of a person or machine user: a person its
		// own and its machine users' (the person columns), a machine user its own.
		sees := func(who string, e *pb.AuditEvent) bool {
			id := ids[who]
			if who == "alice-bot" {
				return e.GetActor().GetUserId() == id || e.GetSubject().GetUserId() == id
			}
			person := func(user, owner string) string { return firstOf(owner, user) }
			return person(e.GetActor().GetUserId(), e.GetActor().GetOwnerId()) == id || person(e.GetSubject().GetUserId(), e.GetSubject().GetOwnerId()) == id
		}

		for _, c := range s.callers(t) {
			t.Run(c.name, func(t *testing.T) {
				a := rpc{t, c}
				for who, want := range map[string][]string{
					"root": {"alice-by-herself", "bob-on-alice", "by-the-bot", "root-on-the-bot", "bob-by-himself", "the-operator", "alice-on-bob",
						"anonymous-on-the-bot"},
					"alice":     {"alice-by-herself", "bob-on-alice", "by-the-bot", "root-on-the-bot", "alice-on-bob", "anonymous-on-the-bot"},
					"alice-bot": {"by-the-bot", "root-on-the-bot", "anonymous-on-the-bot"},
					"bob":       {"bob-on-alice", "bob-by-himself", "alice-on-bob"},
				} {
					got := a.allAuditEvents(tokens[who], &pb.ListAuditEventsRequest{PageSize: 3})
					if diff := cmp.Diff(reversed(want), named(got)); diff != "" { // newest first
						t.Errorf("%s sees (-want +got):\n%s", who, diff)
					}
					for _, e := range got {
						if who != "root" && !sees(who, e) {
							t.Errorf("%s was shown an event not its own: %v", who, e)
						}
					}
				}

				// A filter naming another narrows, never widens.
				for _, q := range []struct {
					who string
					req *pb.ListAuditEventsRequest
				}{
					{"bob", &pb.ListAuditEventsRequest{SubjectUserId: botID}},
					{"bob", &pb.ListAuditEventsRequest{ActorId: botID}},
					{"bob", &pb.ListAuditEventsRequest{TokenId: idOf(tokens["alice-bot"])}},
					{"alice-bot", &pb.ListAuditEventsRequest{ActorId: aliceID}},
					{"alice-bot", &pb.ListAuditEventsRequest{SubjectUserId: bobID}},
					{"alice", &pb.ListAuditEventsRequest{ActorId: rootID, SubjectUserId: rootID}},
				} {
					// None of the test's (each names another's act or
					// subject), and of the events the services recorded
					// themselves (alice's token.create for her bot), only
					// what the asker may see.
					got := a.allAuditEvents(tokens[q.who], q.req)
					if len(named(got)) != 0 {
						t.Errorf("%s asking for %v: %v, want none of the test's", q.who, q.req, named(got))
					}
					for _, e := range got {
						if !sees(q.who, e) {
							t.Errorf("%s asking for %v was shown an event not its own: %v", q.who, q.req, e)
						}
					}
				}
				// ... and within what one may see, it selects.
				got := a.allAuditEvents(tokens["alice"], &pb.ListAuditEventsRequest{ActorId: bobID})
				if diff := cmp.Diff([]string{"bob-on-alice"}, named(got)); diff != "" {
					t.Errorf("alice asking for bob's acts (-want +got):\n%s", diff)
				}
				for _, e := range got {
					if e.GetActor().GetUserId() != bobID || !sees("alice", e) {
						t.Errorf("alice asking for bob's acts was shown %v", e)
					}
				}

				// Every field of an event, as written.
				resp, err := a.auditEvents(tokens["alice"], &pb.ListAuditEventsRequest{Action: "token.rotate", SubjectUserId: aliceID})
				if err != nil || len(resp.GetAuditEvents()) != 1 {
					t.Fatalf("alice's rotation: %v, %s", resp, describe(err))
				}
				e := resp.GetAuditEvents()[0]
				if e.GetSeq() <= 0 || len(e.GetChainHash()) != 64 {
					t.Errorf("seq %d, chain hash %q: want sealed (a seq, a SHA-256 in hex)", e.GetSeq(), e.GetChainHash())
				}
				if _, err := hex.DecodeString(e.GetChainHash()); err != nil {
					t.Errorf("chain hash %q: %v", e.GetChainHash(), err)
				}
				want := &pb.AuditEvent{Time: timestamppb.New(at.Truncate(time.Microsecond)), Action: "token.rotate", Outcome: "success",
					Actor:         &pb.AuditActor{Kind: "user", UserId: aliceID, Username: "alice", TokenId: idOf(tokens["alice"])},
					Subject:       &pb.AuditSubject{UserId: aliceID, Username: "alice", TokenId: idOf(tokens["alice"])},
					ClientAddress: "192.0.2.7", UserAgent: "curl/8.5", RequestId: "req-1", TraceId: "0af7651916cd43dd8448eb211c80319c",
					Details: map[string]string{"test": "alice-by-herself", "reason": "scheduled"}}
				if diff := cmp.Diff(want, e, protocmp.Transform(), protocmp.IgnoreFields(&pb.AuditEvent{}, "seq", "chain_hash")); diff != "" {
					t.Errorf("the event (-want +got):\n%s", diff)
				}
				resp, err = a.auditEvents(tokens["root"], &pb.ListAuditEventsRequest{Action: "keys.reseal"})
				if err != nil || len(named(resp.GetAuditEvents())) != 1 || resp.GetAuditEvents()[0].GetSubject() != nil {
					t.Errorf("an event without a subject: %v, %s; want none sent", resp, describe(err))
				}

				// Who may not list at all.
				_, err = a.auditEvents("", &pb.ListAuditEventsRequest{})
				wantCode(t, "listing without a bearer", err, codes.Unauthenticated)
				narrow := a.mustCreate(tokens["alice"], &pb.CreateTokenRequest{Scopes: []string{"tokens:read", "users:read"}}).GetToken()
				_, err = a.auditEvents(narrow, &pb.ListAuditEventsRequest{})
				wantCode(t, "listing without audit:read", err, codes.PermissionDenied)
				if reason(err) != domain.ReasonInsufficientScope || !strings.Contains(status.Convert(err).Message(), `"audit:read"`) {
					t.Errorf("listing without audit:read: %s, want INSUFFICIENT_SCOPE naming it", describe(err))
				}
			})
		}
	})
}

// reversed returns a reversed copy of s.
func reversed[T any](s []T) []T {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// TestAuditEventFilters: each filter selects what it says, and they
// combine; the time range includes its start and excludes its end;
// after a seq, the events come oldest first.
func TestAuditEventFilters(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		s.mustUser(t, "root", "admin")
		root := rpc{t, s.grpcCaller()}.login("root")
		// Users and tokens no one has: only these events name them.
		f, g := userParty("FilterActorFFFF1", "f", ""), userParty("FilterActorGGGG1", "g", "")
		s1, s2 := domain.AuditParty{UserID: "FilterSubject001", Username: "s1"}, domain.AuditParty{UserID: "FilterSubject002", Username: "s2"}
		on := func(p domain.AuditParty, token string) domain.AuditParty { p.TokenID = token; return p }
		t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		mustAppend(t, s.auditTrail(t),
			testEvent("f1", t0, domain.ActionTokenCreate, f, on(s1, "FilterToken00001")),
			testEvent("f2", t0.Add(time.Minute), domain.ActionTokenDelete, f, on(s1, "FilterToken00002")),
			testEvent("f3", t0.Add(2*time.Minute), domain.ActionTokenCreate, f, on(s2, "FilterToken00003")),
			testEvent("f4", t0.Add(3*time.Minute), domain.ActionUserLogin, f, s2),
			testEvent("g1", t0.Add(4*time.Minute), domain.ActionTokenCreate, g, on(s1, "FilterToken00001")),
		)
		for _, c := range s.callers(t) {
			t.Run(c.name, func(t *testing.T) {
				a := rpc{t, c}
				ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
				seqOf := func(name string) int64 {
					for _, e := range a.allAuditEvents(root, &pb.ListAuditEventsRequest{ActorId: f.UserID}) {
						if e.GetDetails()["test"] == name {
							return e.GetSeq()
						}
					}
					t.Fatalf("no event %s", name)
					return 0
				}
				for name, tc := range map[string]struct {
					req  *pb.ListAuditEventsRequest
					want []string
				}{
					"an actor":                     {&pb.ListAuditEventsRequest{ActorId: f.UserID}, []string{"f4", "f3", "f2", "f1"}},
					"another actor":                {&pb.ListAuditEventsRequest{ActorId: g.UserID}, []string{"g1"}},
					"a subject":                    {&pb.ListAuditEventsRequest{SubjectUserId: s1.UserID}, []string{"g1", "f2", "f1"}},
					"an actor and a subject":       {&pb.ListAuditEventsRequest{ActorId: f.UserID, SubjectUserId: s1.UserID}, []string{"f2", "f1"}},
					"a token":                      {&pb.ListAuditEventsRequest{TokenId: "FilterToken00001"}, []string{"g1", "f1"}},
					"an action":                    {&pb.ListAuditEventsRequest{ActorId: f.UserID, Action: "token.create"}, []string{"f3", "f1"}},
					"an action no event has":       {&pb.ListAuditEventsRequest{ActorId: f.UserID, Action: "signing_key.add"}, nil},
					"a time range":                 {&pb.ListAuditEventsRequest{ActorId: f.UserID, StartTime: ts(time.Minute), EndTime: ts(3 * time.Minute)}, []string{"f3", "f2"}},
					"a start":                      {&pb.ListAuditEventsRequest{ActorId: f.UserID, StartTime: ts(3 * time.Minute)}, []string{"f4"}},
					"an end":                       {&pb.ListAuditEventsRequest{ActorId: f.UserID, EndTime: ts(time.Minute)}, []string{"f1"}},
					"a range a microsecond wide":   {&pb.ListAuditEventsRequest{ActorId: f.UserID, StartTime: ts(0), EndTime: ts(time.Microsecond)}, []string{"f1"}},
					"after a seq, oldest first":    {&pb.ListAuditEventsRequest{ActorId: f.UserID, AfterSeq: seqOf("f2")}, []string{"f3", "f4"}},
					"after the last":               {&pb.ListAuditEventsRequest{ActorId: f.UserID, AfterSeq: seqOf("f4")}, nil},
					"every filter at once matches": {&pb.ListAuditEventsRequest{ActorId: g.UserID, SubjectUserId: s1.UserID, TokenId: "FilterToken00001", Action: "token.create", StartTime: ts(4 * time.Minute), EndTime: ts(5 * time.Minute)}, []string{"g1"}},
				} {
					got := a.allAuditEvents(root, tc.req)
					if diff := cmp.Diff(tc.want, named(got)); diff != "" {
						t.Errorf("%s (-want +got):\n%s", name, diff)
					}
					if len(got) != len(named(got)) {
						t.Errorf("%s: %d events the test did not write", name, len(got)-len(named(got)))
					}
				}
			})
		}
	})
}

// TestAuditEventPages: newest first in pages whose tokens lead on to the
// end, each event once; a page token is good only for its own query.
func TestAuditEventPages(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		s.mustUser(t, "root", "admin")
		root := rpc{t, s.grpcCaller()}.login("root")
		p := userParty("PagesActorPPPPP1", "p", "")
		at := time.Now().UTC()
		var events []*domain.AuditEvent
		var want []string
		for i := range 7 {
			name := fmt.Sprintf("p%d", i)
			events = append(events, testEvent(name, at, domain.ActionTokenCreate, p, domain.AuditParty{}))
			want = append([]string{name}, want...)
		}
		mustAppend(t, s.auditTrail(t), events...)
		for _, c := range s.callers(t) {
			t.Run(c.name, func(t *testing.T) {
				a := rpc{t, c}
				var got []string
				var sizes []int
				var lastSeq int64
				req := &pb.ListAuditEventsRequest{ActorId: p.UserID, PageSize: 3}
				for {
					resp, err := a.auditEvents(root, req)
					if err != nil {
						t.Fatal(describe(err))
					}
					for _, e := range resp.GetAuditEvents() {
						if lastSeq != 0 && e.GetSeq() >= lastSeq {
							t.Errorf("seq %d after %d: want newest first", e.GetSeq(), lastSeq)
						}
						lastSeq = e.GetSeq()
					}
					got, sizes = append(got, named(resp.GetAuditEvents())...), append(sizes, len(resp.GetAuditEvents()))
					if resp.GetNextPageToken() == "" {
						break
					}
					req.PageToken = resp.GetNextPageToken()
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("the events, page by page (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]int{3, 3, 1}, sizes); diff != "" {
					t.Errorf("page sizes (-want +got):\n%s", diff)
				}

				first, err := a.auditEvents(root, &pb.ListAuditEventsRequest{ActorId: p.UserID, PageSize: 2})
				if err != nil || first.GetNextPageToken() == "" {
					t.Fatalf("a first page: %v, %s", first, describe(err))
				}
				next := first.GetNextPageToken()
				// After p0 (the oldest), in pages, oldest first.
				all := a.allAuditEvents(root, &pb.ListAuditEventsRequest{ActorId: p.UserID})
				oldest := a.allAuditEvents(root, &pb.ListAuditEventsRequest{ActorId: p.UserID, PageSize: 2, AfterSeq: all[len(all)-1].GetSeq()})
				if w := reversed(want[:len(want)-1]); !slices.Equal(named(oldest), w) {
					t.Errorf("after p0, in pages of 2: %v, want %v", named(oldest), w)
				}
				for name, req := range map[string]*pb.ListAuditEventsRequest{
					"another actor":    {ActorId: "PagesActorQQQQQ1", PageToken: next},
					"an action added":  {ActorId: p.UserID, Action: "token.create", PageToken: next},
					"following":        {ActorId: p.UserID, AfterSeq: 1, PageToken: next},
					"a start added":    {ActorId: p.UserID, StartTime: timestamppb.New(at.Add(-time.Hour)), PageToken: next},
					"not a page token": {ActorId: p.UserID, PageToken: "bm90IGEgcGFnZSB0b2tlbg"},
				} {
					_, err := a.auditEvents(root, req)
					wantCode(t, "a page token with "+name, err, codes.InvalidArgument)
					if m := status.Convert(err).Message(); !strings.HasPrefix(m, "page_token: ") && !strings.HasPrefix(m, "pageToken: ") {
						t.Errorf("a page token with %s: %s, want page_token named", name, describe(err))
					}
				}
				// Another caller may not continue root's listing.
				s.mustUser(t, "carol-"+c.name, "admin")
				_, err = a.auditEvents(a.login("carol-"+c.name), &pb.ListAuditEventsRequest{ActorId: p.UserID, PageSize: 2, PageToken: next})
				wantCode(t, "another admin continuing root's listing", err, codes.InvalidArgument)
			})
		}
	})
}

// TestAuditListRefusesBadFilters: a filter that cannot be right is a 400
// naming it in plain words.
func TestAuditListRefusesBadFilters(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		user := "dana-" + c.name
		s.mustUser(t, user, "human")
		a := rpc{t, c}
		token := a.login(user)
		at := timestamppb.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
		// name picks the spelling of the transport: proto over gRPC, JSON over REST.
		name := func(proto, json string) string {
			if c.name == "rest" {
				return json
			}
			return proto
		}
		for what, tc := range map[string]struct {
			req  *pb.ListAuditEventsRequest
			says []string
		}{
			"a username as actor":     {&pb.ListAuditEventsRequest{ActorId: "alice"}, []string{name("actor_id", "actorId") + ": ", "16 letters and digits"}},
			"a subject with a symbol": {&pb.ListAuditEventsRequest{SubjectUserId: "Alice-AliceAlice"}, []string{name("subject_user_id", "subjectUserId") + ": ", "16 letters and digits"}},
			"a plaintext token":       {&pb.ListAuditEventsRequest{TokenId: "tks_" + strings.Repeat("a", 16)}, []string{name("token_id", "tokenId") + ": ", "16 letters and digits"}},
			"a too long ID":           {&pb.ListAuditEventsRequest{ActorId: strings.Repeat("a", 65)}, []string{name("actor_id", "actorId") + ": "}},
			"an unknown action":       {&pb.ListAuditEventsRequest{Action: "token.created"}, []string{"action: ", `unknown action "token.created"`, "token.create, token.rotate"}},
			"an empty range":          {&pb.ListAuditEventsRequest{StartTime: at, EndTime: at}, []string{name("end_time", "endTime") + ": ", "after the start time"}},
			"an inverted range":       {&pb.ListAuditEventsRequest{StartTime: at, EndTime: timestamppb.New(at.AsTime().Add(-time.Second))}, []string{name("end_time", "endTime") + ": ", "after the start time"}},
			"a negative seq":          {&pb.ListAuditEventsRequest{AfterSeq: -1}, []string{name("after_seq", "afterSeq") + ": ", "negative"}},
		} {
			_, err := a.auditEvents(token, tc.req)
			wantCode(t, what, err, codes.InvalidArgument)
			for _, w := range tc.says {
				if !strings.Contains(status.Convert(err).Message(), w) {
					t.Errorf("%s: %s, want it to say %q", what, describe(err), w)
				}
			}
		}
	})
}
