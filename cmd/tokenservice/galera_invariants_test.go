package main

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// The rules that must hold with callers spread over replicas on every
// node of a Galera cluster (issue 19): quotas, one rotation at a time,
// deletes that leave no orphan, last-used times. The replicas come from
// galera_test.go's galeraReplicas.

// Issue 19's second finding, through the API: concurrent CreateToken and
// CreateUser (machine) calls for one user, spread over the three replicas
// and both transports, create exactly the quota; the rest are refused with
// RESOURCE_EXHAUSTED (QUOTA_EXCEEDED), none fails otherwise. The owner's row
// is written to take turns (lock_version): a read FOR UPDATE locked one node
// only, and 150 creates with a quota of 50 left 52 tokens.
func TestQuotasHoldAcrossReplicasOnGalera(t *testing.T) {
	const maxTokens, maxMachines, tokenTries, machineTries = 10, 6, 45, 30
	rs, g := galeraReplicas(t, "TOKENSERVICE_MAX_TOKENS_PER_USER", fmt.Sprint(maxTokens),
		"TOKENSERVICE_MAX_MACHINE_USERS_PER_OWNER", fmt.Sprint(maxMachines), "TOKENSERVICE_USER_CREATIONS_PER_HOUR", "0")
	ownerID := rs[0].mustUser(t, "quinn", "human")
	login := rpc{t, rs[0].grpcCaller()}.login("quinn") // the first of the quota
	onEveryReplica(t, rs, "the login token", func(_ int, s *service) error {
		_, err := rpc{t, s.grpcCaller()}.get(login, idOf(login))
		return err
	})

	next := spread(t, rs)
	errs := atOnce(tokenTries+machineTries, func(i int) error {
		a := rpc{t, next(i)}
		if i < tokenTries {
			_, err := a.create(login, &pb.CreateTokenRequest{Note: fmt.Sprint("burst ", i)})
			return err
		}
		_, err := a.users().CreateUser(as(login), &pb.CreateUserRequest{Username: fmt.Sprintf("quinn-bot-%d", i), Machine: true})
		return err
	})
	for what, errs := range map[string][]error{"CreateToken": errs[:tokenTries], "CreateUser": errs[tokenTries:]} {
		want := maxTokens - 1
		if what == "CreateUser" {
			want = maxMachines
		}
		created := 0
		for _, err := range errs {
			switch {
			case err == nil:
				created++
			case status.Code(err) != codes.ResourceExhausted || reason(err) != "QUOTA_EXCEEDED":
				t.Errorf("%s over the quota: %s, want RESOURCE_EXHAUSTED (QUOTA_EXCEEDED)", what, describe(err))
			}
		}
		if created != want {
			t.Errorf("%d of %d concurrent %s calls over three replicas succeeded, want %d (the quota)", created, len(errs), what, want)
		}
	}
	dbs := nodeDBs(t, g)
	countOnEveryNode(t, dbs, "live tokens", maxTokens, "SELECT COUNT(*) FROM tokens WHERE user_id = ? AND delete_time IS NULL", ownerID)
	countOnEveryNode(t, dbs, "machine users", maxMachines, "SELECT COUNT(*) FROM users WHERE owner_id = ?", ownerID)
}

