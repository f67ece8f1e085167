package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/auth"
)

// The fleet scenarios (issue 22) make the hot-token scenarios' requests
// with many tokens, one at random per request: the API tokens of a fleet
// of clients, more than the server's cache holds, among many more rows.

// fleetUser owns the fleet's tokens whose plaintexts the bench knows; the
// other rows belong to filler users.
const fleetUser = "fleet"

// fleetBatch is the rows seedFleet writes in one INSERT.
const fleetBatch = 1000

// fillerTokensPerUser is how many of the fleet's other rows each filler
// user owns.
const fillerTokensPerUser = 1000

// fleet is the fleet scenarios' data: the fleet user's API tokens, by
// plaintext, and (when fleet-access-bearer runs) an access token minted
// from each.
type fleet struct {
	rows   int // the rows seeded, tokens among them
	tokens []auth.APIToken
	access []string // access[i] was minted from tokens[i]

	seedTime, mintTime time.Duration
}

// fleetScenario is a hot-token scenario's request made over the fleet.
type fleetScenario struct {
	name, hot string // the scenario's, and that of the hot-token one it is compared with
	method    string
	// req and bearer make the request with the fleet's i-th token.
	req    func(fl *fleet, i int) proto.Message
	bearer func(fl *fleet, i int) string
	access bool // it needs the access tokens
}

var fleetScenarios = []fleetScenario{
	{
		name: "fleet-exchange", hot: "exchange",
		method: pb.TokenService_GetAccessToken_FullMethodName,
		req: func(fl *fleet, i int) proto.Message {
			return &pb.GetAccessTokenRequest{Token: fl.tokens[i].String()}
		},
		bearer: func(*fleet, int) string { return "" },
	},
	{
		name: "fleet-bearer", hot: "bearer-api",
		method: pb.TokenService_GetToken_FullMethodName,
		req:    func(fl *fleet, i int) proto.Message { return &pb.GetTokenRequest{TokenId: fl.tokens[i].ID} },
		bearer: func(fl *fleet, i int) string { return fl.tokens[i].String() },
	},
	{
		name: "fleet-access-bearer", hot: "bearer-jwt",
		method: pb.TokenService_GetToken_FullMethodName,
		req:    func(fl *fleet, i int) proto.Message { return &pb.GetTokenRequest{TokenId: fl.tokens[i].ID} },
		bearer: func(fl *fleet, i int) string { return fl.access[i] },
		access: true,
	},
}

// hotOf returns the hot-token scenario a fleet scenario is compared with;
// "" if name is not a fleet scenario's.
func hotOf(name string) string {
	for _, sc := range fleetScenarios {
		if sc.name == name {
			return sc.hot
		}
	}
	return ""
}

// ops builds the scenario's request with each of the fleet's tokens, once,
// and returns its REST and gRPC ops, each sending one at random per call.
func (sc fleetScenario) ops(fl *fleet, c *clients) (rest, grpc op, err error) {
	restReqs := make([]restReq, len(fl.tokens))
	grpcReqs := make([]grpcReq, len(fl.tokens))
	for i := range fl.tokens {
		req, bearer := sc.req(fl, i), sc.bearer(fl, i)
		if restReqs[i], err = restRequest(c, sc.method, req, bearer); err != nil {
			return nil, nil, err
		}
		grpcReqs[i] = grpcReq{req, bearer}
	}
	return restOp(c, codes.OK, restReqs), grpcOp(c, sc.method, codes.OK, grpcReqs), nil
}

// warm makes the scenario's request once with each of the fleet's tokens,
// from concurrency workers, before it is measured: a fleet's tokens are
// used now and then, each again before the cache forgets it, so what is
// measured is the steady state, not every token's first use (at 40,000
// tokens and a few thousand requests a second, a 5 s run would be mostly
// first uses).
func (sc fleetScenario) warm(ctx context.Context, fl *fleet, c *clients, concurrency int) error {
	reqs := make([]restReq, len(fl.tokens))
	for i := range fl.tokens {
		var err error
		if reqs[i], err = restRequest(c, sc.method, sc.req(fl, i), sc.bearer(fl, i)); err != nil {
			return err
		}
	}
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				if err := restOp(c, codes.OK, reqs[i:i+1])(ctx, w); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("warming the fleet: %w", err)
	}
	return ctx.Err()
}

