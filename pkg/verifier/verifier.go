// Package verifier accepts tokenservice's access tokens in other Go
// services: it checks an RFC 9068 JWT access token against the issuer's
// published keys, with no call back to the issuer per request, and protects
// HTTP handlers (Middleware) and gRPC servers (UnaryServerInterceptor,
// StreamServerInterceptor) with it.
//
// It is built on github.com/go-jose/go-jose/v4, the JOSE library the
// tokenservice server itself signs with: it parses a compact JWS only
// against an allow-list of algorithms (so "none", HS256 keyed with the
// public key and every other algorithm are refused before any key is
// looked at) and is one module with no dependencies of its own.
// github.com/lestrrat-go/jwx/v3 would also do, but brings six more modules
// into every importer, and its JWKS cache refreshes on a schedule: the
// rate-limited refresh on an unknown kid that key rotation here needs (see
// Config.MinRefreshInterval) would still be written around it.
//
// The package imports nothing else of tokenservice, so importing it does not
// bring the server's database drivers or gateway along.
package verifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Config says which tokens a Verifier accepts and where it finds the keys.
type Config struct {
	// Issuer is the tokenservice's issuer URL (its --issuer): tokens must
	// carry exactly this iss, and the keys are discovered from
	// <Issuer>/.well-known/openid-configuration.
	Issuer string
	// Audience must be one of a token's aud values: the identifier of the
	// service verifying (the tokenservice's --audience, which defaults to
	// its issuer). It is also the realm of the HTTP challenge.
	Audience string
	// JWKSURL, if set, is where the keys are fetched, with no discovery.
	JWKSURL string
	// HTTPClient fetches the discovery document and the keys; nil: a client
	// with a 10s timeout. The Verifier uses a copy whose redirects stay on
	// the origin of the URL fetched.
	HTTPClient *http.Client
	// AllowInsecureLoopback lets Issuer and the JWKS URL be http:// on a
	// loopback host (localhost, 127.0.0.0/8, ::1), for development and
	// tests. Otherwise, and on any other host always, they must be
	// https://: keys fetched in plaintext are keys anyone on the path
	// chooses.
	AllowInsecureLoopback bool
	// Leeway is the clock skew allowed to exp, nbf and iat; 0: 30s
	// (DefaultLeeway); negative (NoLeeway): none, as net.Dialer's KeepAlive
	// says "off".
	Leeway time.Duration
	// RefreshInterval is how often the keys are fetched in the background,
	// so keys withdrawn by the issuer stop being trusted; 0: 5m, the
	// issuer's default --jwks-max-age. The issuer publishes a new key its
	// --key-propagation-delay before signing with it, so a refresh at
	// least that often meets every key before its first token does.
	RefreshInterval time.Duration
	// MinRefreshInterval is the least time between two fetches caused by a
	// token whose kid is unknown; 0: 30s. The issuer publishes a key before
	// it signs with it, but a verifier that started or last refreshed in
	// between (or an issuer key deleted and replaced at once) still meets
	// a kid it lacks; tokens with made-up kids must not cause a fetch each.
	MinRefreshInterval time.Duration
	// Logger receives failed key refreshes and refused tokens (at debug
	// level); nil: no logging.
	Logger *slog.Logger
}

// Defaults for the Config fields left zero.
const (
	// DefaultLeeway is Config.Leeway's default.
	DefaultLeeway = 30 * time.Second
	// NoLeeway, as Config.Leeway, allows no clock skew at all.
	NoLeeway time.Duration = -1
	// DefaultRefreshInterval is Config.RefreshInterval's default.
	DefaultRefreshInterval = 5 * time.Minute
	// DefaultMinRefreshInterval is Config.MinRefreshInterval's default.
	DefaultMinRefreshInterval = 30 * time.Second
	// defaultHTTPTimeout bounds each fetch of the discovery document or
	// the keys.
	defaultHTTPTimeout = 10 * time.Second
)