// One rotation at a time across replicas: the same token rotated at once
// through the three replicas, each call authenticated by the token's
// current secret: exactly one rotation succeeds; each other is told another
// came first (ABORTED, SECRET_CHANGED), or, if it read the token after
// that rotation committed, refused as the replaced secret it now is
// (UNAUTHENTICATED). Then the old secret is refused and the new one
// accepted on every replica. Four rounds, one generation after another.
// The rotations go over REST and gRPC by turns (the REST caller checks each
// answer, the 409, against the spec).
func TestOneRotationAtATimeAcrossReplicasOnGalera(t *testing.T) {
	const ttl = time.Second
	rs, _ := galeraReplicas(t, "TOKENSERVICE_CACHE_TTL", ttl.String())
	rs[0].mustUser(t, "rory", "human")
	a0 := rpc{t, rs[0].grpcCaller()}
	token := a0.mustCreate(a0.login("rory"), &pb.CreateTokenRequest{Note: "rotated"}).GetToken()
	onEveryReplica(t, rs, "the token", func(_ int, s *service) error {
		_, err := rpc{t, s.grpcCaller()}.get(token, idOf(token))
		return err
	})
	aborted := 0
	callers := make([][]caller, len(rs))
	for i, s := range rs {
		callers[i] = s.callers(t)
	}
	for round := range 4 {
		resps := make([]*pb.RotateTokenResponse, len(rs))
		errs := atOnce(len(rs), func(i int) error {
			resps[i] = &pb.RotateTokenResponse{}
			return callers[i][(i+round)%2].call(context.Background(), pb.TokenService_RotateToken_FullMethodName, token,
				&pb.RotateTokenRequest{TokenId: idOf(token)}, resps[i])
		})
		var fresh string
		for i, err := range errs {
			switch {
			case err == nil && fresh != "":
				t.Fatalf("round %d: two rotations from one generation succeeded", round)
			case err == nil:
				fresh = resps[i].GetToken()
			case status.Code(err) == codes.Aborted && reason(err) == "SECRET_CHANGED":
				aborted++
			case status.Code(err) != codes.Unauthenticated:
				t.Errorf("round %d: a rotation another came before: %s, want ABORTED (SECRET_CHANGED) or UNAUTHENTICATED", round, describe(err))
			}
		}
		if fresh == "" {
			t.Fatalf("round %d: no rotation succeeded: %v", round, errs)
		}
		rotated := time.Now()
		for i, s := range rs {
			a := rpc{t, s.grpcCaller()}
			waitFor(t, fmt.Sprintf("round %d: replica %d to refuse the old secret", round, i), ttl+2*time.Second, rotated, func() bool {
				_, err := a.exchange("", token)
				return status.Code(err) == codes.Unauthenticated
			})
			waitFor(t, fmt.Sprintf("round %d: replica %d to accept the new secret", round, i), ttl+2*time.Second, rotated, func() bool {
				_, err := a.get(fresh, idOf(fresh))
				return err == nil
			})
		}
		token = fresh
	}
	t.Logf("%d of the 8 losing rotations were told another came first (ABORTED), the others read the token after it had", aborted)
}

