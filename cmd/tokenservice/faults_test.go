package main

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// The database tests below run against MySQL through a TCP proxy the test
// owns, so it can cut the database away (connections dropped, new ones
// refused) or stall it (connections open, no bytes pass) and bring it back.

const faultQueryTimeout = time.Second

// readyState returns the HTTP status of /readyz and the gRPC health status.
func (s *service) readyState(t *testing.T) (int, grpc_health_v1.HealthCheckResponse_ServingStatus) {
	t.Helper()
	code := 0
	if resp, err := http.Get(s.httpURL + "/readyz"); err == nil {
		code = resp.StatusCode
		resp.Body.Close()
		if code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Errorf("/readyz 503 without Retry-After")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc, err := grpc_health_v1.NewHealthClient(s.grpcConn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: pb.TokenService_ServiceDesc.ServiceName})
	if err != nil {
		t.Fatalf("gRPC health check: %v", err)
	}
	return code, hc.GetStatus()
}

// waitReady waits until both /readyz and gRPC health say ready (want true)
// or not ready (want false), and returns how long that took.
func (s *service) waitReady(t *testing.T, want bool, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		code, hs := s.readyState(t)
		if (code == http.StatusOK && hs == grpc_health_v1.HealthCheckResponse_SERVING) == want &&
			(code == http.StatusServiceUnavailable && hs == grpc_health_v1.HealthCheckResponse_NOT_SERVING) == !want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("not ready=%v within %v: /readyz %d, gRPC health %v", want, within, code, hs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// timedCall makes one call with a generous client deadline and returns its
// error and duration: the service's own database deadline must end it first.
func timedCall(c caller, method, bearer string, req, resp proto.Message) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := c.call(ctx, method, bearer, req, resp)
	return time.Since(start), err
}

func TestStartsWithoutDatabaseAndBecomesReady(t *testing.T) {
	db, proxy := storetest.MustMySQLViaProxy(t)
	proxy.Cut()
	s := startServiceUnready(t, db, "TOKENSERVICE_DB_QUERY_TIMEOUT", faultQueryTimeout.String())

	s.waitReady(t, false, 0)
	resp, err := http.Get(s.httpURL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("JWKS before the database answered: HTTP %d, want 503", resp.StatusCode)
	}
	for _, c := range s.callers(t) {
		_, err := timedCall(c, pb.TokenService_GetAccessToken_FullMethodName, "", &pb.GetAccessTokenRequest{Token: "tks_x"}, &pb.GetAccessTokenResponse{})
		wantCode(t, c.name+": GetAccessToken before ready", err, codes.Unavailable)
		_, err = timedCall(c, pb.TokenService_CreateToken_FullMethodName, "", &pb.CreateTokenRequest{Username: "alice", Password: password}, &pb.CreateTokenResponse{})
		wantCode(t, c.name+": CreateToken before ready", err, codes.Unavailable)
	}

	proxy.Restore()
	took := s.waitReady(t, true, 15*time.Second)
	t.Logf("ready %v after the database came back", took.Round(time.Millisecond))
	s.mustUser(t, "alice", "human")
	for _, c := range s.callers(t) {
		a := rpc{t: t, c: c}
		tok := a.login("alice")
		if _, err := a.exchange("", tok); err != nil {
			t.Errorf("%s: exchange once ready: %s", c.name, describe(err))
		}
	}
}

// outcome is one call made by the load generator.
type outcome struct {
	at   time.Time
	took time.Duration
	code codes.Code
}

func TestDatabaseGoesAwayUnderLoad(t *testing.T) {
	db, proxy := storetest.MustMySQLViaProxy(t)
	// No token cache: every call must reach the database (with the cache,
	// recently used tokens keep working through a short outage).
	s := startService(t, db, "TOKENSERVICE_DB_QUERY_TIMEOUT", faultQueryTimeout.String(), "TOKENSERVICE_CACHE_TTL", "0")
	s.mustUser(t, "alice", "human")
	callers := s.callers(t)
	tok := rpc{t: t, c: callers[1]}.login("alice")

	var mu sync.Mutex
	var outcomes []outcome
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			c := callers[w%2]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var took time.Duration
				var err error
				if i%2 == 0 {
					took, err = timedCall(c, pb.TokenService_GetAccessToken_FullMethodName, "", &pb.GetAccessTokenRequest{Token: tok}, &pb.GetAccessTokenResponse{})
				} else {
					took, err = timedCall(c, pb.TokenService_GetToken_FullMethodName, tok, &pb.GetTokenRequest{TokenId: idOf(tok)}, &pb.GetTokenResponse{})
				}
				mu.Lock()
				outcomes = append(outcomes, outcome{at: time.Now(), took: took, code: status.Code(err)})
				mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond) // a client backing off
				}
			}
		})
	}
	since := func(t0 time.Time) (ok, unavailable, other int, slowest time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range outcomes {
			if o.at.Before(t0) {
				continue
			}
			switch o.code {
			case codes.OK:
				ok++
			case codes.Unavailable:
				unavailable++
			default:
				other++
			}
			slowest = max(slowest, o.took)
		}
		return
	}

	time.Sleep(500 * time.Millisecond)
	for _, fault := range []struct {
		name  string
		apply func()
	}{{"cut", proxy.Cut}, {"stall", proxy.Stall}} {
		faultStart := time.Now()
		fault.apply()
		s.waitReady(t, false, 5*time.Second)
		time.Sleep(2 * time.Second)
		restored := time.Now()
		proxy.Restore()
		recovery := s.waitReady(t, true, 15*time.Second)
		for { // first success after the restore
			if ok, _, _, _ := since(restored); ok > 0 {
				break
			}
			if time.Since(restored) > 15*time.Second {
				t.Fatalf("%s: no request succeeded within 15s of the database coming back", fault.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		served := time.Since(restored)
		time.Sleep(500 * time.Millisecond)
		ok, unavailable, other, slowest := since(faultStart)
		t.Logf("%s: %d ok, %d UNAVAILABLE, %d other; slowest call %v; ready again %v and serving %v after the restore",
			fault.name, ok, unavailable, other, slowest.Round(time.Millisecond), recovery.Round(time.Millisecond), served.Round(time.Millisecond))
		if unavailable == 0 {
			t.Errorf("%s: no request failed with UNAVAILABLE while the database was away", fault.name)
		}
		if other > 0 {
			t.Errorf("%s: %d requests failed with a code other than UNAVAILABLE", fault.name, other)
		}
		// A request makes at most two database calls, each bounded.
		if limit := 2*faultQueryTimeout + time.Second; slowest > limit {
			t.Errorf("%s: a request took %v, past the database deadline (%v a call)", fault.name, slowest, faultQueryTimeout)
		}
		if served > 10*time.Second {
			t.Errorf("%s: serving again took %v after the database came back", fault.name, served)
		}
	}
	close(stop)
	wg.Wait()
	if ok, _, _, _ := since(time.Time{}); ok == 0 {
		t.Error("no request succeeded at all")
	}
}

func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	db, proxy := storetest.MustMySQLViaProxy(t)
	s := startService(t, db, "TOKENSERVICE_DB_QUERY_TIMEOUT", "20s", "TOKENSERVICE_SHUTDOWN_TIMEOUT", "15s")
	s.mustUser(t, "alice", "human")
	callers := s.callers(t)
	tok := rpc{t: t, c: callers[1]}.login("alice")

	// A stalled database makes the requests slow: they are in flight when
	// the shutdown starts, and finish when the database answers again.
	proxy.Stall()
	inFlight := make(chan error, len(callers))
	for _, c := range callers {
		go func() {
			_, err := timedCall(c, pb.TokenService_GetAccessToken_FullMethodName, "", &pb.GetAccessTokenRequest{Token: tok}, &pb.GetAccessTokenResponse{})
			inFlight <- err
		}()
	}
	time.Sleep(300 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- s.shutdown() }()
	time.Sleep(300 * time.Millisecond)

	// New requests are refused while the old ones run.
	if resp, err := http.Get(s.httpURL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("a new HTTP request during shutdown got HTTP %d, want the connection refused", resp.StatusCode)
	}
	_, err := timedCall(callers[1], pb.TokenService_GetAccessToken_FullMethodName, "", &pb.GetAccessTokenRequest{Token: tok}, &pb.GetAccessTokenResponse{})
	wantCode(t, "a new gRPC request during shutdown", err, codes.Unavailable)
	select {
	case err := <-stopped:
		t.Fatalf("serve returned (%v) with requests in flight\n%s", err, s.logs)
	case err := <-inFlight:
		t.Fatalf("an in-flight request ended (%s) before the database answered", describe(err))
	default:
	}

	proxy.Restore()
	for range callers {
		if err := <-inFlight; err != nil {
			t.Errorf("in-flight request during shutdown: %s", describe(err))
		}
	}
	if err := <-stopped; err != nil {
		t.Errorf("serve returned %v", err)
	}
	// The uses the in-flight requests made were written at shutdown, after them.
	var n int
	if err := s.openDB(t).QueryRow("SELECT COUNT(*) FROM tokens WHERE id = ? AND last_used_time IS NOT NULL", idOf(tok)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Error("the in-flight exchanges' use of the token was not recorded at shutdown")
	}
}
