package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
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
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tokenservice/tokenservice"
	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// service is a `tokenservice serve` running in-process through run().
type service struct {
	env      map[string]string
	httpURL  string
	grpcAddr string
	grpcConn *grpc.ClientConn
	logs     *syncBuffer
	// shutdown ends serve's context, as SIGTERM does, and returns what serve
	// returned; a second call returns the same.
	shutdown func() error
}

func (s *service) getenv(k string) string { return s.env[k] }

// startService runs `tokenservice serve` on free ports against db and stops
// it when the test ends, failing the test if it does not stop cleanly.
// extraEnv is pairs of variable and value.
func startService(t *testing.T, db store.Config, extraEnv ...string) *service {
	t.Helper()
	env := map[string]string{
		"TOKENSERVICE_DB_DRIVER":  db.Driver,
		"TOKENSERVICE_DB_DSN":     db.DSN,
		"TOKENSERVICE_HTTP_ADDR":  "127.0.0.1:0",
		"TOKENSERVICE_GRPC_ADDR":  "127.0.0.1:0",
		"TOKENSERVICE_LOG_FORMAT": "json",
		"TOKENSERVICE_LOG_LEVEL":  "debug",
		"TOKENSERVICE_ISSUER":     "http://tokenservice.test",
		// Many servers share this test process (and the race detector's
		// memory): leave its collector as Go sets it.
		"TOKENSERVICE_GC_PERCENT":       "0",
		"TOKENSERVICE_MEMORY_LIMIT_MIB": "0",
	}
	for i := 0; i+1 < len(extraEnv); i += 2 {
		env[extraEnv[i]] = extraEnv[i+1]
	}
	s := &service{env: env, logs: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"tokenservice", "serve"}, s.getenv, strings.NewReader(""), io.Discard, s.logs)
	}()
	s.shutdown = sync.OnceValue(func() error {
		cancel()
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

	deadline := time.Now().Add(20 * time.Second)
	for {
		if s.httpURL, s.grpcAddr = s.logs.servingAddrs(); s.httpURL != "" {
			break
		}
		select {
		case err := <-done:
			s.shutdown = func() error { return nil }
			t.Fatalf("serve exited early: %v\n%s", err, s.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log its addresses:\n%s", s.logs)
		}
	}
	s.httpURL = "http://" + s.httpURL
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s.grpcConn = conn
	return s
}

// cli runs a tokenservice subcommand against the service's database.
func (s *service) cli(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"tokenservice"}, args...), s.getenv, strings.NewReader(stdin), &out, &errOut)
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// mustUser creates a user through the CLI and returns its ID. kind is
// "human", "admin" or "machine:<owner username>".
func (s *service) mustUser(t *testing.T, name, kind string) string {
	t.Helper()
	args := []string{"user", "create"}
	switch {
	case kind == "admin":
		args = append(args, "--admin")
	case strings.HasPrefix(kind, "machine:"):
		args = append(args, "--machine", "--owner", strings.TrimPrefix(kind, "machine:"))
	}
	out, err := s.cli(t, password+"\n", append(args, name)...)
	if err != nil {
		t.Fatalf("user create %s: %v\n%s", name, err, out)
	}
	f := strings.Fields(out) // "created user NAME with id ID"
	return f[len(f)-1]
}

const password = "correct horse battery staple"

// syncBuffer collects the server's log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// servingAddrs returns the addresses in the "serving" log line, if logged yet.
func (b *syncBuffer) servingAddrs() (httpAddr, grpcAddr string) {
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var line struct{ Msg, HTTP, GRPC string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
			return line.HTTP, line.GRPC
		}
	}
	return "", ""
}

// caller makes one RPC over one transport. Errors are gRPC statuses on both.
type caller interface {
	call(ctx context.Context, method, bearer string, req, resp proto.Message) error
	name() string
}

// grpcCaller calls over a real gRPC connection.
type grpcCaller struct{ conn *grpc.ClientConn }

func (c grpcCaller) name() string { return "grpc" }

func (c grpcCaller) call(ctx context.Context, method, bearer string, req, resp proto.Message) error {
	if bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer)
	}
	return c.conn.Invoke(ctx, "/priv.tokenservice.v1alpha1.TokenService/"+method, req, resp)
}

// restCaller calls over HTTP/JSON as the README documents, checks each
// response against the OpenAPI spec, and turns error bodies back into statuses.
type restCaller struct {
	t      *testing.T
	base   string
	router routers.Router
}

