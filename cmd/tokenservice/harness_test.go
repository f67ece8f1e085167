package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tokenservice/tokenservice"
	"github.com/tokenservice/tokenservice/internal/testlog"
	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/gatewayclient"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// service is a `tokenservice serve` running in-process: its flags parsed and
// the application built as serve does, then run.
type service struct {
	t        *testing.T
	env      map[string]string
	app      *app.App
	httpURL  string
	grpcAddr string
	grpcConn *grpc.ClientConn
	logs     *testlog.Buffer // the server's log lines
	// run starts serve (buildService); a second call does nothing.
	run func()
	// exited is closed when serve has returned, runErr then what it returned.
	exited chan struct{}
	runErr error
	// shutdown ends serve's context, as SIGTERM does, and returns what Run
	// returned; a second call returns the same.
	shutdown func() error
}

func (s *service) getenv(k string) string { return s.env[k] }

// startService runs serve on free ports against db, waits until it is ready,
// and stops it when the test ends, failing the test if it does not stop
// cleanly. extraEnv is pairs of variable and value.
func startService(t *testing.T, db store.Config, extraEnv ...string) *service {
	t.Helper()
	s := startServiceUnready(t, db, extraEnv...)
	for deadline := time.Now().Add(20 * time.Second); s.app.Ready(context.Background()) != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready within 20s: %v\n%s", s.app.Ready(context.Background()), s.logs)
		}
	}
	return s
}

// twoReplicas starts two services on one fresh MySQL database (the replicas
// of a deployment share a database server; SQLite has none to share), each
// caching tokens and users for ttl.
func twoReplicas(t *testing.T, extraEnv ...string) (a, b *service) {
	t.Helper()
	db := storetest.MustConfig(t, "mysql")
	return startService(t, db, extraEnv...), startService(t, db, extraEnv...)
}

// revocationBound is how late, with the default settings, a revocation
// through one replica may take effect on another: the change feed's poll
// interval (1 s) and half a second for the poll's query (docs/scaling.md).
const revocationBound = 1500 * time.Millisecond

