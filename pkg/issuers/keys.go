package issuers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// issuerKeys is one trusted issuer's cached discovery result and keys.
//
// Fetches are lazy (a token needs the keys) and rate limited: at most one
// per Config.RefreshInterval per issuer, whatever caused it (no keys yet,
// keys past their cache time, an unknown kid, a failed fetch retried), and
// concurrent callers share the one in flight. So a flood of tokens with
// made-up kids, or an issuer that is down, costs that issuer one fetch per
// interval, and a token does not wait on a fetch that just failed.
//
// Grace on failure: when keys (or the jwks_uri) are past their cache time
// and the refetch fails, the old ones stay in use until MaxCacheTTL past
// their cache time, and each failure is reported to the Observer. An issuer
// briefly down does not stop every exchange; one down for a day does, and
// keys it withdrew meanwhile are not trusted forever.
type issuerKeys struct {
	set    *Set
	issuer Issuer

	mu sync.Mutex // guards all below
	// jwksURI is from the last discovery document; empty before one.
	jwksURI                      string
	discoveryStale, discoveryEnd time.Time
	// keys are the usable keys of the last JWKS fetched or read; stale
	// from keysStale (a fetch is due), unused from keysEnd.
	keys               []jose.JSONWebKey
	keysStale, keysEnd time.Time
	lastFetch          time.Time // when the last fetch started; zero before one
	lastErr            error     // of the last fetch; nil if it succeeded
	inflight           *flight   // the fetch under way; nil when none
}

// flight is one fetch that callers share; done is closed when it ends.
type flight struct {
	done chan struct{}
	err  error
}

// key returns the key to verify a token signed with alg under kid (kid
// empty: the set's only key, if it has one). It fetches (or reads the file
// again) when the keys are missing or stale or lack kid, within the rate
// limit. Its errors are *Error.
func (ik *issuerKeys) key(ctx context.Context, kid, alg string) (*jose.JSONWebKey, *Error) {
	ik.mu.Lock()
	now := ik.set.cfg.Clock()
	k := ik.find(kid, alg, now)
	if k != nil && now.Before(ik.keysStale) {
		ik.mu.Unlock()
		return k, nil
	}
	f := ik.inflight
	if f == nil && (ik.lastFetch.IsZero() || now.Sub(ik.lastFetch) >= ik.set.cfg.RefreshInterval) {
		f = ik.start(ctx, now)
	}
	if f == nil {
		// Rate limited: what is cached (stale keys within their grace) is
		// all there is until the interval has passed.
		err := ik.refusal(kid, alg, now, ik.lastErr)
		ik.mu.Unlock()
		if k != nil {
			return k, nil
		}
		return nil, err
	}
	ik.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		if k != nil {
			return k, nil // stale but in its grace: the refetch is not this caller's to wait for
		}
		return nil, refuse(ReasonKeysUnavailable, fmt.Sprintf("gave up waiting for the keys of issuer %s", ik.issuer.URL), context.Cause(ctx))
	}
	ik.mu.Lock()
	defer ik.mu.Unlock()
	now = ik.set.cfg.Clock()
	if k := ik.find(kid, alg, now); k != nil {
		return k, nil
	}
	return nil, ik.refusal(kid, alg, now, f.err)
}

// refusal says why no key was found: no usable keys and a failed fetch is
// keys_unavailable, anything else unknown_key. ik.mu must be held.
func (ik *issuerKeys) refusal(kid, alg string, now time.Time, fetchErr error) *Error {
	var fe *fetchError
	if fetchErr != nil {
		msg := fmt.Sprintf("the keys of issuer %s are unavailable", ik.issuer.URL)
		if errors.As(fetchErr, &fe) {
			msg += ": " + fe.msg
		}
		return refuse(ReasonKeysUnavailable, msg, fetchErr)
	}
	if !now.Before(ik.keysEnd) {
		return refuse(ReasonKeysUnavailable, fmt.Sprintf("the keys of issuer %s are unavailable", ik.issuer.URL), nil)
	}
	if kid == "" {
		return refuse(ReasonUnknownKey, fmt.Sprintf("the token names no kid, and issuer %s has no single %s key", ik.issuer.URL, alg), nil)
	}
	return refuse(ReasonUnknownKey, fmt.Sprintf("issuer %s has no %s key with kid %q", ik.issuer.URL, alg, clip(kid)), nil)
}