func (c restCaller) name() string { return "rest" }

func (c restCaller) call(ctx context.Context, method, bearer string, req, resp proto.Message) error {
	var verb, path string
	var body []byte
	switch r := req.(type) {
	case *pb.CreateTokenRequest:
		verb, path, body = http.MethodPost, "/v1alpha1/tokens", mustJSON(c.t, r)
	case *pb.GetAccessTokenRequest:
		verb, path, body = http.MethodPost, "/v1alpha1/access-tokens", mustJSON(c.t, r)
	case *pb.GetTokenRequest:
		verb, path = http.MethodGet, "/v1alpha1/tokens/"+url.PathEscape(r.GetTokenId())
	case *pb.DeleteTokenRequest:
		verb, path = http.MethodDelete, "/v1alpha1/tokens/"+url.PathEscape(r.GetTokenId())
	case *pb.ListTokensRequest:
		q := url.Values{}
		if r.PageSize != 0 {
			q.Set("pageSize", strconv.Itoa(int(r.PageSize)))
		}
		if r.PageToken != "" {
			q.Set("pageToken", r.PageToken)
		}
		if r.Reverse {
			q.Set("reverse", "true")
		}
		if r.UserId != "" {
			q.Set("userId", r.UserId)
		}
		verb, path = http.MethodGet, "/v1alpha1/tokens?"+q.Encode()
	default:
		c.t.Fatalf("restCaller: no route for %T", req)
	}
	hreq, err := http.NewRequestWithContext(ctx, verb, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		hreq.Header.Set("Authorization", "Bearer "+bearer)
	}
	hresp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return err
	}
	defer hresp.Body.Close()
	respBody, err := io.ReadAll(hresp.Body)
	if err != nil {
		return err
	}
	c.validate(hreq, hresp, respBody)

	if hresp.StatusCode != http.StatusOK {
		var st struct {
			Code    codes.Code `json:"code"`
			Message string     `json:"message"`
		}
		if err := json.Unmarshal(respBody, &st); err != nil {
			c.t.Errorf("%s %s: HTTP %d with a body that is no Status: %s", verb, path, hresp.StatusCode, respBody)
			return status.Error(codes.Unknown, string(respBody))
		}
		if want := runtime.HTTPStatusFromCode(st.Code); want != hresp.StatusCode {
			c.t.Errorf("%s %s: HTTP %d for code %v, want %d", verb, path, hresp.StatusCode, st.Code, want)
		}
		if st.Code == codes.Unauthenticated && !strings.HasPrefix(hresp.Header.Get("WWW-Authenticate"), "Bearer") {
			c.t.Errorf("%s %s: 401 without a Bearer challenge: %q", verb, path, hresp.Header.Get("WWW-Authenticate"))
		}
		return status.Error(st.Code, st.Message)
	}
	return protojson.Unmarshal(respBody, resp)
}

// validate checks a response against the operation the spec gives the request.
func (c restCaller) validate(req *http.Request, resp *http.Response, body []byte) {
	c.t.Helper()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Errorf("%s %s: not in the OpenAPI spec: %v", req.Method, req.URL.Path, err)
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
		c.t.Errorf("%s %s: HTTP %d response does not match the OpenAPI spec: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

// specRouter loads the served spec, converted to OpenAPI 3 for kin-openapi.
func specRouter(t *testing.T, base string) routers.Router {
	t.Helper()
	var v2 openapi2.T
	if err := json.Unmarshal(tokenservice.OpenAPISpec, &v2); err != nil {
		t.Fatal(err)
	}
	v3, err := openapi2conv.ToV3(&v2)
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

func mustJSON(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forEachSetup runs f against a fresh service for each backend, and within
// it for each transport.
func forEachSetup(t *testing.T, f func(t *testing.T, s *service, c caller)) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		for _, c := range []caller{restCaller{t: t, base: s.httpURL, router: specRouter(t, s.httpURL)}, grpcCaller{conn: s.grpcConn}} {
			t.Run(c.name(), func(t *testing.T) {
				if rc, ok := c.(restCaller); ok {
					rc.t = t
					c = rc
				}
				f(t, s, c)
			})
		}
	})
}

func describe(err error) string { return fmt.Sprintf("%v (%v)", status.Code(err), err) }
