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

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// clients reaches one server over REST and gRPC.
type clients struct {
	httpURL string
	http    *http.Client
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

func (c *clients) grpc(worker int) pb.TokenServiceClient {
	return pb.NewTokenServiceClient(c.conns[worker%len(c.conns)])
}

// rest makes one REST call and decodes a 200 answer into out (if not nil).
func (c *clients) rest(ctx context.Context, method, path, bearer string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.httpURL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func withBearer(ctx context.Context, bearer string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer)
}

// fixture is the data the scenarios use.
type fixture struct {
	apiToken    string // alice's API token
	apiTokenID  string
	accessToken string // minted from apiToken
	listToken   string // an API token of the user with many tokens
}

// scenario is one measured request kind, over each transport.
type scenario struct {
	name string
	rest func(f *fixture, c *clients) op
	grpc func(f *fixture, c *clients) op
}

var scenarios = []scenario{
	{
		name: "ceiling",
		rest: func(f *fixture, c *clients) op {
			return func(ctx context.Context, _ int) error { return c.rest(ctx, "GET", "/healthz", "", nil, nil) }
		},
		grpc: func(f *fixture, c *clients) op {
			return func(ctx context.Context, w int) error {
				_, err := grpc_health_v1.NewHealthClient(c.conns[w%len(c.conns)]).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
				return err
			}
		},
	},
	{
		// The API stack's own cost: gateway, in-process channel and every
		// interceptor, refused at authentication (no credentials) before any work.
		name: "noop-401",
		rest: func(f *fixture, c *clients) op {
			return func(ctx context.Context, _ int) error {
				return wantRefused(c.rest(ctx, "GET", "/v1alpha1/tokens/"+f.apiTokenID, "", nil, nil), "HTTP 401")
			}
		},
		grpc: func(f *fixture, c *clients) op {
			return func(ctx context.Context, w int) error {
				_, err := c.grpc(w).GetToken(ctx, &pb.GetTokenRequest{TokenId: f.apiTokenID})
				if status.Code(err) == codes.Unauthenticated {
					return nil
				}
				return fmt.Errorf("want UNAUTHENTICATED, got %v", err)
			}
		},
	},
	{
		name: "exchange",
		rest: func(f *fixture, c *clients) op {
			body, _ := json.Marshal(map[string]string{"token": f.apiToken})
			return func(ctx context.Context, _ int) error {
				return c.rest(ctx, "POST", "/v1alpha1/access-tokens", "", body, nil)
			}
		},
		grpc: func(f *fixture, c *clients) op {
			return func(ctx context.Context, w int) error {
				_, err := c.grpc(w).GetAccessToken(ctx, &pb.GetAccessTokenRequest{Token: f.apiToken})
				return err
			}
		},
	},
	{
		name: "bearer-api",
		rest: func(f *fixture, c *clients) op { return getToken(f, c, f.apiToken) },
		grpc: func(f *fixture, c *clients) op { return getTokenGRPC(f, c, f.apiToken) },
	},
	{
		name: "bearer-jwt",
		rest: func(f *fixture, c *clients) op { return getToken(f, c, f.accessToken) },
		grpc: func(f *fixture, c *clients) op { return getTokenGRPC(f, c, f.accessToken) },
	},
	{
		name: "list",
		rest: func(f *fixture, c *clients) op {
			return func(ctx context.Context, _ int) error {
				return c.rest(ctx, "GET", "/v1alpha1/tokens?pageSize=50", f.listToken, nil, nil)
			}
		},
		grpc: func(f *fixture, c *clients) op {
			return func(ctx context.Context, w int) error {
				_, err := c.grpc(w).ListTokens(withBearer(ctx, f.listToken), &pb.ListTokensRequest{PageSize: 50})
				return err
			}
		},
	},
	{
		name: "create",
		rest: func(f *fixture, c *clients) op {
			body := []byte(`{"note":"bench"}`)
			return func(ctx context.Context, _ int) error {
				return c.rest(ctx, "POST", "/v1alpha1/tokens", f.apiToken, body, nil)
			}
		},
		grpc: func(f *fixture, c *clients) op {
			return func(ctx context.Context, w int) error {
				_, err := c.grpc(w).CreateToken(withBearer(ctx, f.apiToken), &pb.CreateTokenRequest{Note: "bench"})
				return err
			}
		},
	},
}

func getToken(f *fixture, c *clients, bearer string) op {
	path := "/v1alpha1/tokens/" + f.apiTokenID
	return func(ctx context.Context, _ int) error { return c.rest(ctx, "GET", path, bearer, nil, nil) }
}

func getTokenGRPC(f *fixture, c *clients, bearer string) op {
	return func(ctx context.Context, w int) error {
		_, err := c.grpc(w).GetToken(withBearer(ctx, bearer), &pb.GetTokenRequest{TokenId: f.apiTokenID})
		return err
	}
}

// seed logs in, mints an access token and gives the list user n tokens.
func seed(ctx context.Context, c *clients, n int) (*fixture, error) {
	f := &fixture{}
	var created struct {
		Token    string `json:"token"`
		Metadata struct {
			ID string `json:"id"`
		} `json:"metadata"`
	}
	login := func(user string) (string, error) {
		body, _ := json.Marshal(map[string]string{"username": user, "password": benchPassword})
		err := c.rest(ctx, "POST", "/v1alpha1/tokens", "", body, &created)
		return created.Token, err
	}
	var err error
	if f.listToken, err = login("lister"); err != nil {
		return nil, err
	}
	if f.apiToken, err = login("alice"); err != nil {
		return nil, err
	}
	f.apiTokenID = created.Metadata.ID
	var access struct {
		AccessToken string `json:"accessToken"`
	}
	body, _ := json.Marshal(map[string]string{"token": f.apiToken})
	if err := c.rest(ctx, "POST", "/v1alpha1/access-tokens", "", body, &access); err != nil {
		return nil, err
	}
	f.accessToken = access.AccessToken

	// n-1 more tokens for the list user (the login made one).
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	next := make(chan int)
	for w := range 32 {
		wg.Go(func() {
			for range next {
				if _, err := c.grpc(w).CreateToken(withBearer(ctx, f.listToken), &pb.CreateTokenRequest{Note: "seed"}); err != nil {
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

// wantRefused turns the expected refusal into success and anything else into an error.
func wantRefused(err error, want string) error {
	if err != nil && strings.Contains(err.Error(), want) {
		return nil
	}
	return fmt.Errorf("want %s, got %v", want, err)
}
