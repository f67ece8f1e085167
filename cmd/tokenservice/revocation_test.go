package main

import (
	"fmt"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// Two replicas on one database, with the default settings: a token deleted
// through one stops working there at once, and on the other within the
// revocation bound (the change feed's poll), both as an API token and
// through its access tokens, though the other's cache would keep it for
// minutes.
func TestRevocationReachesEveryReplicaWithinThePollBound(t *testing.T) {
	a, b := twoReplicas(t)
	a.mustUser(t, "alice", "human")
	ra, rb := rpc{t: t, c: a.grpcCaller()}, rpc{t: t, c: b.grpcCaller()}
	owner := ra.login("alice")
	victim := ra.mustCreate(owner, &pb.CreateTokenRequest{Note: "to be deleted"}).GetToken()

	// Both replicas have used (and so cached) the token.
	var jwtA, jwtB string
	for _, r := range []struct {
		rpc
		jwt *string
	}{{ra, &jwtA}, {rb, &jwtB}} {
		resp, err := r.exchange("", victim)
		if err != nil {
			t.Fatalf("exchange before the delete: %s", describe(err))
		}
		*r.jwt = resp.GetAccessToken()
		if _, err := r.get(*r.jwt, idOf(victim)); err != nil {
			t.Fatalf("bearer before the delete: %s", describe(err))
		}
	}

	if err := ra.del(owner, idOf(victim)); err != nil {
		t.Fatal(err)
	}
	deletedAt := time.Now()
	_, err := ra.exchange("", victim)
	wantCode(t, "exchange on the deleting replica right after the delete", err, codes.Unauthenticated)
	_, err = ra.get(jwtA, idOf(victim))
	wantCode(t, "its access token on the deleting replica right after the delete", err, codes.Unauthenticated)

	refused := func() bool {
		_, errExchange := rb.exchange("", victim)
		_, errBearer := rb.get(jwtB, idOf(victim))
		return status.Code(errExchange) == codes.Unauthenticated && status.Code(errBearer) == codes.Unauthenticated
	}
	waitWithin(t, "the other replica to refuse the deleted token", revocationBound, deletedAt, refused)
}

// Deleting a user revokes its tokens as deleting a token does: at once on the
// replica that deleted it, within the revocation bound on the others.
func TestUserDeletionReachesEveryReplicaWithinThePollBound(t *testing.T) {
	a, b := twoReplicas(t)
	a.mustUser(t, "alice", "human")
	botID := a.mustUser(t, "alice-ci", "machine:alice")
	ra, rb := rpc{t: t, c: a.grpcCaller()}, rpc{t: t, c: b.grpcCaller()}
	owner := ra.login("alice")
	botTok := ra.mustCreate(owner, &pb.CreateTokenRequest{UserId: botID}).GetToken()
	for _, r := range []rpc{ra, rb} {
		if _, err := r.list(botTok, &pb.ListTokensRequest{}); err != nil {
			t.Fatalf("the machine user's token before the delete: %s", describe(err))
		}
	}
	if err := deleteUser(ra, owner, botID); err != nil {
		t.Fatal(describe(err))
	}
	deletedAt := time.Now()
	_, err := ra.list(botTok, &pb.ListTokensRequest{})
	wantCode(t, "the deleted user's token on the deleting replica", err, codes.Unauthenticated)
	waitWithin(t, "the other replica to refuse the deleted user's token", revocationBound, deletedAt, func() bool {
		_, err := rb.list(botTok, &pb.ListTokensRequest{})
		return status.Code(err) == codes.Unauthenticated
	})
}

// A replica cut off from the database cannot read the change feed: it
// never serves a token revoked meanwhile past the cache TTL after its last
// poll (it answers from the database, which it cannot reach, so it
// refuses), and when the database returns it catches up from its cursor:
// the token is refused, not served again.
func TestRevocationBoundHoldsWhileTheFeedIsCut(t *testing.T) {
	viaProxy, proxy := storetest.MustMySQLViaProxy(t)
	direct := viaProxy
	cfg, err := mysqldriver.ParseDSN(viaProxy.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = proxy.Target()
	direct.DSN = cfg.FormatDSN()
	const ttl = 2 * time.Second
	a := startService(t, direct)
	b := startService(t, viaProxy, "TOKENSERVICE_CACHE_TTL", ttl.String(), "TOKENSERVICE_DB_QUERY_TIMEOUT", faultQueryTimeout.String())
	a.mustUser(t, "alice", "human")
	ra, rb := rpc{t: t, c: a.grpcCaller()}, rpc{t: t, c: b.grpcCaller()}
	owner := ra.login("alice")
	victim := ra.mustCreate(owner, &pb.CreateTokenRequest{}).GetToken()
	if _, err := rb.exchange("", victim); err != nil { // cached on b
		t.Fatal(describe(err))
	}

	proxy.Cut()
	cutAt := time.Now()
	if err := ra.del(owner, idOf(victim)); err != nil {
		t.Fatal(err)
	}
	// Served from b's cache until the TTL after its last poll (which began
	// before the cut), then never again: no exchange that began after that
	// succeeds.
	bound := cutAt.Add(ttl)
	refusals := 0
	for refusals < 10 {
		began := time.Now()
		_, err := rb.exchange("", victim)
		switch {
		case err == nil && began.After(bound):
			t.Fatalf("the cut-off replica served the deleted token %v after the cut, past the cache TTL (%v)", began.Sub(cutAt).Round(time.Millisecond), ttl)
		case err != nil:
			refusals++
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the cut-off replica refused the deleted token %v after the cut (cache TTL %v)", time.Since(cutAt).Round(time.Millisecond), ttl)

	proxy.Restore()
	restoredAt := time.Now()
	waitWithin(t, "the replica to refuse the token as deleted once the database returns", 10*time.Second, restoredAt, func() bool {
		_, err := rb.exchange("", victim)
		return status.Code(err) == codes.Unauthenticated
	})
}

// waitWithin polls done until it holds, failing the test if that takes
// more than bound from since.
func waitWithin(t *testing.T, what string, bound time.Duration, since time.Time, done func() bool) {
	t.Helper()
	for !done() {
		if time.Since(since) > bound {
			t.Fatalf("waited %v for %s, want at most %v", time.Since(since).Round(time.Millisecond), what, bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s: %v (bound %v)", what, time.Since(since).Round(time.Millisecond), bound)
}

// On a Galera cluster, replicas on different nodes, default settings: a
// flood of revocations (a user's 1,000 tokens, deleted with the user
// through one node's replica) reaches the replicas on the other nodes
// within the revocation bound, every token of it.
func TestRevocationFloodReachesEveryNodeOnGalera(t *testing.T) {
	rs, _ := galeraReplicas(t)
	rs[0].mustUser(t, "alice", "human")
	botID := rs[0].mustUser(t, "alice-ci", "machine:alice")
	r0 := rpc{t: t, c: rs[0].grpcCaller()}
	owner := r0.login("alice")
	const n = 1000
	var toks []string
	for range n {
		toks = append(toks, r0.mustCreate(owner, &pb.CreateTokenRequest{UserId: botID}).GetToken())
	}
	// Every token used (and so cached) on the other nodes' replicas.
	for _, s := range rs[1:] {
		r := rpc{t: t, c: s.grpcCaller()}
		for _, tok := range toks {
			if _, err := r.exchange("", tok); err != nil {
				t.Fatalf("exchange before the delete: %s", describe(err))
			}
		}
	}
	if err := deleteUser(r0, owner, botID); err != nil {
		t.Fatal(describe(err))
	}
	deletedAt := time.Now()
	for i, s := range rs[1:] {
		r := rpc{t: t, c: s.grpcCaller()}
		waitWithin(t, fmt.Sprintf("replica %d to refuse the last of the deleted user's tokens", i+1), revocationBound, deletedAt, func() bool {
			_, err := r.exchange("", toks[n-1])
			return status.Code(err) == codes.Unauthenticated
		})
	}
	for i, s := range rs[1:] {
		r := rpc{t: t, c: s.grpcCaller()}
		for _, tok := range toks {
			if _, err := r.exchange("", tok); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("replica %d still exchanges a deleted token after the bound: %s", i+1, describe(err))
			}
		}
	}
}
