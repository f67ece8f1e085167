package issuers

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// maxRedirects is how many redirects a fetch follows, all on one host.
const maxRedirects = 3

// safeClient returns a copy of client (or a new one with timeout) whose
// redirects stay on the host (scheme, host and port) of the URL first
// asked for and never go from https to http: a trusted issuer's document
// served from elsewhere would be someone else's keys. The jwks_uri itself
// may be on another host, since the issuer's own document names it.
func safeClient(client *http.Client, timeout time.Duration) *http.Client {
	if client == nil {
		client = &http.Client{Timeout: timeout}
	}
	c := *client
	next := client.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		first := via[0].URL
		switch {
		case len(via) > maxRedirects:
			return fmt.Errorf("more than %d redirects", maxRedirects)
		// The same scheme as the first request's: so never https to http.
		case req.URL.Scheme != first.Scheme:
			return errors.New("a redirect to another scheme")
		case req.URL.Host != first.Host:
			return errors.New("a redirect to another host")
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &c
}

// fetchError is a fetch that failed; msg is in plain words for the
// token's bearer (it names the URL but never quotes the body), err the
// detail for the operator.
type fetchError struct {
	msg string
	err error
}

func (e *fetchError) Error() string {
	if e.err == nil {
		return e.msg
	}
	return e.msg + ": " + e.err.Error()
}

func (e *fetchError) Unwrap() error { return e.err }

// get fetches url within the Set's timeout and size limit and returns its
// body and how long to cache it.
func (s *Set) get(ctx context.Context, url string) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, &fetchError{"cannot fetch " + url, err}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, 0, &fetchError{fmt.Sprintf("fetching %s took longer than %s", url, s.cfg.Timeout), err}
		}
		return nil, 0, &fetchError{"cannot fetch " + url, err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, &fetchError{fmt.Sprintf("fetching %s answered %d, not 200", url, resp.StatusCode), nil}
	}
	tooBig := &fetchError{fmt.Sprintf("%s is larger than %d bytes", url, s.cfg.MaxBytes), nil}
	if resp.ContentLength > s.cfg.MaxBytes {
		return nil, 0, tooBig
	}
	body, err := readAtMost(resp.Body, s.cfg.MaxBytes)
	switch {
	case errors.Is(err, errTooBig):
		return nil, 0, tooBig
	case errors.Is(err, context.DeadlineExceeded):
		return nil, 0, &fetchError{fmt.Sprintf("fetching %s took longer than %s", url, s.cfg.Timeout), err}
	case err != nil:
		return nil, 0, &fetchError{"cannot read " + url, err}
	}
	return body, s.cacheTTL(resp.Header.Values("Cache-Control")), nil
}

var errTooBig = errors.New("larger than the limit")

// readAtMost reads r to its end, or fails with errTooBig past limit bytes:
// a document cut at the limit might still parse, as something else.
func readAtMost(r io.Reader, limit int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, errTooBig
	}
	return body, nil
}

// cacheTTL reads max-age from Cache-Control (RFC 9111 §5.2.2.1) and clamps
// it to [MinCacheTTL, MaxCacheTTL]; with none, DefaultCacheTTL. no-store
// and no-cache count as max-age=0: the shortest time allowed, since a
// document fetched per token would let tokens drive the fetches.
func (s *Set) cacheTTL(headers []string) time.Duration {
	ttl, found := time.Duration(0), false
	for _, h := range headers {
		for d := range strings.SplitSeq(h, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				ttl, found = 0, true
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
				if err != nil || n < 0 {
					continue
				}
				d := s.cfg.MaxCacheTTL // also keeps a huge n from overflowing
				if n < int64(d/time.Second) {
					d = time.Duration(n) * time.Second
				}
				if !found || d < ttl {
					ttl = d
				}
				found = true
			}
		}
	}
	if !found {
		return s.cfg.DefaultCacheTTL
	}
	return min(max(ttl, s.cfg.MinCacheTTL), s.cfg.MaxCacheTTL)
}

// discover fetches issuer's discovery document (OpenID Connect Discovery
// 1.0 §4) and returns its jwks_uri and how long to cache it.
func (s *Set) discover(ctx context.Context, issuer string) (string, time.Duration, error) {
	url := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	body, ttl, err := s.get(ctx, url)
	if err != nil {
		return "", 0, err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", 0, &fetchError{url + " is not a discovery document (JSON)", err}
	}
	// OpenID Connect Discovery 1.0 §4.3: the document must be the issuer's
	// own, or another server's keys would be trusted for it.
	if doc.Issuer != issuer {
		return "", 0, &fetchError{fmt.Sprintf("%s names another issuer than %s", url, issuer), nil}
	}
	if doc.JWKSURI == "" {
		return "", 0, &fetchError{url + " names no jwks_uri", nil}
	}
	if err := checkKeysURL(issuer, doc.JWKSURI); err != nil {
		return "", 0, &fetchError{url + ": " + err.Error(), nil}
	}
	return doc.JWKSURI, ttl, nil
}

// fetchJWKS fetches a JWKS and returns its usable keys and how long to
// cache them.
func (s *Set) fetchJWKS(ctx context.Context, url string) ([]jose.JSONWebKey, time.Duration, error) {
	body, ttl, err := s.get(ctx, url)
	if err != nil {
		return nil, 0, err
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, 0, &fetchError{url + ": " + err.Error(), nil}
	}
	return keys, ttl, nil
}

// parseJWKS parses a JWKS (RFC 7517 §5) and keeps the keys this package may
// verify with: public RSA (2048 bits or more), P-256 and Ed25519 keys for
// signatures. Private, symmetric (oct) and encryption keys are ignored, as
// are keys go-jose cannot parse (a new kty must not hide the rest): each
// key is parsed on its own rather than as a jose.JSONWebKeySet, which fails
// whole. A set with no usable key is an error: an issuer always publishes
// the key it signs with, so an empty one is a fault, not a withdrawal.
func parseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, errors.New("not a JWKS (JSON)")
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(raw) != nil || !usable(&k) {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable signing key in the JWKS")
	}
	return keys, nil
}

// usable says whether k is a public key for signatures of a type Verify
// accepts (RFC 7517 §4.2: use "sig" or absent).
func usable(k *jose.JSONWebKey) bool {
	if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
		return false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return pub.N.BitLen() >= 2048 // RFC 7518 §3.3
	case *ecdsa.PublicKey:
		return pub.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return true
	}
	return false // oct ([]byte) and anything else
}

// algFits says whether k may verify a signature by alg: its type is alg's,
// and its own alg, if it names one, is alg (RFC 7517 §4.4).
func algFits(k *jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch k.Key.(type) {
	case *rsa.PublicKey:
		return alg == string(jose.RS256)
	case *ecdsa.PublicKey:
		return alg == string(jose.ES256)
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}