// seedFleet writes rows tokens straight into the database (in batches, as
// fillDeletable does: through the service, 100,000 would take minutes):
// known of them the fleet user's, made as the service makes them
// (auth.NewAPIToken, auth.HashSecret) so that their plaintexts are
// accepted, with the scopes and secret generation of the fixture's login
// token; the rest, whose plaintexts nobody keeps, of filler users (one in
// five deleted). The server then starts with none of them cached.
func seedFleet(ctx context.Context, dbEnv []string, f *fixture, rows, known int) (*fleet, error) {
	start := time.Now()
	driver := envValue(dbEnv, "TOKENSERVICE_DB_DRIVER")
	db, err := sql.Open(driver, envValue(dbEnv, "TOKENSERVICE_DB_DSN"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	workers := 4
	if driver == "sqlite" {
		workers = 1 // one writer at a time
	}
	db.SetMaxOpenConns(workers)
	var fleetUserID, scopes string
	var generation int
	if err := db.QueryRowContext(ctx, "SELECT id FROM users WHERE username = ?", fleetUser).Scan(&fleetUserID); err != nil {
		return nil, fmt.Errorf("reading the fleet user: %w", err)
	}
	if err := db.QueryRowContext(ctx, "SELECT scopes, secret_generation FROM tokens WHERE id = ?", f.apiTokenID).Scan(&scopes, &generation); err != nil {
		return nil, fmt.Errorf("reading alice's token: %w", err)
	}
	known = min(known, rows)
	fillers, err := seedFillerUsers(ctx, db, (rows-known+fillerTokensPerUser-1)/fillerTokensPerUser)
	if err != nil {
		return nil, err
	}

	fl := &fleet{rows: rows, tokens: make([]auth.APIToken, known)}
	batches := make(chan []any)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for args := range batches {
				n := len(args) / 8
				q := "INSERT INTO tokens (id, user_id, secret_hash, note, create_time, delete_time, scopes, secret_generation) VALUES " +
					strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?), ", n), ", ")
				if _, err := db.ExecContext(ctx, q, args...); err != nil {
					errs <- fmt.Errorf("writing the fleet's tokens: %w", err)
					for range batches { // drain, so the producer ends
					}
					return
				}
			}
		})
	}
	// The rows go in in the order of their IDs, which is the table's
	// (InnoDB's clustered index): random IDs in random order would write
	// all over a table larger than the buffer pool, several times slower
	// at a million rows.
	order, err := fleetOrder(fl.tokens, rows)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	produce := func() error {
		defer close(batches)
		args := make([]any, 0, fleetBatch*8)
		filler := 0
		for i, r := range order {
			created := now.Add(-time.Duration(rows-i) * time.Millisecond)
			if r.known >= 0 {
				t := fl.tokens[r.known]
				args = append(args, t.ID, fleetUserID, auth.HashSecret(t.Secret), "fleet", created, nil, scopes, generation)
			} else {
				var deleted any
				if filler%5 == 0 {
					deleted = now
				}
				args = append(args, r.id, fillers[filler/fillerTokensPerUser], auth.HashSecret(rand.Text()), "filler", created, deleted, scopes, generation)
				filler++
			}
			if len(args) == cap(args) || i == rows-1 {
				select {
				case batches <- args:
				case err := <-errs:
					return err
				}
				args = make([]any, 0, fleetBatch*8)
			}
		}
		return nil
	}
	err = produce()
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		return nil, err
	}
	fl.seedTime = time.Since(start)
	return fl, nil
}

// fleetRow is a row seedFleet writes: the fleet's known-th token, or a
// filler token (known -1) of ID id.
type fleetRow struct {
	id    string
	known int
}

// fleetOrder fills tokens with new API tokens and returns them and
// rows-len(tokens) filler rows, in the order of their IDs.
func fleetOrder(tokens []auth.APIToken, rows int) ([]fleetRow, error) {
	order := make([]fleetRow, rows)
	for i := range order {
		if i < len(tokens) {
			t, err := auth.NewAPIToken(rand.Reader)
			if err != nil {
				return nil, err
			}
			tokens[i] = t
			order[i] = fleetRow{t.ID, i}
			continue
		}
		id, err := auth.RandomID(rand.Reader)
		if err != nil {
			return nil, err
		}
		order[i] = fleetRow{id, -1}
	}
	slices.SortFunc(order, func(a, b fleetRow) int { return strings.Compare(a.id, b.id) })
	return order, nil
}

// seedFillerUsers writes n users, with no password (they never log in),
// and returns their IDs.
func seedFillerUsers(ctx context.Context, db *sql.DB, n int) ([]string, error) {
	ids := make([]string, n)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for done := 0; done < n; done += fleetBatch {
		rows := min(fleetBatch, n-done)
		args := make([]any, 0, rows*4)
		for i := done; i < done+rows; i++ {
			id, err := auth.RandomID(rand.Reader)
			if err != nil {
				return nil, err
			}
			ids[i] = id
			args = append(args, id, fmt.Sprintf("fleet-filler-%d", i), false, now)
		}
		q := "INSERT INTO users (id, username, admin, create_time) VALUES " + strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", rows), ", ")
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			return nil, fmt.Errorf("writing the fleet's filler users: %w", err)
		}
	}
	return ids, nil
}

// mintFleetAccess exchanges each of the fleet's API tokens for an access
// token, over gRPC on the seed server, so that the measured server has
// minted none of them (and cached no API token).
func mintFleetAccess(ctx context.Context, c *clients, fl *fleet) error {
	start := time.Now()
	fl.access = make([]string, len(fl.tokens))
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := make(chan int)
	for w := range 32 {
		wg.Go(func() {
			client := pb.NewTokenServiceClient(c.grpc(w))
			for i := range next {
				resp, err := client.GetAccessToken(ctx, &pb.GetAccessTokenRequest{Token: fl.tokens[i].String()})
				if err != nil {
					select {
					case errs <- fmt.Errorf("minting the fleet's access tokens: %w", err):
					default:
					}
					continue
				}
				fl.access[i] = resp.GetAccessToken()
			}
		})
	}
	for i := range fl.tokens {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	fl.mintTime = time.Since(start)
	return nil
}