// waitFor polls done until it holds, failing the test if that takes more
// than bound (plus half a second of slack) from since.
func waitFor(t *testing.T, what string, bound time.Duration, since time.Time, done func() bool) {
	t.Helper()
	for !done() {
		if time.Since(since) > bound+500*time.Millisecond {
			t.Fatalf("waited %v for %s, want at most %v", time.Since(since).Round(time.Millisecond), what, bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s: %v", what, time.Since(since).Round(time.Millisecond))
}

// startServiceUnready is startService without waiting for the database.
func startServiceUnready(t *testing.T, db store.Config, extraEnv ...string) *service {
	t.Helper()
	s := buildService(t, db, extraEnv...)
	s.run()
	return s
}

// buildService is startServiceUnready up to serve's listening: its run
// starts it (once), so that several can start at the same moment. One not
// run when the test ends is run then, with its context ended.
func buildService(t *testing.T, db store.Config, extraEnv ...string) *service {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a server: make test runs it, make test-fast (-short) does not")
	}
	env := map[string]string{
		"TOKENSERVICE_DB_DRIVER":    db.Driver,
		"TOKENSERVICE_DB_DSN":       db.DSN,
		"TOKENSERVICE_HTTP_ADDR":    "127.0.0.1:0",
		"TOKENSERVICE_GRPC_ADDR":    "127.0.0.1:0",
		"TOKENSERVICE_METRICS_ADDR": "127.0.0.1:0",
		"TOKENSERVICE_LOG_FORMAT":   "json",
		"TOKENSERVICE_LOG_LEVEL":    "debug",
		"TOKENSERVICE_ISSUER":       "http://tokenservice.test",
		// Many servers share this test process (and the race detector's
		// memory): leave its collector as Go sets it.
		"TOKENSERVICE_GC_PERCENT":       "0",
		"TOKENSERVICE_MEMORY_LIMIT_MIB": "0",
	}
	for i := 0; i+1 < len(extraEnv); i += 2 {
		env[extraEnv[i]] = extraEnv[i+1]
	}
	s := &service{t: t, env: env, logs: &testlog.Buffer{}}
	t.Cleanup(func() {
		// A failed test shows what the server logged as internal errors:
		// the answers only say "internal error".
		if t.Failed() {
			for _, line := range s.logs.JSONLines() {
				if line["code"] == codes.Internal.String() {
					t.Logf("the server logged: %v", line)
				}
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newServeApp(ctx, nil, s.getenv, s.logs)
	if err != nil {
		cancel()
		t.Fatalf("serve: %v\n%s", err, s.logs)
	}
	s.app, s.httpURL, s.grpcAddr = a, "http://"+a.HTTPAddr(), a.GRPCAddr()
	done := make(chan error, 1)
	s.exited = make(chan struct{})
	s.run = sync.OnceFunc(func() {
		go func() {
			err := a.Run(ctx)
			s.runErr = err
			close(s.exited)
			done <- err
		}()
	})
	s.shutdown = sync.OnceValue(func() error {
		cancel()
		s.run()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return fmt.Errorf("serve did not stop within 20s of its context ending")
		}
	})
	t.Cleanup(func() {
		if err := s.shutdown(); err != nil {
			t.Errorf("serve returned %v", err)
		}
	})
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s.grpcConn = conn
	return s
}

// mustUser creates a user through the users service, as the server-side
// bootstrap command and the API do, and returns its ID. kind is "human",
// "admin" or "machine:<owner username>".
func (s *service) mustUser(t *testing.T, name, kind string) string {
	t.Helper()
	ctx, op := context.Background(), users.Operator()
	in := users.CreateInput{Username: name, Password: password, Admin: kind == "admin"}
	if owner, ok := strings.CutPrefix(kind, "machine:"); ok {
		o, err := s.app.Users().GetByUsername(ctx, op, owner)
		if err != nil {
			t.Fatalf("owner %s: %v", owner, err)
		}
		in = users.CreateInput{Username: name, Machine: true, OwnerID: o.ID}
	}
	u, err := s.app.Users().Create(ctx, op, in)
	if err != nil {
		t.Fatalf("creating user %s: %v", name, err)
	}
	return u.ID
}

const password = "correct horse battery staple"

// caller reaches the service over one transport: the gRPC connection, or
// gatewayclient over REST, whose routes come from the proto's HTTP
// annotations. Both call methods by full name.
type caller struct {
	name string
	conn grpc.ClientConnInterface
}

// call invokes fullMethod, with bearer (if any) as the Authorization credential.
func (c caller) call(ctx context.Context, fullMethod, bearer string, req, resp proto.Message) error {
	if bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer)
	}
	return c.conn.Invoke(ctx, fullMethod, req, resp)
}

// grpcCaller calls over the service's gRPC connection; every error answer
// is checked for internal text, as every REST one is.
func (s *service) grpcCaller() caller {
	return caller{name: "grpc", conn: checkedConn{ClientConnInterface: s.grpcConn, t: s.t}}
}

// checkedConn fails the test when an error answer speaks Go, protobuf or
// the database.
type checkedConn struct {
	grpc.ClientConnInterface
	t *testing.T
}

func (c checkedConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	err := c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
	if st, ok := status.FromError(err); ok && err != nil && st.Code() != codes.Canceled && st.Code() != codes.DeadlineExceeded {
		if leak := internals(st.Message()); leak != "" {
			c.t.Errorf("%s: the error answer speaks of %s: %s", method, leak, st.Message())
		}
	}
	return err
}

// restCaller calls over REST and checks every answer: against the operation
// the OpenAPI spec gives the request, its status against the gateway's
// mapping of the code, and a 401's Bearer challenge.
func (s *service) restCaller(t *testing.T) caller {
	router := specRouter(t, s.httpURL)
	check := func(req *http.Request, resp *http.Response, body []byte) {
		validate(t, router, req, resp, body)
		if resp.StatusCode == http.StatusOK {
			return
		}
		var st struct {
			Code    codes.Code `json:"code"`
			Message string     `json:"message"`
		}
		if err := json.Unmarshal(body, &st); err != nil {
			t.Errorf("%s %s: HTTP %d with a body that is no Status: %s", req.Method, req.URL, resp.StatusCode, body)
			return
		}
		if want := runtime.HTTPStatusFromCode(st.Code); want != resp.StatusCode {
			t.Errorf("%s %s: HTTP %d for code %v, want %d", req.Method, req.URL, resp.StatusCode, st.Code, want)
		}
		if st.Code == codes.Unauthenticated && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s: 401 without a Bearer challenge: %q", req.Method, req.URL, resp.Header.Get("WWW-Authenticate"))
		}
		// RFC 6750 §3.1: a missing scope is a 403 with an insufficient_scope challenge naming it.
		if st.Code == codes.PermissionDenied && strings.Contains(string(body), `"INSUFFICIENT_SCOPE"`) &&
			!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope", scope="`) {
			t.Errorf("%s %s: 403 INSUFFICIENT_SCOPE without an insufficient_scope challenge: %q", req.Method, req.URL, resp.Header.Get("WWW-Authenticate"))
		}
		// RFC 9110 §10.2.3: a 503 says when to come back.
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", req.Method, req.URL)
		}
		if leak := internals(st.Message); leak != "" {
			t.Errorf("%s %s: the error answer speaks of %s: %s", req.Method, req.URL, leak, st.Message)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: HTTP %d without X-Request-Id", req.Method, req.URL, resp.StatusCode)
		}
	}
	return caller{name: "rest", conn: gatewayclient.New(s.httpURL, http.DefaultClient, gatewayclient.WithCheck(check))}
}

// callers returns the REST and the gRPC caller of s.
func (s *service) callers(t *testing.T) []caller {
	return []caller{s.restCaller(t), s.grpcCaller()}
}

// validate checks a response against the operation the spec gives the request.
func validate(t *testing.T, router routers.Router, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s: not in the OpenAPI spec: %v", req.Method, req.URL.Path, err)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s: HTTP %d response does not match the OpenAPI spec: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

// specRouter loads the served OpenAPI 3 document.
func specRouter(t *testing.T, base string) routers.Router {
	t.Helper()
	v3, err := openapi3.NewLoader().LoadFromData(tokenservice.OpenAPISpec)
	if err != nil {
		t.Fatal(err)
	}
	if err := v3.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI spec is invalid: %v", err)
	}
	v3.Servers = append(v3.Servers[:0], &openapi3.Server{URL: base})
	router, err := gorillamux.NewRouter(v3)
	if err != nil {
		t.Fatal(err)
	}
	return router
}

// forEachSetup runs f against a fresh service for each backend, and within
// it for each transport.
func forEachSetup(t *testing.T, f func(t *testing.T, s *service, c caller)) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		for _, name := range []string{"rest", "grpc"} {
			t.Run(name, func(t *testing.T) {
				c := s.grpcCaller()
				if name == "rest" {
					c = s.restCaller(t)
				}
				f(t, s, c)
			})
		}
	})
}

func describe(err error) string { return fmt.Sprintf("%v (%v)", status.Code(err), err) }
