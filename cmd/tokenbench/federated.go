package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"time"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// subjectTokenPool is how many subject tokens a federated scenario signs
// before it starts and then sends in turn. The server keeps no memory of
// the jtis it saw (a token is good until its exp, within
// --federated-token-max-age), so a pool repeated is as costly to verify as
// fresh tokens, and signing a run's worth (tens of thousands of RS256
// signatures) would take longer than the run.
const subjectTokenPool = 1024

// seedFederation makes, over REST as its owner would, the machine user
// ci-bot and its federated credential for the stand-in issuer's tokens,
// and returns the machine user's ID.
func seedFederation(ctx context.Context, c *clients, ownerToken string, iss *issuerStandIn) (string, error) {
	ctx = withBearer(ctx, ownerToken)
	u, err := pb.NewUserServiceClient(c.rest).CreateUser(ctx, &pb.CreateUserRequest{Username: "ci-bot", Machine: true})
	if err != nil {
		return "", fmt.Errorf("creating the machine user: %w", err)
	}
	_, err = pb.NewFederatedCredentialServiceClient(c.rest).CreateFederatedCredential(ctx, &pb.CreateFederatedCredentialRequest{
		UserId: u.GetUser().GetId(),
		FederatedCredential: &pb.FederatedCredential{
			Issuer:      iss.url,
			Subject:     federatedSubject,
			Audiences:   []string{federatedAudience},
			Description: "tokenbench",
		},
	})
	if err != nil {
		return "", fmt.Errorf("creating the federated credential: %w", err)
	}
	return u.GetUser().GetId(), nil
}

// federatedOp posts RFC 8693's token exchange to the token endpoint with
// each of tokens in turn as the subject token, and wants the status want.
// The bodies are encoded once, so the load generator spends little per
// request.
func federatedOp(c *clients, tokens []string, want int) op {
	bodies := make([][]byte, len(tokens))
	for i, t := range tokens {
		bodies[i] = []byte(url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {t},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
		}.Encode())
	}
	var next atomic.Uint64
	return func(ctx context.Context, _ int) error {
		body := bodies[(next.Add(1)-1)%uint64(len(bodies))]
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.httpURL+"/oauth2/token", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return c.do(req, want)
	}
}

// federatedExchange returns the op of the federated exchange: subject
// tokens of the stand-in issuer, signed with its key, that the seeded
// credential accepts.
func (b *bench) federatedExchange(c *clients) (op, error) {
	tokens, err := b.issuer.subjectTokens(subjectTokenPool, b.issuer.ownKid)
	if err != nil {
		return nil, err
	}
	return federatedOp(c, tokens, http.StatusOK), nil
}

// floodRefreshInterval is the --issuer-keys-refresh-interval of the server
// the unknown-kid flood runs on: short, so that a flood of a few seconds
// spans several intervals and shows the limit binding in each, not only a
// fetch made before the flood still counting.
const floodRefreshInterval = time.Second

// measureFederated measures, on the measured server, the federated exchange
// (its access tokens reused as an API token's are); and, on a server of its
// own with a short refresh interval, a flood of tokens whose kid the issuer
// never had, counting the fetches of the issuer's documents the flood
// causes: at most one per refresh interval (issue 21), where without the
// limit each token would cause one.
func (b *bench) measureFederated(summary map[string]any) error {
	if b.wants("federated") {
		do, err := b.federatedExchange(b.c)
		if err != nil {
			return err
		}
		b.measure("federated", "rest", b.cfg.concurrency, do)
	}
	if !b.wants("federated-unknown-kid") {
		return nil
	}
	tokens, err := b.issuer.subjectTokens(subjectTokenPool, randomKid)
	if err != nil {
		return err
	}
	srv, c, err := startVariant(b.ctx, b.cfg.bin, b.env, filepath.Join(b.work, "serve-flood.log"),
		"--issuer-keys-refresh-interval", floodRefreshInterval.String())
	if err != nil {
		return err
	}
	defer srv.stop()
	defer c.close()
	fmt.Fprintf(b.stderr, "federated-unknown-kid over rest at %d...\n", b.cfg.concurrency)
	d0, j0 := b.issuer.fetches()
	start := time.Now()
	// Refused as RFC 8693 §2.2.2 says: invalid_request, 400. The server's
	// first token fetches the keys (discovery, then the JWKS).
	b.results.add("federated-unknown-kid", "rest", run(b.ctx, srv.cpuSeconds, b.cfg.concurrency, b.cfg.duration, federatedOp(c, tokens, http.StatusBadRequest)))
	elapsed := time.Since(start) // the warm-up included: it fetches too
	d1, j1 := b.issuer.fetches()
	summary["unknown_kid_jwks_fetches"] = float64(j1 - j0)
	summary["unknown_kid_discovery_fetches"] = float64(d1 - d0)
	summary["unknown_kid_fetches_allowed"] = float64(int(elapsed/floodRefreshInterval) + 1)
	summary["unknown_kid_refresh_interval_s"] = floodRefreshInterval.Seconds()
	return nil
}

// measureFederatedNoReuse measures, on the server without access token
// reuse, the federated exchange and the client credentials grant (the
// same endpoint, an API token as the client), right after the API-token
// exchange there, and relates them: a federated exchange costs one RS256
// verification more than the API token's hash check.
func (b *bench) measureFederatedNoReuse(summary map[string]any, mint *server, c *clients, exchangeNoReuse *result) error {
	measure := func(name string, do op) *result {
		fmt.Fprintf(b.stderr, "%s over rest at %d...\n", name, b.cfg.concurrency)
		return b.results.add(name, "rest", run(b.ctx, mint.cpuSeconds, b.cfg.concurrency, b.cfg.duration, do))
	}
	do, err := b.federatedExchange(c)
	if err != nil {
		return err
	}
	fed := measure("federated-no-reuse", do)
	cc := measure("oauth-token-no-reuse", scenarioOf(oauthScenarios, "oauth-token").rest(b.fix, c))
	summary["federated_of_exchange_no_reuse"] = ratio(fed.RPS, exchangeNoReuse.RPS)
	summary["federated_of_oauth_token_no_reuse"] = ratio(fed.RPS, cc.RPS)
	summary["federated_cpu_of_exchange_no_reuse"] = ratio(fed.CPUPer1k, exchangeNoReuse.CPUPer1k)
	return nil
}