// find returns the usable key for kid and alg, or nil. ik.mu must be held.
func (ik *issuerKeys) find(kid, alg string, now time.Time) *jose.JSONWebKey {
	if !now.Before(ik.keysEnd) {
		return nil
	}
	if kid == "" {
		// A token without kid may use the only key of the set (RFC 7515
		// §4.1.4 makes kid optional); with several, guessing would let
		// one key's token pass as another's.
		if len(ik.keys) == 1 && algFits(&ik.keys[0], alg) {
			return &ik.keys[0]
		}
		return nil
	}
	for i := range ik.keys {
		if ik.keys[i].KeyID == kid && algFits(&ik.keys[i], alg) {
			return &ik.keys[i]
		}
	}
	return nil
}

// start starts a fetch and makes it the one in flight; ik.mu must be held.
// The fetch keeps ctx's values but not its cancellation (other callers
// wait for it too); Config.Timeout bounds each of its requests.
func (ik *issuerKeys) start(ctx context.Context, now time.Time) *flight {
	f := &flight{done: make(chan struct{})}
	ik.inflight, ik.lastFetch = f, now
	fctx := context.WithoutCancel(ctx)
	go func() {
		err := ik.refresh(fctx)
		ik.mu.Lock()
		f.err, ik.lastErr, ik.inflight = err, err, nil
		ik.mu.Unlock()
		close(f.done)
	}()
	return f
}

// refresh reads the JWKS file, or fetches the discovery document (when its
// jwks_uri is missing or stale) and then the JWKS, and puts what it got in
// use. Each failure is reported to the Observer; on one, what is cached
// stays (see issuerKeys for the grace).
func (ik *issuerKeys) refresh(ctx context.Context) error {
	cfg := ik.set.cfg
	if ik.issuer.JWKSFile != "" {
		ik.mu.Lock()
		defer ik.mu.Unlock()
		return ik.loadFile(cfg.Clock())
	}
	ik.mu.Lock()
	uri, now := ik.jwksURI, cfg.Clock()
	needDiscovery := uri == "" || !now.Before(ik.discoveryStale)
	discoveryEnd := ik.discoveryEnd
	ik.mu.Unlock()

	if needDiscovery {
		got, ttl, err := ik.set.discover(ctx, ik.issuer.URL)
		cfg.Observer.Fetched(ik.issuer.URL, DocumentDiscovery, err)
		switch {
		case err == nil:
			now := cfg.Clock()
			ik.mu.Lock()
			ik.jwksURI, ik.discoveryStale, ik.discoveryEnd = got, now.Add(ttl), now.Add(ttl+cfg.MaxCacheTTL)
			ik.mu.Unlock()
			uri = got
		case uri == "" || !cfg.Clock().Before(discoveryEnd):
			return err
		}
		// Else the jwks_uri discovered before is still in its grace.
	}

	keys, ttl, err := ik.set.fetchJWKS(ctx, uri)
	cfg.Observer.Fetched(ik.issuer.URL, DocumentJWKS, err)
	if err != nil {
		return err
	}
	now = cfg.Clock()
	ik.mu.Lock()
	ik.keys, ik.keysStale, ik.keysEnd = keys, now.Add(ttl), now.Add(ttl+cfg.MaxCacheTTL)
	ik.mu.Unlock()
	return nil
}

// loadFile reads the issuer's JWKS file and puts its keys in use for
// DefaultCacheTTL; ik.mu must be held (or ik not yet shared). The read is
// reported to the Observer as a "jwks" fetch.
func (ik *issuerKeys) loadFile(now time.Time) error {
	keys, err := ik.readFile()
	ik.set.cfg.Observer.Fetched(ik.issuer.URL, DocumentJWKS, err)
	if err != nil {
		return err
	}
	ttl := ik.set.cfg.DefaultCacheTTL
	ik.keys, ik.keysStale, ik.keysEnd = keys, now.Add(ttl), now.Add(ttl+ik.set.cfg.MaxCacheTTL)
	return nil
}

func (ik *issuerKeys) readFile() ([]jose.JSONWebKey, error) {
	name := ik.issuer.JWKSFile
	f, err := os.Open(name)
	if err != nil {
		return nil, &fetchError{"cannot read the JWKS file of issuer " + ik.issuer.URL, err}
	}
	defer f.Close()
	body, err := readAtMost(f, ik.set.cfg.MaxBytes)
	if errors.Is(err, errTooBig) {
		return nil, &fetchError{fmt.Sprintf("the JWKS file of issuer %s is larger than %d bytes", ik.issuer.URL, ik.set.cfg.MaxBytes), nil}
	}
	if err != nil {
		return nil, &fetchError{"cannot read the JWKS file of issuer " + ik.issuer.URL, err}
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, &fetchError{fmt.Sprintf("the JWKS file of issuer %s: %s", ik.issuer.URL, err), nil}
	}
	return keys, nil
}