// Deletes leave no orphan: a user deleted through one replica while the
// other two create tokens for it and its machine user, and machine users
// owned by it. Every call succeeds or gets a 4xx; afterwards no node has a
// token or machine user whose user or owner is gone (DeleteUser deletes the
// user's machine users and all their tokens, holding the user's row, which
// every create of theirs writes too).
func TestDeletesLeaveNoOrphanAcrossReplicasOnGalera(t *testing.T) {
	rs, g := galeraReplicas(t, "TOKENSERVICE_USER_CREATIONS_PER_HOUR", "0")
	rs[0].mustUser(t, "dora", "admin")
	admin := rpc{t, rs[0].grpcCaller()}.login("dora")
	next := spread(t, rs)
	dbs := nodeDBs(t, g)
	refusedAll := 0
	for round := range 3 {
		name := fmt.Sprintf("doomed%d", round)
		victimID := rs[0].mustUser(t, name, "human")
		botID := rs[0].mustUser(t, name+"-bot", "machine:"+name)
		login := rpc{t, rs[0].grpcCaller()}.login(name)
		onEveryReplica(t, rs, name+"'s login token and machine user", func(_ int, s *service) error {
			a := rpc{t, s.grpcCaller()}
			if _, err := a.get(login, idOf(login)); err != nil {
				return err
			}
			_, err := a.users().GetUser(as(login), &pb.GetUserRequest{UserId: botID})
			return err
		})
		// The deleter's call goes out with the first creates; each creator
		// (two per other replica, REST and gRPC) keeps creating until it is
		// refused, at most maxCreates times, so creates come before, during
		// and after the deletion, and the deletion lands under their steady
		// writes of the user's row (its transaction runs again while its
		// deadline allows; a fixed dozen attempts lost to them once in about
		// 30 rounds and answered UNAVAILABLE).
		deleter := round % len(rs)
		const creators, maxCreates = 4, 40
		var ok, refused [creators]int
		errs := atOnce(1+creators, func(i int) error {
			if i == 0 {
				return deleteUser(rpc{t, rs[deleter].grpcCaller()}, admin, victimID)
			}
			c := i - 1
			a := rpc{t, next(deleter + 1 + c%2 + 3*(c/2))}
			for n := range maxCreates {
				if n == maxCreates/2 {
					// A lull midway: the deletion, losing to the stream
					// of commits until then, lands in it, so the rest of
					// the creates race it (without one it may land only
					// after them all, and nothing raced).
					time.Sleep(300 * time.Millisecond)
				}
				var err error
				switch n % 3 {
				case 0:
					_, err = a.create(login, &pb.CreateTokenRequest{})
				case 1:
					_, err = a.create(login, &pb.CreateTokenRequest{UserId: botID})
				default:
					_, err = a.users().CreateUser(as(login), &pb.CreateUserRequest{Username: fmt.Sprintf("%s-bot%d-%d", name, c, n), Machine: true})
				}
				switch {
				case serverError(err):
					return err
				case err != nil:
					refused[c]++
					return nil
				}
				ok[c]++
			}
			return nil
		})
		if errs[0] != nil {
			t.Errorf("round %d: deleting %s: %s", round, name, describe(errs[0]))
		}
		for _, err := range errs[1:] {
			if err != nil {
				t.Errorf("round %d: a create racing the deletion of its user: %s, want done or a 4xx", round, describe(err))
			}
		}
		t.Logf("round %d: creates done before the deletion refused them, by creator: %v (refused: %v)", round, ok, refused)
		for _, n := range refused {
			refusedAll += n
		}
		// Once the deletion is acknowledged, every replica refuses a create.
		for i := range rs {
			a := rpc{t, next(i + round)}
			if _, err := a.create(login, &pb.CreateTokenRequest{}); err == nil || serverError(err) {
				t.Errorf("round %d: a create on replica %d after the deletion of its user was acknowledged: %v, want a 4xx", round, (i+round)%len(rs), describe(err))
			}
		}
		countOnEveryNode(t, dbs, "the deleted user", 0, "SELECT COUNT(*) FROM users WHERE id = ? OR owner_id = ?", victimID, victimID)
	}
	// A deletion may land only once its round's creates are done (it loses
	// to their stream of commits: docs/scaling.md); in some round it must
	// have landed among them, or nothing raced.
	if refusedAll == 0 {
		t.Error("no create was refused in any round: every deletion came after every create, nothing raced")
	}
	countOnEveryNode(t, dbs, "tokens of a user who is gone", 0,
		"SELECT COUNT(*) FROM tokens t LEFT JOIN users u ON u.id = t.user_id WHERE u.id IS NULL")
	countOnEveryNode(t, dbs, "machine users whose owner is gone", 0,
		"SELECT COUNT(*) FROM users m LEFT JOIN users o ON o.id = m.owner_id WHERE m.owner_id IS NOT NULL AND o.id IS NULL")
}

