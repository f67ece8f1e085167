package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// ledger is what one worker knows from acknowledged answers. A worker only
// deletes and exchanges tokens it created, one call at a time, so its view is
// exact; a call that failed leaves its token uncertain (the database may have
// committed before the connection dropped).
type ledger struct {
	live             map[string]string // id -> plaintext: created (acknowledged), not deleted
	deleted          map[string]string // id -> plaintext: deletion acknowledged
	uncertainCreates map[string]bool   // display names of creates that failed
	uncertainDeletes map[string]bool   // ids whose delete failed
}

func newLedger() *ledger {
	return &ledger{live: map[string]string{}, deleted: map[string]string{}, uncertainCreates: map[string]bool{}, uncertainDeletes: map[string]bool{}}
}

func anyKey(m map[string]string, r *rand.Rand) (string, bool) {
	if len(m) == 0 {
		return "", false
	}
	n := r.IntN(len(m))
	for k := range m {
		if n == 0 {
			return k, true
		}
		n--
	}
	return "", false
}

// listAll follows page tokens to the end and returns every token listed.
func listAll(ctx context.Context, c caller, bearer string, pageSize uint32) ([]*pb.Token, error) {
	var all []*pb.Token
	req := &pb.ListTokensRequest{PageSize: pageSize}
	for {
		resp := &pb.ListTokensResponse{}
		if err := c.call(ctx, pb.TokenService_ListTokens_FullMethodName, bearer, req, resp); err != nil {
			return all, err
		}
		all = append(all, resp.GetTokens()...)
		if resp.GetNextPageToken() == "" {
			return all, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// TestNothingLostNothingInvented runs 32 workers creating, deleting, listing
// and exchanging tokens over REST and gRPC against MySQL, cuts the database
// once in the middle, and then checks the database against the ledger of
// acknowledged answers, and the audit trail against the database.
func TestNothingLostNothingInvented(t *testing.T) {
	db, proxy := storetest.MustMySQLViaProxy(t)
	s := startService(t, db, "TOKENSERVICE_DB_QUERY_TIMEOUT", faultQueryTimeout.String())
	load := ledgerLoad{workers: 32, opsPerWorker: 150, callers: s.callers(t), bearers: ledgerUsers(t, s, 4),
		fault: func() {
			proxy.Cut()
			time.Sleep(time.Second)
			proxy.Restore()
		}}
	ledgers := load.run(t)
	s.waitReady(t, true, 15*time.Second)
	load.audit(t, ledgers)
	auditTrailMatches(t, s)
}

// auditTrailMatches checks the audit trail against the tokens in the
// database, after a load with faults: a change and its event commit in one
// transaction, so every token has exactly one token.create event, every
// deleted token exactly one token.delete event (a retried delete changes
// nothing, and records nothing), a live token none, and no event names a
// token the database does not have (a create that rolled back recorded
// nothing). A failed call whose change committed keeps its event, whatever
// the client was told.
func auditTrailMatches(t *testing.T, s *service) {
	t.Helper()
	ctx := context.Background()
	s.app.FlushAudit(ctx)
	rows, err := s.openDB(t).QueryContext(ctx, "SELECT id, user_id, delete_time IS NOT NULL FROM tokens")
	if err != nil {
		t.Fatal(err)
	}
	deleted := map[string]bool{} // every token, by ID: whether it is deleted
	owner := map[string]string{} // every token's user
	for rows.Next() {
		var id, userID string
		var gone bool
		if err := rows.Scan(&id, &userID, &gone); err != nil {
			t.Fatal(err)
		}
		deleted[id], owner[id] = gone, userID
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	trail, err := store.Open(store.Config{Driver: s.env["TOKENSERVICE_DB_DRIVER"], DSN: s.env["TOKENSERVICE_DB_DSN"]})
	if err != nil {
		t.Fatal(err)
	}
	defer trail.Close()
	events, err := trail.ListAuditEvents(ctx, domain.AuditQuery{Limit: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	changes := map[domain.AuditAction]map[string]int{domain.ActionTokenCreate: {}, domain.ActionTokenDelete: {}, domain.ActionTokenRotate: {}}
	for _, ev := range events {
		if n, ok := changes[ev.Action]; ok {
			n[ev.Subject.TokenID]++
			if _, exists := deleted[ev.Subject.TokenID]; !exists {
				t.Errorf("event %d: %s of token %s, which the database does not have (the change rolled back)", ev.Seq, ev.Action, ev.Subject.TokenID)
			} else if ev.Subject.UserID != owner[ev.Subject.TokenID] {
				t.Errorf("event %d: %s of token %s of user %s, which is user %s's", ev.Seq, ev.Action, ev.Subject.TokenID, ev.Subject.UserID, owner[ev.Subject.TokenID])
			}
		}
	}
	for id, gone := range deleted {
		if n := changes[domain.ActionTokenCreate][id]; n != 1 {
			t.Errorf("token %s: %d token.create events, want 1", id, n)
		}
		if n, want := changes[domain.ActionTokenDelete][id], map[bool]int{true: 1}[gone]; n != want {
			t.Errorf("token %s (deleted: %v): %d token.delete events, want %d", id, gone, n, want)
		}
	}
	t.Logf("audit trail: %d events; %d tokens, %d deletions recorded", len(events), len(deleted), len(changes[domain.ActionTokenDelete]))
}

// ledgerUsers makes n human users on s and returns a login of each.
func ledgerUsers(t *testing.T, s *service, n int) []string {
	bearers := make([]string, n)
	for u := range n {
		name := fmt.Sprintf("user%d", u)
		s.mustUser(t, name, "human")
		bearers[u] = rpc{t: t, c: s.grpcCaller()}.login(name)
	}
	return bearers
}

// ledgerLoad is a mixed load with a fault in its middle: workers create,
// delete, list and exchange tokens of users (worker w acts for user
// w%len(bearers), through caller w%len(callers)), each keeping a ledger of
// the answers acknowledged; the only failure allowed is UNAVAILABLE.
type ledgerLoad struct {
	workers, opsPerWorker int
	callers               []caller
	bearers               []string // one login per user
	// fault runs once, in a goroutine of its own, when half the
	// operations are done; run returns once it has returned.
	fault func()
}

const ledgerPageSize = 25

// run runs the load and returns each worker's ledger. It fails the test
// if no call failed: the fault did not test anything.
func (ll ledgerLoad) run(t *testing.T) []*ledger {
	t.Helper()
	var done atomic.Int64
	var failures sync.Map // code -> count, for the log
	var faultOnce sync.Once
	faultDone := make(chan struct{})
	ledgers := make([]*ledger, ll.workers)
	var wg sync.WaitGroup
	for w := range ll.workers {
		ledgers[w] = newLedger()
		wg.Go(func() {
			l, c, bearer := ledgers[w], ll.callers[w%len(ll.callers)], ll.bearers[w%len(ll.bearers)]
			r := rand.New(rand.NewPCG(uint64(w), 1))
			ctx := context.Background()
			// fail reports a failed call: only UNAVAILABLE is allowed.
			fail := func(what string, err error) {
				code := status.Code(err)
				n, _ := failures.LoadOrStore(code, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
				if code != codes.Unavailable {
					t.Errorf("worker %d: %s: %s", w, what, describe(err))
				}
				time.Sleep(20 * time.Millisecond)
			}
			for i := range ll.opsPerWorker {
				if done.Add(1) == int64(ll.workers*ll.opsPerWorker/2) {
					faultOnce.Do(func() {
						go func() {
							defer close(faultDone)
							ll.fault()
						}()
					})
				}
				switch op := r.IntN(100); {
				case op < 40: // create
					name := fmt.Sprintf("w%02d-%d", w, i)
					resp := &pb.CreateTokenResponse{}
					if err := c.call(ctx, pb.TokenService_CreateToken_FullMethodName, bearer, &pb.CreateTokenRequest{Note: name}, resp); err != nil {
						l.uncertainCreates[name] = true
						fail("create", err)
						continue
					}
					l.live[resp.GetMetadata().GetId()] = resp.GetToken()
				case op < 55: // delete one of ours
					id, ok := anyKey(l.live, r)
					if !ok {
						continue
					}
					plaintext := l.live[id]
					delete(l.live, id)
					if err := c.call(ctx, pb.TokenService_DeleteToken_FullMethodName, bearer, &pb.DeleteTokenRequest{TokenId: id}, &pb.DeleteTokenResponse{}); err != nil {
						l.uncertainDeletes[id] = true
						fail("delete", err)
						continue
					}
					l.deleted[id] = plaintext
				case op < 80: // exchange a live token: must work
					id, ok := anyKey(l.live, r)
					if !ok {
						continue
					}
					if err := c.call(ctx, pb.TokenService_GetAccessToken_FullMethodName, "", &pb.GetAccessTokenRequest{Token: l.live[id]}, &pb.GetAccessTokenResponse{}); err != nil {
						fail("exchange of a live token", err)
					}
				case op < 85: // exchange a deleted token: must be refused
					id, ok := anyKey(l.deleted, r)
					if !ok {
						continue
					}
					err := c.call(ctx, pb.TokenService_GetAccessToken_FullMethodName, "", &pb.GetAccessTokenRequest{Token: l.deleted[id]}, &pb.GetAccessTokenResponse{})
					if status.Code(err) == codes.Unauthenticated {
						continue
					}
					if err == nil {
						t.Errorf("worker %d: a deleted token was exchanged", w)
						continue
					}
					fail("exchange of a deleted token", err)
				default: // list while the other workers of this user write
					all, err := listAll(ctx, c, bearer, ledgerPageSize)
					if err != nil {
						fail("list", err)
						continue
					}
					seen := map[string]bool{}
					for _, tok := range all {
						id := tok.GetId()
						if seen[id] {
							t.Errorf("worker %d: token %s listed twice in one listing", w, id)
						}
						seen[id] = true
						if _, ok := l.deleted[id]; ok {
							t.Errorf("worker %d: deleted token %s listed", w, id)
						}
					}
					for id := range l.live {
						if !seen[id] {
							t.Errorf("worker %d: live token %s missing from a listing of %d", w, id, len(all))
						}
					}
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-faultDone:
	case <-time.After(60 * time.Second):
		t.Fatal("the fault never ended")
	}
	var unavailable int64
	failures.Range(func(k, v any) bool {
		t.Logf("%d calls failed with %v", v.(*atomic.Int64).Load(), k)
		if k.(codes.Code) == codes.Unavailable {
			unavailable = v.(*atomic.Int64).Load()
		}
		return true
	})
	if unavailable == 0 {
		t.Error("the fault failed no call: the test did not test a fault")
	}
	t.Logf("%d operations", done.Load())
	return ledgers
}

// audit checks every user's listing, through the service now whole again,
// against the ledgers: nothing acknowledged lost, nothing deleted back,
// nothing listed that no one created.
func (ll ledgerLoad) audit(t *testing.T, ledgers []*ledger) {
	t.Helper()
	ctx := context.Background()
	var live, deleted, uncertain, invented int
	users := len(ll.bearers)
	for u := range users {
		var mine []*ledger
		for w := u; w < len(ledgers); w += users {
			mine = append(mine, ledgers[w])
		}
		all, err := listAll(ctx, ll.callers[u%len(ll.callers)], ll.bearers[u], ledgerPageSize)
		if err != nil {
			t.Fatalf("final listing of user%d: %s", u, describe(err))
		}
		listed := map[string]*pb.Token{}
		for _, tok := range all {
			if listed[tok.GetId()] != nil {
				t.Errorf("user%d: token %s listed twice", u, tok.GetId())
			}
			listed[tok.GetId()] = tok
		}
		known := map[string]bool{}
		for _, l := range mine {
			for id := range l.live {
				known[id] = true
				live++
				if listed[id] == nil {
					t.Errorf("user%d: acknowledged token %s lost from the listing", u, id)
				}
				if err := ll.callers[0].call(ctx, pb.TokenService_GetToken_FullMethodName, ll.bearers[u], &pb.GetTokenRequest{TokenId: id}, &pb.GetTokenResponse{}); err != nil {
					t.Errorf("user%d: acknowledged token %s: GetToken %s", u, id, describe(err))
				}
			}
			for id := range l.deleted {
				deleted++
				if listed[id] != nil {
					t.Errorf("user%d: deleted token %s listed", u, id)
				}
				err := ll.callers[len(ll.callers)-1].call(ctx, pb.TokenService_GetToken_FullMethodName, ll.bearers[u], &pb.GetTokenRequest{TokenId: id}, &pb.GetTokenResponse{})
				wantCode(t, "GetToken of a deleted token", err, codes.NotFound)
			}
			for id := range l.uncertainDeletes {
				known[id] = true
			}
		}
		for id, tok := range listed {
			if known[id] || id == idOf(ll.bearers[u]) {
				continue
			}
			name := tok.GetNote()
			if uncertainCreate(mine, name) {
				uncertain++
				continue
			}
			invented++
			t.Errorf("user%d: listed token %s (%q) was never created", u, id, name)
		}
	}
	t.Logf("audit: %d live tokens found, %d deleted stay deleted, %d failed creates that committed, %d invented",
		live, deleted, uncertain, invented)
}

func uncertainCreate(ls []*ledger, name string) bool {
	for _, l := range ls {
		if l.uncertainCreates[name] {
			return true
		}
	}
	return false
}
