package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/gatewayclient"
	"github.com/tokenservice/tokenservice/pkg/httprule"
)

// clients reaches one server over REST and gRPC.
type clients struct {
	httpURL string
	http    *http.Client
	rest    *gatewayclient.Conn // the routes, from the proto's HTTP annotations
	conns   []*grpc.ClientConn
}

func newClients(srv *server, grpcConns int) (*clients, error) {
	c := &clients{
		httpURL: srv.httpURL,
		http: &http.Client{Transport: &http.Transport{
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 4096,
			DisableCompression:  true,
		}},
	}
	c.rest = gatewayclient.New(srv.httpURL, c.http)
	for range max(grpcConns, 1) {
		conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		c.conns = append(c.conns, conn)
	}
	return c, nil
}

func (c *clients) close() {
	for _, conn := range c.conns {
		conn.Close()
	}
	c.http.CloseIdleConnections()
}

func (c *clients) grpc(worker int) *grpc.ClientConn { return c.conns[worker%len(c.conns)] }

// get makes one plain GET and wants 200.
func (c *clients) get(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.httpURL+path, nil)
	if err != nil {
		return err
	}
	return c.do(req, http.StatusOK)
}

// do sends req and wants the status want, discarding the body.
func (c *clients) do(req *http.Request, want int) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: HTTP %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, want, b)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

func withBearer(ctx context.Context, bearer string) context.Context {
	if bearer == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer)
}

// fixture is the data the scenarios use.
type fixture struct {
	apiToken    string // alice's API token
	apiTokenID  string
	accessToken string // minted from apiToken
	listToken   string // an API token of the user with many tokens
	// machineUserID is alice's machine user ci-bot, whose federated
	// credential accepts the stand-in issuer's tokens (seedFederation).
	machineUserID string
	// deletable holds, by transport, alice's tokens delete deletes over
	// it (fillDeletable).
	deletable map[string]*idPool
	// fleet is the fleet scenarios' tokens (seedFleet); nil when none
	// runs.
	fleet *fleet
}

func newFixture() *fixture {
	return &fixture{deletable: map[string]*idPool{"rest": {}, "grpc": {}}}
}

// pool returns the fixture's tokens to delete over a transport.
func (f *fixture) pool(transport string) *idPool { return f.deletable[transport] }

// idPool is a set of token IDs shared by a scenario's callers.
type idPool struct {
	mu  sync.Mutex
	ids []string
}

func (p *idPool) put(id string) {
	p.mu.Lock()
	p.ids = append(p.ids, id)
	p.mu.Unlock()
}

// take removes and returns an ID; false when none is left.
func (p *idPool) take() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) == 0 {
		return "", false
	}
	id := p.ids[len(p.ids)-1]
	p.ids = p.ids[:len(p.ids)-1]
	return id, true
}

// scenario is one measured request kind, over each transport.
type scenario struct {
	name string
	rest func(f *fixture, c *clients) op
	grpc func(f *fixture, c *clients) op
}

// apiCall is the one request an API scenario repeats, by full method name.
type apiCall struct {
	method string
	bearer func(f *fixture) string
	req    func(f *fixture) proto.Message
	want   codes.Code // OK, or the refusal the scenario measures
}

// scenario makes the call's REST op (the request built once from its HTTP
// rule, sent raw, so the load generator spends little per request) and its
// gRPC op.
func (a apiCall) scenario(name string) scenario {
	return scenario{
		name: name,
		rest: func(f *fixture, c *clients) op {
			r, err := restRequest(c, a.method, a.req(f), a.bearer(f))
			if err != nil {
				return func(context.Context, int) error { return err }
			}
			return restOp(c, a.want, []restReq{r})
		},
		grpc: func(f *fixture, c *clients) op {
			return grpcOp(c, a.method, a.want, []grpcReq{{a.req(f), a.bearer(f)}})
		},
	}
}

// restReq is one REST request, built once from its HTTP rule.
type restReq struct {
	verb, path string
	body       []byte // nil: none
	bearer     string // "": none
}

