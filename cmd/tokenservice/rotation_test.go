package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// kidOf returns an access token's kid.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	header, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(header)
	var h struct{ Kid string }
	if err != nil || json.Unmarshal(b, &h) != nil {
		t.Fatalf("no JWS header in %q", token)
	}
	return h.Kid
}

// jwksKIDs fetches a replica's JWKS and returns its kids.
func jwksKIDs(t *testing.T, s *service) []string {
	t.Helper()
	resp, err := http.Get(s.httpURL + "/.well-known/jwks.json")
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	var set struct{ Keys []struct{ Kid string } }
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Error(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// A rotation while access tokens are minted on two replicas of one MySQL
// database: the new key is published first and signs only after the
// propagation delay, so a JWKS fetched at any moment verifies every token
// minted up to max-age later; tokens signed before the rotation still verify,
// here and with a third-party library given only the JWKS.
func TestKeyRotationAcrossReplicas(t *testing.T) {
	const (
		maxAge      = time.Second
		reload      = 200 * time.Millisecond
		propagation = 2500 * time.Millisecond // max-age plus reload, and a second for a slow reload under -race
	)
	db := storetest.MustConfig(t, "mysql")
	env := []string{"TOKENSERVICE_JWKS_MAX_AGE", maxAge.String(), "TOKENSERVICE_KEY_RELOAD_INTERVAL", reload.String(),
		"TOKENSERVICE_KEY_PROPAGATION_DELAY", propagation.String(), "TOKENSERVICE_ACCESS_TOKEN_REUSE", "0"}
	a, b := startService(t, db, env...), startService(t, db, env...)
	a.mustUser(t, "alice", "human")
	apiToken := rpc{t, a.grpcCaller()}.login("alice")
	before, err := rpc{t, b.grpcCaller()}.exchange("", apiToken)
	if err != nil {
		t.Fatal(describe(err))
	}
	oldKID := kidOf(t, before.GetAccessToken())

	type minted struct {
		at    time.Time
		token string
	}
	type fetched struct {
		at   time.Time
		kids []string
	}
	var mu sync.Mutex
	var tokens []minted
	var sets []fetched
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, s := range []*service{a, b} {
		wg.Go(func() { // mints an access token every 20 ms
			for ctx.Err() == nil {
				resp, err := rpc{t, s.grpcCaller()}.exchange("", apiToken)
				if err != nil {
					t.Errorf("replica %d exchanging during the rotation: %s", i, describe(err))
					return
				}
				mu.Lock()
				tokens = append(tokens, minted{time.Now(), resp.GetAccessToken()})
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
		wg.Go(func() { // fetches the JWKS every 20 ms, as a gateway whose cache expires
			for ctx.Err() == nil {
				at, kids := time.Now(), jwksKIDs(t, s)
				mu.Lock()
				sets = append(sets, fetched{at, kids})
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}

	time.Sleep(300 * time.Millisecond)
	rotatedAt := time.Now()
	op := &shell{t: t, env: a.env}
	op.must("", "keys", "rotate", "--key-propagation-delay", propagation.String())
	time.Sleep(propagation + 2*reload + 500*time.Millisecond)
	stop()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var newKID string
	for _, m := range tokens {
		if kid := kidOf(t, m.token); kid != oldKID {
			newKID = kid
			if m.at.Before(rotatedAt.Add(propagation - 50*time.Millisecond)) {
				t.Errorf("a token with the new key %v after the rotation, before the propagation delay of %v", m.at.Sub(rotatedAt), propagation)
			}
		}
	}
	if newKID == "" || kidOf(t, tokens[len(tokens)-1].token) != newKID {
		t.Fatalf("no token with a new key, or the last is not one (%d tokens); keys:\n%s\nJWKS: %v\nlog: %.3000s", len(tokens), op.must("", "keys", "list"), jwksKIDs(t, a), a.logs)
	}
	// A gateway that fetched the JWKS at any moment meets no unknown kid in
	// the tokens minted while its copy was fresh.
	checked := 0
	for _, f := range sets {
		for _, m := range tokens {
			if m.at.Before(f.at) || m.at.After(f.at.Add(maxAge)) {
				continue
			}
			checked++
			if kid := kidOf(t, m.token); !slices.Contains(f.kids, kid) {
				t.Errorf("a token minted %v after a JWKS fetch carries %s, which that JWKS (%v) lacks", m.at.Sub(f.at), kid, f.kids)
			}
		}
	}
	t.Logf("%d tokens, %d JWKS fetches, %d (fetch, token) pairs checked; the new key signed from %v after the rotation",
		len(tokens), len(sets), checked, propagation)

	// Every token minted, before and after, verifies: here on both replicas,
	// and with jwx given only the JWKS.
	set, err := jwk.Fetch(context.Background(), b.httpURL+"/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{before.GetAccessToken(), tokens[0].token, tokens[len(tokens)-1].token} {
		if _, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithIssuer("http://tokenservice.test"), jwt.WithAudience("http://tokenservice.test"), jwt.WithValidate(true)); err != nil {
			t.Errorf("jwx with the JWKS alone: %s-signed token: %v", kidOf(t, tok), err)
		}
		for _, s := range []*service{a, b} {
			if _, err := (rpc{t, s.grpcCaller()}).list(tok, &pb.ListTokensRequest{}); err != nil {
				t.Errorf("a %s-signed token as a bearer: %s", kidOf(t, tok), describe(err))
			}
		}
	}
	if out := op.must("", "keys", "list"); !strings.Contains(out, newKID+"  signing") || !strings.Contains(out, oldKID+"  published") {
		t.Errorf("keys list after the rotation:\n%s", out)
	}
}

// keys list reads no private key (no key-encryption key needed); keys
// rotate checks its delay as serve does and needs the key-encryption key to
// seal the new key; keys delete refuses the signing key without --force,
// and a deleted key leaves the running server's JWKS at its next reload.
func TestKeysCommands(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		kekFile := mustKEKFile(t)
		s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE", kekFile,
			"TOKENSERVICE_KEY_RELOAD_INTERVAL", "100ms")
		noKEK := &shell{t: t, env: maps.Clone(s.env)}
		delete(noKEK.env, "TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE")
		withKEK := &shell{t: t, env: s.env}

		first := jwksKIDs(t, s)
		if len(first) != 1 {
			t.Fatalf("JWKS %v: want one key", first)
		}
		signing := first[0]
		if out := noKEK.must("", "keys", "list"); !strings.Contains(out, signing+"  signing") {
			t.Errorf("keys list without the key-encryption key:\n%s", out)
		}

		noKEK.want(1, "--key-propagation-delay", "", "keys", "rotate", "--key-propagation-delay", "1m")
		noKEK.want(1, "key-encryption key", "", "keys", "rotate")
		out := withKEK.must("", "keys", "rotate")
		added := strings.TrimSuffix(strings.Fields(strings.TrimPrefix(out, "added signing key "))[0], ":")
		if listed := noKEK.must("", "keys", "list"); !strings.Contains(listed, signing+"  signing") || !strings.Contains(listed, added+"  pending") {
			t.Errorf("keys list after keys rotate (%q):\n%s", out, listed)
		}

		noKEK.want(1, "keys rotate", "", "keys", "delete", signing)
		noKEK.want(1, "no signing key", "", "keys", "delete", "nosuchkey")
		noKEK.must("", "keys", "delete", added)
		deadline := time.Now().Add(5 * time.Second)
		for kids := jwksKIDs(t, s); slices.Contains(kids, added) || !slices.Contains(kids, signing); kids = jwksKIDs(t, s) {
			if time.Now().After(deadline) {
				t.Fatalf("the JWKS still %v 5s after deleting %s", kids, added)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
