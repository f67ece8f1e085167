package main

import (
	"crypto/rand"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// Key rotation at the issuer: a token signed with a key the issuer has
// just published is accepted after one refetch of its JWKS (once the
// refresh interval since the last fetch has passed), and a flood of tokens
// with made-up kids costs at most one JWKS fetch per interval.
func TestFederatedIssuerKeyRotation(t *testing.T) {
	const refresh = time.Second
	f := startFedSetup(t, "sqlite", refresh)
	const sub = "system:serviceaccount:ci:deployer"
	(rpc{t: t, c: f.s.grpcCaller()}).mustCreateCredential(f.alice, f.ciID, &pb.FederatedCredential{
		Issuer: f.iss.URL, Subject: sub, Audiences: []string{audience}, Scopes: []string{"tokens:read"}})

	mustExchange(t, f.s, f.iss.token(f.iss.claims(sub, audience)))
	if n := f.iss.jwksRequests(); n != 1 {
		t.Fatalf("the first exchange fetched the JWKS %d times, want 1", n)
	}
	firstFetch := time.Now()
	rotated := f.iss.addKey("k2", jose.ES256)
	newToken := func() string { return rotated.sign(t, f.iss.claims(sub, audience), nil) }

	// Within the interval: refused, no fetch (the one before was just now).
	code, body := exchangeAt(t, f.s, newToken())
	wantRefused(t, "the new kid within the refresh interval", code, body, "invalid_request", "no ES256 key with kid 'k2'")
	if n := f.iss.jwksRequests(); n != 1 {
		t.Errorf("a token with an unknown kid within the interval fetched the JWKS: %d fetches", n)
	}
	time.Sleep(time.Until(firstFetch.Add(refresh + 50*time.Millisecond)))
	mustExchange(t, f.s, newToken())
	if n := f.iss.jwksRequests(); n != 2 {
		t.Errorf("accepting the new kid took %d JWKS fetches in all, want 2 (one refresh)", n)
	}
	// And it is cached: no more fetches for it.
	mustExchange(t, f.s, newToken())
	if n := f.iss.jwksRequests(); n != 2 {
		t.Errorf("the new key was fetched again: %d JWKS fetches", n)
	}

	// A flood of made-up kids, from many clients at once, over two
	// intervals and a bit: at most one fetch per interval.
	forger := newKey(t, "", jose.RS256)
	start, fetchesBefore := time.Now(), f.iss.jwksRequests()
	var wg sync.WaitGroup
	var sent atomic.Int64
	for range 8 {
		wg.Go(func() {
			for time.Since(start) < 2*refresh+refresh/2 {
				madeUp := &standInKey{kid: rand.Text(), alg: forger.alg, priv: forger.priv}
				forged := madeUp.sign(t, f.iss.claims(sub, audience), nil)
				code, body := exchangeAt(t, f.s, forged)
				sent.Add(1)
				if code != http.StatusBadRequest || body["error"] != "invalid_request" {
					t.Errorf("a made-up kid: HTTP %d %v", code, body)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	fetches := f.iss.jwksRequests() - fetchesBefore
	if limit := int(elapsed/refresh) + 1; fetches > limit {
		t.Errorf("a flood of unknown kids for %v caused %d JWKS fetches, want at most %d (one per %v)", elapsed, fetches, limit, refresh)
	}
	if sent.Load() < 20 {
		t.Errorf("the flood sent only %d tokens", sent.Load())
	}
	t.Logf("%d tokens with unknown kids in %v: %d JWKS fetches", sent.Load(), elapsed.Round(time.Millisecond), fetches)
}

// An issuer not on the trusted list is never fetched, whatever a token or a
// user names: not as a token's iss, nor its jku or x5u, nor a credential's
// issuer, nor the resource or audience asked for.
func TestUntrustedIssuerIsNeverFetched(t *testing.T) {
	f := startFedSetup(t, "sqlite", 10*time.Millisecond)
	untrusted := newStandIn(t) // serves a valid discovery document and JWKS, were it asked
	const sub = "repo:acme/deploy:ref:refs/heads/main"
	r := rpc{t: t, c: f.s.restCaller(t)}
	r.mustCreateCredential(f.alice, f.ciID, &pb.FederatedCredential{Issuer: f.iss.URL, Subject: sub, Audiences: []string{audience}})
	_, err := r.createCredential(f.alice, f.ciID, &pb.FederatedCredential{Issuer: untrusted.URL, Subject: sub, Audiences: []string{audience}})
	wantMessage(t, "a credential for the untrusted issuer", err, codes.InvalidArgument, "is not a trusted issuer")

	pointing := map[jose.HeaderKey]any{"jku": untrusted.URL + "/jwks", "x5u": untrusted.URL + "/cert.pem"}
	ownKey := untrusted.key("k1")
	unknownKid := newKey(t, "nope", jose.RS256)
	valid := f.iss.token(f.iss.claims(sub, audience))
	mustExchange(t, f.s, valid) // the trusted issuer's keys are cached
	for _, c := range []struct{ name, token string }{
		{"its own token", ownKey.sign(t, untrusted.claims(sub, audience), nil)},
		{"its own token, jku and x5u at itself", ownKey.sign(t, untrusted.claims(sub, audience), pointing)},
		{"the trusted issuer's iss, jku and x5u at the untrusted one, its key", ownKey.sign(t, f.iss.claims(sub, audience), pointing)},
		{"the trusted issuer's iss, an unknown kid, jku and x5u at the untrusted one", unknownKid.sign(t, f.iss.claims(sub, audience), pointing)},
	} {
		time.Sleep(20 * time.Millisecond) // past the refresh interval: a kid miss may fetch, from the trusted issuer
		code, body := exchangeAt(t, f.s, c.token)
		wantRefused(t, c.name, code, body, "invalid_request")
	}
	for _, target := range []string{"resource", "audience"} {
		code, body := exchangeAt(t, f.s, valid, target, untrusted.URL)
		wantRefused(t, target+" at the untrusted issuer", code, body, "invalid_target")
	}
	if n := untrusted.requests(""); n != 0 {
		t.Errorf("the untrusted issuer was asked %d times", n)
	}
	if f.iss.jwksRequests() < 2 {
		t.Errorf("the trusted issuer's JWKS was fetched %d times: the unknown kid should have caused a refetch there", f.iss.jwksRequests())
	}
}

// A deleted federated credential: exchanges through it are refused at once
// on the replica that deleted it and within the cache TTL on another
// sharing the database, and so are the access tokens it gave, as bearers.
func TestDeletedFederatedCredentialReachesEveryReplica(t *testing.T) {
	const ttl = time.Second
	iss := newStandIn(t)
	db := storetest.MustConfig(t, "mysql")
	env := append(trusting(time.Minute, iss), "TOKENSERVICE_CACHE_TTL", ttl.String())
	a, b := startService(t, db, env...), startService(t, db, env...)
	a.mustUser(t, "alice", "human")
	ciID := a.mustUser(t, "alice-ci", "machine:alice")
	ra, rb := rpc{t: t, c: a.grpcCaller()}, rpc{t: t, c: b.restCaller(t)}
	owner := ra.login("alice")
	const sub = "repo:acme/deploy:ref:refs/heads/main"
	cred := ra.mustCreateCredential(owner, ciID, &pb.FederatedCredential{
		Issuer: iss.URL, Subject: sub, Audiences: []string{audience}, Scopes: []string{"tokens:read"}})

	// Both replicas have exchanged through it and accepted its access token.
	accessA, accessB := mustExchange(t, a, iss.token(iss.claims(sub, audience))), mustExchange(t, b, iss.token(iss.claims(sub, audience)))
	for _, x := range []struct {
		r      rpc
		access string
	}{{ra, accessA}, {rb, accessB}} {
		if _, err := x.r.list(x.access, &pb.ListTokensRequest{}); err != nil {
			t.Fatalf("the access token before the delete: %s", describe(err))
		}
	}

	if err := ra.deleteCredential(owner, ciID, cred.GetId()); err != nil {
		t.Fatal(describe(err))
	}
	deletedAt := time.Now()
	code, body := exchangeAt(t, a, iss.token(iss.claims(sub, audience)))
	wantRefused(t, "an exchange on the deleting replica right after the delete", code, body, "invalid_request", "no federated credential accepts")
	_, err := ra.list(accessA, &pb.ListTokensRequest{})
	wantCode(t, "its access token on the deleting replica right after the delete", err, codes.Unauthenticated)

	waitFor(t, "the other replica refusing the deleted credential and its access token", ttl, deletedAt, func() bool {
		code, _ := exchangeAt(t, b, iss.token(iss.claims(sub, audience)))
		_, err := rb.list(accessB, &pb.ListTokensRequest{})
		return code == http.StatusBadRequest && status.Code(err) == codes.Unauthenticated
	})
}