// restRequest builds the REST request of a call of method with req, and
// bearer.
func restRequest(c *clients, method string, req proto.Message, bearer string) (restReq, error) {
	verb, path, body, err := c.rest.Route(method, req)
	return restReq{verb: verb, path: path, body: body, bearer: bearer}, err
}

// restOp sends one of reqs (the one, or one at random) and wants the HTTP
// status of want.
func restOp(c *clients, want codes.Code, reqs []restReq) op {
	status := runtime.HTTPStatusFromCode(want)
	return func(ctx context.Context, _ int) error {
		r := reqs[0]
		if len(reqs) > 1 {
			r = reqs[rand.IntN(len(reqs))]
		}
		var rd io.Reader
		if r.body != nil {
			rd = bytes.NewReader(r.body)
		}
		req, err := http.NewRequestWithContext(ctx, r.verb, c.httpURL+r.path, rd)
		if err != nil {
			return err
		}
		if r.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if r.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+r.bearer)
		}
		return c.do(req, status)
	}
}

// grpcReq is one gRPC request and its bearer ("": none).
type grpcReq struct {
	req    proto.Message
	bearer string
}

// grpcOp invokes method with one of reqs (the one, or one at random) and
// wants the code want.
func grpcOp(c *clients, method string, want codes.Code, reqs []grpcReq) op {
	out, err := outputType(method)
	if err != nil {
		return func(context.Context, int) error { return err }
	}
	return func(ctx context.Context, w int) error {
		r := reqs[0]
		if len(reqs) > 1 {
			r = reqs[rand.IntN(len(reqs))]
		}
		err := c.grpc(w).Invoke(withBearer(ctx, r.bearer), method, r.req, out.New().Interface())
		if status.Code(err) == want {
			return nil
		}
		return fmt.Errorf("want %v, got %v", want, err)
	}
}

// outputType returns the response type of a method, by its full name.
func outputType(fullMethod string) (protoreflect.MessageType, error) {
	r, ok := httprule.All().ByMethod(fullMethod)
	if !ok {
		return nil, fmt.Errorf("no method %s", fullMethod)
	}
	return protoregistry.GlobalTypes.FindMessageByName(r.Method.Output().FullName())
}

func none(*fixture) string { return "" }

var scenarios = []scenario{
	{
		name: "ceiling",
		rest: func(f *fixture, c *clients) op {
			return func(ctx context.Context, _ int) error { return c.get(ctx, "/healthz") }
		},
		grpc: func(f *fixture, c *clients) op {
			return func(ctx context.Context, w int) error {
				_, err := grpc_health_v1.NewHealthClient(c.grpc(w)).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
				return err
			}
		},
	},
	// The API stack's own cost: gateway, the hop to the service and every
	// interceptor, refused at authentication (no credentials) before any work.
	apiCall{
		method: pb.TokenService_GetToken_FullMethodName,
		bearer: none,
		req:    func(f *fixture) proto.Message { return &pb.GetTokenRequest{TokenId: f.apiTokenID} },
		want:   codes.Unauthenticated,
	}.scenario("noop-401"),
	apiCall{
		method: pb.TokenService_GetAccessToken_FullMethodName,
		bearer: none,
		req:    func(f *fixture) proto.Message { return &pb.GetAccessTokenRequest{Token: f.apiToken} },
	}.scenario("exchange"),
	apiCall{
		method: pb.TokenService_GetToken_FullMethodName,
		bearer: func(f *fixture) string { return f.apiToken },
		req:    func(f *fixture) proto.Message { return &pb.GetTokenRequest{TokenId: f.apiTokenID} },
	}.scenario("bearer-api"),
	apiCall{
		method: pb.TokenService_GetToken_FullMethodName,
		bearer: func(f *fixture) string { return f.accessToken },
		req:    func(f *fixture) proto.Message { return &pb.GetTokenRequest{TokenId: f.apiTokenID} },
	}.scenario("bearer-jwt"),
	apiCall{
		method: pb.TokenService_ListTokens_FullMethodName,
		bearer: func(f *fixture) string { return f.listToken },
		req:    func(f *fixture) proto.Message { return &pb.ListTokensRequest{PageSize: 50} },
	}.scenario("list"),
	apiCall{
		method: pb.TokenService_CreateToken_FullMethodName,
		bearer: func(f *fixture) string { return f.apiToken },
		req:    func(f *fixture) proto.Message { return &pb.CreateTokenRequest{Note: "bench"} },
	}.scenario("create"),
	deleteScenario,
}