// ErrInvalidToken is wrapped by every error Verify returns: whatever the
// detail, the token is not accepted.
var ErrInvalidToken = errors.New("invalid access token")

// Verifier checks access tokens against the issuer's keys, which it keeps
// and refreshes. It is safe for concurrent use.
type Verifier struct {
	cfg  Config
	keys *keyCache

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New returns a Verifier for cfg once it has the issuer's keys: it reads the
// discovery document (unless cfg.JWKSURL is set), then the key set, under
// ctx. It then refreshes the keys in the background until Close.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		// Both are checked in every token (RFC 9068 §4): an empty one
		// would silently check nothing.
		return nil, errors.New("verifier: Issuer and Audience are required")
	}
	if err := checkURL("Issuer", cfg.Issuer, cfg.AllowInsecureLoopback); err != nil {
		return nil, err
	}
	cfg = withDefaults(cfg)
	// The refresh outlives New's ctx (which bounds only the first fetch)
	// but keeps its values.
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	keys := &keyCache{
		client:      cfg.HTTPClient,
		url:         cfg.JWKSURL,
		minInterval: cfg.MinRefreshInterval,
		logger:      cfg.Logger,
		life:        bg,
	}
	if keys.url == "" {
		url, err := discoverJWKS(ctx, cfg.HTTPClient, cfg.Issuer)
		if err != nil {
			stop()
			return nil, fmt.Errorf("verifier: %w", err)
		}
		keys.url = url
	}
	if err := checkURL("the JWKS URL", keys.url, cfg.AllowInsecureLoopback); err != nil {
		stop()
		return nil, err
	}
	if err := keys.refresh(ctx); err != nil {
		stop()
		return nil, fmt.Errorf("verifier: %w", err)
	}
	v := &Verifier{cfg: cfg, keys: keys, stop: stop}
	v.wg.Go(func() { keys.run(bg, cfg.RefreshInterval) })
	return v, nil
}

// checkURL refuses a URL to fetch keys from (or to discover them from)
// that is not https://, but for http:// on a loopback host when allowed.
// RFC 8414 §2: an issuer is an https URL; OpenID Connect Discovery 1.0
// §7.1: the discovery document and the keys are fetched over TLS, since
// whoever can change them in transit chooses the keys tokens are checked with.
func checkURL(what, raw string, allowLoopback bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("verifier: %s %q: %w", what, raw, err)
	case u.Host == "":
		return fmt.Errorf("verifier: %s %q is not an absolute URL", what, raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		if allowLoopback {
			return nil
		}
		return fmt.Errorf("verifier: %s %q is http: set AllowInsecureLoopback to allow it on a loopback host", what, raw)
	default:
		return fmt.Errorf("verifier: %s %q is not https (http is allowed only on a loopback host, with AllowInsecureLoopback)", what, raw)
	}
}

// isLoopback says whether host is localhost (RFC 6761 §6.3) or a loopback
// IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// sameOriginRedirects returns a copy of client that follows a redirect
// only to the origin (RFC 6454 §4: scheme, host and port) of the request it
// began with: a discovery document or key set served from elsewhere would
// be another server's keys. Past that, the client's own policy applies.
func sameOriginRedirects(client *http.Client) *http.Client {
	c := *client
	next := client.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if first := via[0].URL; req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
			return fmt.Errorf("refusing a redirect from %s to another origin, %s://%s", first.Redacted(), req.URL.Scheme, req.URL.Host)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 { // net/http's default policy
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

func withDefaults(cfg Config) Config {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: defaultHTTPTimeout}
	}
	cfg.HTTPClient = sameOriginRedirects(cfg.HTTPClient)
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0:
		cfg.Leeway = 0
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.MinRefreshInterval <= 0 {
		cfg.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Close stops the background refresh and waits for it to end. Verify keeps
// working with the keys it has.
func (v *Verifier) Close() {
	v.stop()
	v.wg.Wait()
	v.keys.wg.Wait() // fetches for an unknown kid
}
