package main

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// Two replicas on one database, each caching tokens for --cache-ttl: a token
// deleted through one stops working there at once, and on the other within
// the TTL, both as an API token and through its access tokens.
func TestRevocationReachesEveryReplicaWithinTheCacheTTL(t *testing.T) {
	const ttl = time.Second
	a, b := twoReplicas(t, ttl)
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
	for !refused() {
		if time.Since(deletedAt) > ttl+500*time.Millisecond {
			t.Fatalf("the other replica still accepts the deleted token %v after the delete (cache TTL %v)", time.Since(deletedAt), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the other replica refused the deleted token %v after the delete (cache TTL %v)", time.Since(deletedAt).Round(time.Millisecond), ttl)
}

// Deleting a user revokes its tokens as deleting a token does: at once on the
// replica that deleted it, within the cache TTL on the others.
func TestUserDeletionReachesEveryReplicaWithinTheCacheTTL(t *testing.T) {
	const ttl = time.Second
	a, b := twoReplicas(t, ttl)
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
	for {
		_, err := rb.list(botTok, &pb.ListTokensRequest{})
		if status.Code(err) == codes.Unauthenticated {
			break
		}
		if time.Since(deletedAt) > ttl+500*time.Millisecond {
			t.Fatalf("the other replica still accepts the deleted user's token %v after the delete (cache TTL %v)", time.Since(deletedAt), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the other replica refused the deleted user's token %v after the delete (cache TTL %v)", time.Since(deletedAt).Round(time.Millisecond), ttl)
}
