package verifier

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
)

// maxDocumentBytes bounds the discovery document and the key set: both are
// a few hundred bytes, and a misconfigured URL must not fill memory.
const maxDocumentBytes = 1 << 20

// keyCache holds the issuer's public keys by kid and fetches them again on
// a schedule and on an unknown kid. A failed fetch keeps the keys it has.
type keyCache struct {
	client      *http.Client
	url         string
	minInterval time.Duration
	logger      *slog.Logger
	// life ends at Close: fetches for an unknown kid, which outlive the
	// request that caused them, end with it too.
	life context.Context
	wg   sync.WaitGroup

	// set is the key set in use; a fetch puts its own in use only if no
	// fetch started after it has already done so (see refresh).
	set      atomic.Pointer[keySet]
	fetchSeq atomic.Uint64 // numbers the fetches in the order they start

	// mu makes callers with an unknown kid share one fetch instead of
	// each fetching.
	mu             sync.Mutex
	lastKidRefresh time.Time   // guarded by mu
	inflight       *kidRefresh // guarded by mu; nil when no fetch for an unknown kid runs
}

// keySet is a fetched key set and the number of the fetch that got it.
type keySet struct {
	seq  uint64
	keys map[string]*ecdsa.PublicKey
}

// kidRefresh is a fetch caused by an unknown kid; done is closed when it
// ends, with err set.
type kidRefresh struct {
	done chan struct{}
	err  error
}

// key returns the public key with this kid, fetching the key set again if
// it is unknown and no unknown kid caused a fetch in the last minInterval.
// It returns when ctx ends even if the fetch goes on: the fetch is not the
// request's, and other requests may be waiting for it.
func (c *keyCache) key(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	if k, ok := c.lookup(kid); ok {
		return k, nil
	}
	c.mu.Lock()
	f := c.inflight
	if f == nil {
		// A fetch may have ended between the lookup above and the lock.
		if k, ok := c.lookup(kid); ok {
			c.mu.Unlock()
			return k, nil
		}
		if since := time.Since(c.lastKidRefresh); since < c.minInterval {
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: unknown kid %q (keys fetched for an unknown kid %s ago)", ErrInvalidToken, clip(kid), since.Round(time.Millisecond))
		}
		c.lastKidRefresh = time.Now()
		f = c.startKidRefresh(ctx, kid)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: unknown kid %q: gave up waiting for the keys: %w", ErrInvalidToken, clip(kid), context.Cause(ctx))
	}
	if k, ok := c.lookup(kid); ok {
		return k, nil
	}
	if f.err != nil {
		return nil, fmt.Errorf("%w: unknown kid %q: %w", ErrInvalidToken, clip(kid), f.err)
	}
	return nil, fmt.Errorf("%w: unknown kid %q", ErrInvalidToken, clip(kid))
}

// startKidRefresh starts a fetch for an unknown kid and makes it the one in
// flight; c.mu must be held. The fetch keeps ctx's values but not its
// deadline or cancellation (a cancelled request would use up the interval
// for the others), and ends at Close.
func (c *keyCache) startKidRefresh(ctx context.Context, kid string) *kidRefresh {
	f := &kidRefresh{done: make(chan struct{})}
	c.inflight = f
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(c.life, cancel)
	c.wg.Go(func() {
		defer cancel()
		defer stop()
		err := c.refresh(fctx)
		if err != nil {
			c.logger.WarnContext(fctx, "verifier: refreshing keys for an unknown kid failed: keeping the keys it has", "kid", clip(kid), "error", err)
		}
		c.mu.Lock()
		f.err, c.inflight = err, nil
		c.mu.Unlock()
		close(f.done)
	})
	return f
}

func (c *keyCache) lookup(kid string) (*ecdsa.PublicKey, bool) {
	set := c.set.Load()
	if set == nil {
		return nil, false
	}
	k, ok := set.keys[kid]
	return k, ok
}

// run fetches the keys every interval until ctx ends, so keys the issuer
// withdraws stop being accepted.
func (c *keyCache) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.refresh(ctx); err != nil && ctx.Err() == nil {
				c.logger.WarnContext(ctx, "verifier: refreshing keys failed: keeping the keys it has", "error", err)
			}
		}
	}
}