// Last-used times under cross-node conflicts: the three replicas use the
// same tokens all the time and flush their last-used times every 20 ms, so
// their batches write the same rows on three nodes at once. No flush fails
// (a lost conflict is run again), every node ends with each token's latest
// use, and a batch of earlier uses written after a later one leaves it.
func TestLastUsedFlushesAcrossReplicasOnGalera(t *testing.T) {
	// The uses go on for at least minUse, and until a flush has lost a
	// conflict (2 to 8 in 3.5 s on the test cluster), at most maxUse.
	const tokens, minUse, maxUse = 20, 3 * time.Second, 12 * time.Second
	rs, g := galeraReplicas(t, "TOKENSERVICE_LAST_USED_FLUSH_INTERVAL", "20ms", "TOKENSERVICE_CACHE_TTL", "1m")
	rs[0].mustUser(t, "lulu", "human")
	a0 := rpc{t, rs[0].grpcCaller()}
	login := a0.login("lulu")
	toks := make([]string, tokens)
	for i := range toks {
		toks[i] = a0.mustCreate(login, &pb.CreateTokenRequest{Note: fmt.Sprint("used ", i)}).GetToken()
	}
	onEveryReplica(t, rs, "the tokens", func(_ int, s *service) error {
		for _, tok := range toks {
			if _, err := (rpc{t, s.grpcCaller()}).get(tok, idOf(tok)); err != nil {
				return err
			}
		}
		return nil
	})

	// Each replica uses every token in turn, over and over; lastStart is
	// when the last use of each token began, on any replica.
	var mu sync.Mutex
	lastStart := map[string]time.Time{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i, s := range rs {
		wg.Go(func() {
			a := rpc{t, s.grpcCaller()}
			for n := 0; !stop.Load(); n++ {
				tok := toks[(n+i*tokens/len(rs))%tokens]
				began := time.Now()
				if _, err := a.get(tok, idOf(tok)); err != nil {
					t.Errorf("replica %d using a token: %s", i, describe(err))
					return
				}
				mu.Lock()
				if began.After(lastStart[tok]) {
					lastStart[tok] = began
				}
				mu.Unlock()
			}
		})
	}
	// conflicts counts the lost conflicts run again, and the flushes that
	// failed (a conflict not run again would fail one).
	conflicts := func(rs []*service) float64 {
		n := 0.0
		for _, s := range rs {
			m := scrape(t, "http://"+s.app.MetricsAddr()+"/metrics")
			n += m["tokenservice_db_transaction_conflicts_total{}"] + m[series("tokenservice_last_used_flushes_total", "result", "error")]
		}
		return n
	}
	began := time.Now()
	for time.Since(began) < minUse || conflicts(rs) == 0 {
		if time.Since(began) > maxUse {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("no flush lost a conflict in %v of three replicas flushing the same tokens every 20 ms", maxUse)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	usedUntil := time.Now()
	t.Logf("%v of uses on three replicas: %v flushes lost a conflict", usedUntil.Sub(began).Round(time.Millisecond), conflicts(rs))

	// Every node comes to hold each token's last use (kept to the second),
	// within a few flush intervals.
	dbs := nodeDBs(t, g)
	for _, tok := range toks {
		want := lastStart[tok].UTC().Truncate(time.Second)
		for n, db := range dbs {
			for {
				var got sql.NullTime
				if err := db.QueryRow("SELECT last_used_time FROM tokens WHERE id = ?", idOf(tok)).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got.Valid && got.Time.After(usedUntil) {
					t.Fatalf("token %s: last used %v on node %d, after its last use ended (%v)", idOf(tok), got.Time, n, usedUntil)
				}
				if got.Valid && !got.Time.Before(want) {
					break
				}
				if time.Since(usedUntil) > 5*time.Second {
					t.Fatalf("token %s: last used %v on node %d 5 s after the uses ended, want its last use, %v", idOf(tok), got, n, want)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	// A batch written after a newer one does not move a time back: a
	// replica that flushes every 3 s (through the balancer) holds an
	// earlier use of each token while replica 0 writes a later one; its
	// batch, written after, leaves the later one.
	slow := startService(t, g.LB, "TOKENSERVICE_LAST_USED_FLUSH_INTERVAL", "3s", "TOKENSERVICE_CACHE_TTL", "1m")
	onEveryReplica(t, []*service{slow}, "the tokens", func(_ int, s *service) error {
		for _, tok := range toks {
			if _, err := (rpc{t, s.grpcCaller()}).get(tok, idOf(tok)); err != nil {
				return err
			}
		}
		return nil
	})
	flushes := func() float64 {
		return scrape(t, "http://"+slow.app.MetricsAddr()+"/metrics")[series("tokenservice_last_used_flushes_total", "result", "ok")]
	}
	useAll := func(s *service) time.Time {
		at := time.Now()
		for _, tok := range toks {
			if _, err := (rpc{t, s.grpcCaller()}).get(tok, idOf(tok)); err != nil {
				t.Fatalf("using a token: %s", describe(err))
			}
		}
		return at.UTC().Truncate(time.Second)
	}
	// Just after one of its flushes (the uses above), the slow replica
	// uses every token; once the clock has passed that second, replica 0
	// does, and its flush reaches every node.
	before := flushes()
	waitFor(t, "the slow replica's flush", 5*time.Second, time.Now(), func() bool { return flushes() > before })
	earlier := useAll(slow)
	for time.Now().UTC().Truncate(time.Second).Equal(earlier) {
		time.Sleep(10 * time.Millisecond) // the clock's next second
	}
	later := useAll(rs[0])
	storedOnEveryNode := func(want time.Time) bool {
		for _, db := range dbs {
			for _, tok := range toks {
				var got sql.NullTime
				if err := db.QueryRow("SELECT last_used_time FROM tokens WHERE id = ?", idOf(tok)).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if !got.Valid || !got.Time.Equal(want) {
					return false
				}
			}
		}
		return true
	}
	waitFor(t, "replica 0's later uses on every node", 2*time.Second, time.Now(), func() bool { return storedOnEveryNode(later) })
	if flushes() != before+1 {
		t.Fatalf("the slow replica flushed before replica 0's later uses were written: the machine is too slow for this check")
	}
	waitFor(t, "the slow replica's batch of earlier uses", 5*time.Second, time.Now(), func() bool { return flushes() > before+1 })
	if !storedOnEveryNode(later) {
		t.Errorf("a batch of uses at %v written after one at %v moved the tokens' last-used times back", earlier, later)
	}

	for i, s := range append(rs, slow) {
		m := scrape(t, "http://"+s.app.MetricsAddr()+"/metrics")
		if e := m[series("tokenservice_last_used_flushes_total", "result", "error")]; e != 0 {
			t.Errorf("replica %d: %v last-used flushes failed, want none (a lost conflict is run again)", i, e)
		}
		if ok := m[series("tokenservice_last_used_flushes_total", "result", "ok")]; ok == 0 {
			t.Errorf("replica %d flushed no last-used times", i)
		}
	}
}

// One audit chain from a replica on each node, sealing at once while
// events are written through each: on every node the trail is 1 to N with
// no gap or duplicate and every event once, the replicas' --audit-log
// files ship each event once between them, and audit verify passes
// against every node.
func TestOneAuditChainAcrossReplicasOnGalera(t *testing.T) {
	g := storetest.MustGalera(t)
	files, env := auditLogEnv(t, len(g.Nodes))
	rs := make([]*service, len(g.Nodes))
	for i, db := range g.Nodes {
		rs[i] = buildService(t, db, env(i)...)
	}
	for _, s := range rs {
		s.run()
	}
	onEveryReplica(t, rs, "ready", func(_ int, s *service) error { return s.app.Ready(context.Background()) })
	written := writeWhileSealing(t, rs, g.Nodes, 200)
	var n int64
	for i, db := range g.Nodes {
		synced := syncedConfig(t, db) // reads what the cluster committed
		if got := checkOneChain(t, synced, written); i == 0 {
			n = got
		} else if got != n {
			t.Errorf("node %d holds %d events, node 0 %d", i, got, n)
		}
		out := (&shell{t: t, env: map[string]string{"TOKENSERVICE_DB_DRIVER": "mysql", "TOKENSERVICE_DB_DSN": synced.DSN}}).must("", "audit", "verify")
		t.Logf("node %d: %s", i, out)
	}
	checkShipped(t, files, n)
	checkNoBrokenTrail(t, rs)
}

// syncedConfig is db with reads that wait until the node has applied what
// the cluster committed (wsrep_sync_wait, as nodeDBs).
func syncedConfig(t *testing.T, db store.Config) store.Config {
	t.Helper()
	c, err := mysqldriver.ParseDSN(db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	c.Params["wsrep_sync_wait"] = "1"
	db.DSN = c.FormatDSN()
	return db
}
