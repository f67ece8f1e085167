package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/gatewayclient"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// roundRobin is a load balancer in front of the replicas' REST ports: each
// request goes to the next one. It returns its URL and how many requests
// each replica got.
func roundRobin(t *testing.T, replicas []*service) (string, []*atomic.Int64) {
	t.Helper()
	var next atomic.Uint64
	counts := make([]*atomic.Int64, len(replicas))
	targets := make([]*url.URL, len(replicas))
	for i, r := range replicas {
		counts[i] = &atomic.Int64{}
		u, err := url.Parse(r.httpURL)
		if err != nil {
			t.Fatal(err)
		}
		targets[i] = u
	}
	lb := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		i := int(next.Add(1)-1) % len(targets)
		counts[i].Add(1)
		r.SetURL(targets[i])
		r.SetXForwarded()
	}})
	t.Cleanup(lb.Close)
	return lb.URL, counts
}

// Three replicas on one MySQL database behind one address, round-robin, as
// docs/scaling.md describes them: a full flow works whichever replica
// answers each step; a token deleted through one is refused by all within
// the cache TTL; the password limits are per replica, so three replicas
// allow three times the attempts of one (docs/scaling.md says so, and why
// to limit at the gateway too).
func TestThreeReplicasBehindOneAddress(t *testing.T) {
	const ttl = time.Second
	db := storetest.MustConfig(t, "mysql")
	replicas := []*service{
		startService(t, db, "TOKENSERVICE_CACHE_TTL", ttl.String()),
		startService(t, db, "TOKENSERVICE_CACHE_TTL", ttl.String()),
		startService(t, db, "TOKENSERVICE_CACHE_TTL", ttl.String()),
	}
	replicas[0].mustUser(t, "alice", "human")
	lbURL, counts := roundRobin(t, replicas)
	c := caller{name: "rest", conn: gatewayclient.New(lbURL, http.DefaultClient)}
	r := rpc{t, c}

	// The flow, each step on the next replica.
	owner := r.login("alice")
	bot := &pb.CreateUserResponse{}
	if err := c.call(context.Background(), pb.UserService_CreateUser_FullMethodName, owner, &pb.CreateUserRequest{Username: "alice-ci", Machine: true}, bot); err != nil {
		t.Fatalf("CreateUser: %s", describe(err))
	}
	botToken := r.mustCreate(owner, &pb.CreateTokenRequest{UserId: bot.GetUser().GetId(), Note: "ci"}).GetToken()
	for i := range 2 * len(replicas) { // every replica exchanges it and accepts the result
		resp, err := r.exchange("", botToken)
		if err != nil {
			t.Fatalf("exchange %d: %s", i, describe(err))
		}
		list, err := r.list(resp.GetAccessToken(), &pb.ListTokensRequest{})
		if err != nil || len(list.GetTokens()) != 1 || list.GetTokens()[0].GetId() != idOf(botToken) {
			t.Fatalf("list %d with the access token: %v, %s", i, list, describe(err))
		}
	}
	if _, err := r.get(owner, idOf(botToken)); err != nil {
		t.Fatalf("the owner gets its bot's token: %s", describe(err))
	}
	for i, n := range counts {
		if n.Load() < 4 {
			t.Errorf("replica %d answered %d requests of the flow: the balancer did not spread it", i, n.Load())
		}
	}

	// A delete through the balancer reaches every replica within the TTL.
	if err := r.del(owner, idOf(botToken)); err != nil {
		t.Fatal(describe(err))
	}
	deletedAt := time.Now()
	for i, rep := range replicas {
		direct := rpc{t, rep.grpcCaller()}
		for {
			_, err := direct.exchange("", botToken)
			if status.Code(err) == codes.Unauthenticated {
				break
			}
			if time.Since(deletedAt) > ttl+500*time.Millisecond {
				t.Fatalf("replica %d still exchanges the deleted token %v after the delete (cache TTL %v): %s", i, time.Since(deletedAt), ttl, describe(err))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Password limits are per replica: 10 a minute per username and
	// address on each (a bucket of 10, refilled one every 6 s), so 30
	// through three before all refuse: the 3 after them are refused but
	// for the attempts the buckets regained while these ran (on a loaded
	// machine, hashing 33 passwords can take longer than 6 s).
	var codesSeen []codes.Code
	start := time.Now()
	for range 3*10 + 3 {
		_, err := r.create("", &pb.CreateTokenRequest{Username: "mallory", Password: "wrong password!"})
		codesSeen = append(codesSeen, status.Code(err))
	}
	regained := 3 * int(time.Since(start)/(6*time.Second))
	refused := 0
	for i, code := range codesSeen {
		switch {
		case i < 3*10 && code != codes.Unauthenticated:
			t.Fatalf("password attempt %d through three replicas: %v, want Unauthenticated (all: %v)", i+1, code, codesSeen)
		case i >= 3*10 && code == codes.ResourceExhausted:
			refused++
		}
	}
	if refused < 3-regained {
		t.Fatalf("the 3 password attempts after 30 through three replicas: %d refused, want at least %d (%d regained in %v; all: %v)",
			refused, 3-regained, regained, time.Since(start), codesSeen)
	}
}