// refresh fetches the key set and puts it in use, unless a fetch that
// started after this one already did: a slow background fetch must not
// bring back a key set older than the one a fetch for an unknown kid got
// meanwhile (the newer key would be refused until the next fetch). On any
// failure the keys in use stay.
func (c *keyCache) refresh(ctx context.Context) error {
	seq := c.fetchSeq.Add(1)
	// RFC 7517 §5: {"keys": [JWK, ...]}. Each key is parsed on its own so
	// that one of a type this package cannot use does not hide the rest.
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := getJSON(ctx, c.client, c.url, &set); err != nil {
		return fmt.Errorf("fetching JWKS: %w", err)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(set.Keys))
	for _, raw := range set.Keys {
		if kid, k, ok := es256Key(raw); ok {
			keys[kid] = k
		}
	}
	if len(keys) == 0 {
		// An issuer always publishes the key it signs with: an empty set is
		// a fault, not a withdrawal of every key.
		return fmt.Errorf("fetching JWKS %s: no ES256 signing key in it", c.url)
	}
	next := &keySet{seq: seq, keys: keys}
	for {
		cur := c.set.Load()
		if cur != nil && cur.seq > seq {
			c.logger.DebugContext(ctx, "verifier: a key set fetched earlier arrived late: keeping the newer one")
			return nil
		}
		if c.set.CompareAndSwap(cur, next) {
			return nil
		}
	}
}

// es256Key returns the kid and key of a JWK usable for ES256 signatures
// (RFC 7518 §3.4: P-256), and false for any other.
func es256Key(raw json.RawMessage) (string, *ecdsa.PublicKey, bool) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return "", nil, false
	}
	pub, ok := jwk.Key.(*ecdsa.PublicKey)
	switch {
	case !ok || pub.Curve != elliptic.P256() || jwk.KeyID == "":
		return "", nil, false
	// RFC 7517 §4.2, §4.4: a key published for another use or algorithm is
	// not one to verify ES256 signatures with.
	case jwk.Use != "" && jwk.Use != "sig", jwk.Algorithm != "" && jwk.Algorithm != string(jose.ES256):
		return "", nil, false
	}
	return jwk.KeyID, pub, true
}

// discoverJWKS reads the issuer's discovery document (OpenID Connect
// Discovery 1.0 §4) and returns its jwks_uri.
func discoverJWKS(ctx context.Context, client *http.Client, issuer string) (string, error) {
	url := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(ctx, client, url, &doc); err != nil {
		return "", fmt.Errorf("discovering keys: %w", err)
	}
	// OpenID Connect Discovery 1.0 §4.3 (and RFC 8414 §3.3): the document
	// must be the issuer's own, or another server's keys would be trusted.
	if doc.Issuer != issuer {
		return "", fmt.Errorf("discovering keys: %s names issuer %q, not %q", url, clip(doc.Issuer), issuer)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("discovering keys: %s has no jwks_uri", url)
	}
	return doc.JWKSURI, nil
}

// getJSON GETs url and decodes its JSON body into out, within
// defaultHTTPTimeout: the client's own timeout may be none.
func getJSON(ctx context.Context, client *http.Client, url string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, defaultHTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err // a *url.Error: it names the method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if len(body) > maxDocumentBytes {
		return fmt.Errorf("GET %s: body over %d bytes", url, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: decoding body: %w", url, err)
	}
	return nil
}

// maxLoggedBytes bounds what of a value the token's bearer chose (its kid,
// its typ) reaches an error or a log line: a header may be megabytes, and
// RFC 8725 §3.10 asks that received header values not be trusted.
const maxLoggedBytes = 64

// clip returns s cut to its first maxLoggedBytes bytes (at a character
// boundary), saying how long it was if it was longer. Errors quote it with
// %q and slog quotes it itself, so control characters in it cannot forge a
// log line or drive a terminal.
func clip(s string) string {
	if len(s) <= maxLoggedBytes {
		return s
	}
	n := maxLoggedBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:n], len(s))
}
