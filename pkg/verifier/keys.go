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

	keys atomic.Pointer[map[string]*ecdsa.PublicKey]

	// mu makes callers with an unknown kid wait for one fetch, then look
	// again, instead of each fetching.
	mu             sync.Mutex
	lastKidRefresh time.Time // guarded by mu
}

// key returns the public key with this kid, fetching the key set again if
// it is unknown and no unknown kid caused a fetch in the last minInterval.
func (c *keyCache) key(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	if k, ok := c.lookup(kid); ok {
		return k, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.lookup(kid); ok { // fetched while this caller waited
		return k, nil
	}
	if since := time.Since(c.lastKidRefresh); since < c.minInterval {
		return nil, fmt.Errorf("%w: unknown kid %q (keys fetched for an unknown kid %s ago)", ErrInvalidToken, kid, since.Round(time.Millisecond))
	}
	c.lastKidRefresh = time.Now()
	// The fetch does not end with this request: the requests waiting on mu
	// depend on it, and a cancelled one would use up the interval.
	if err := c.refresh(context.WithoutCancel(ctx)); err != nil {
		c.logger.WarnContext(ctx, "verifier: refreshing keys for an unknown kid failed: keeping the keys it has", "kid", kid, "error", err)
		return nil, fmt.Errorf("%w: unknown kid %q: %w", ErrInvalidToken, kid, err)
	}
	if k, ok := c.lookup(kid); ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: unknown kid %q", ErrInvalidToken, kid)
}

func (c *keyCache) lookup(kid string) (*ecdsa.PublicKey, bool) {
	keys := c.keys.Load()
	if keys == nil {
		return nil, false
	}
	k, ok := (*keys)[kid]
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

// refresh fetches the key set and puts it in use; on any failure the keys
// in use stay.
func (c *keyCache) refresh(ctx context.Context) error {
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
	c.keys.Store(&keys)
	return nil
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
		return "", fmt.Errorf("discovering keys: %s names issuer %q, not %q", url, doc.Issuer, issuer)
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