// deleteScenario deletes, over each transport, tokens fillDeletable wrote
// for it; a caller stops if none is left (errRunOut), which cuts the run
// short.
var deleteScenario = scenario{
	name: "delete",
	rest: func(f *fixture, c *clients) op {
		pool := f.pool("rest")
		return func(ctx context.Context, _ int) error {
			id, ok := pool.take()
			if !ok {
				return errRunOut
			}
			verb, path, _, err := c.rest.Route(pb.TokenService_DeleteToken_FullMethodName, &pb.DeleteTokenRequest{TokenId: id})
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(ctx, verb, c.httpURL+path, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+f.apiToken)
			return c.do(req, http.StatusOK)
		}
	},
	grpc: func(f *fixture, c *clients) op {
		pool := f.pool("grpc")
		return func(ctx context.Context, w int) error {
			id, ok := pool.take()
			if !ok {
				return errRunOut
			}
			_, err := pb.NewTokenServiceClient(c.grpc(w)).DeleteToken(withBearer(ctx, f.apiToken), &pb.DeleteTokenRequest{TokenId: id})
			return err
		}
	},
}

// oauthScenarios are the OAuth 2 endpoints' hot paths, over REST only
// (they are HTTP endpoints, not RPCs): the client credentials grant, and a
// gateway introspecting an access token.
var oauthScenarios = []scenario{
	{name: "oauth-token", rest: func(f *fixture, c *clients) op {
		body := []byte("grant_type=client_credentials")
		return func(ctx context.Context, _ int) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.httpURL+"/oauth2/token", bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(f.apiTokenID, f.apiToken) // base62: nothing to urlencode
			return c.do(req, http.StatusOK)
		}
	}},
	{name: "introspect", rest: func(f *fixture, c *clients) op {
		body := []byte("token=" + f.accessToken)
		return func(ctx context.Context, _ int) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.httpURL+"/oauth2/introspect", bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+f.apiToken)
			return c.do(req, http.StatusOK)
		}
	}},
}

// seed logs in (over REST, as a person would), mints an access token,
// makes alice's machine user with a federated credential for iss's tokens
// and gives the list user n tokens.
func seed(ctx context.Context, c *clients, n int, iss *issuerStandIn) (*fixture, error) {
	f := newFixture()
	rest := pb.NewTokenServiceClient(c.rest)
	login := func(user string) (*pb.CreateTokenResponse, error) {
		return rest.CreateToken(ctx, &pb.CreateTokenRequest{Username: user, Password: benchPassword})
	}
	lister, err := login("lister")
	if err != nil {
		return nil, err
	}
	alice, err := login("alice")
	if err != nil {
		return nil, err
	}
	f.listToken, f.apiToken, f.apiTokenID = lister.GetToken(), alice.GetToken(), alice.GetMetadata().GetId()
	access, err := rest.GetAccessToken(ctx, &pb.GetAccessTokenRequest{Token: f.apiToken})
	if err != nil {
		return nil, err
	}
	f.accessToken = access.GetAccessToken()
	if f.machineUserID, err = seedFederation(ctx, c, f.apiToken, iss); err != nil {
		return nil, err
	}

	// n-1 more tokens for the list user (the login made one).
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	next := make(chan int)
	for w := range 32 {
		wg.Go(func() {
			for range next {
				if _, err := pb.NewTokenServiceClient(c.grpc(w)).CreateToken(withBearer(ctx, f.listToken), &pb.CreateTokenRequest{Note: "seed"}); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n - 1 {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, fmt.Errorf("seeding tokens: %w", err)
	default:
	}
	return f, nil
}
