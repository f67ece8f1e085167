package issuers

import (
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Config says which issuers a Set trusts and how it fetches and checks.
// Zero fields take the defaults below.
type Config struct {
	// Issuers are the trusted issuers (ParseList reads the operator's list).
	Issuers []Issuer
	// Timeout bounds each fetch of a discovery document or a JWKS; 0: 5s.
	Timeout time.Duration
	// MaxBytes bounds each document fetched or read; a larger one is an
	// error, not truncated; 0: 512 KiB.
	MaxBytes int64
	// MinCacheTTL and MaxCacheTTL bound how long a document is used before
	// it is fetched again, whatever its Cache-Control max-age says
	// (0: 1m and 24h); DefaultCacheTTL is used when it says none (0: 1h).
	// A local JWKS file is kept for DefaultCacheTTL. When a document is
	// due and fetching it again fails, the one cached stays in use for up
	// to MaxCacheTTL more (a grace: an issuer briefly down does not stop
	// every exchange), each failure reported to the Observer.
	MinCacheTTL, MaxCacheTTL, DefaultCacheTTL time.Duration
	// RefreshInterval is the least time between two fetches for one issuer,
	// whatever caused them (an unknown kid, a cache expiry, a failed fetch
	// retried); 0: 1m. Concurrent callers share one fetch.
	RefreshInterval time.Duration
	// Leeway is the clock skew allowed to exp, nbf and iat; 0: 1m.
	Leeway time.Duration
	// MaxAge is how old iat may be; 0: 1h.
	MaxAge time.Duration
	// Clock returns the current time; nil: time.Now.
	Clock func() time.Time
	// Client fetches documents; nil: one with Timeout. Whichever is used,
	// the Set uses a copy that refuses a redirect to another host (scheme,
	// host and port) or from https to http, and stops after 3 redirects;
	// the client's own CheckRedirect then applies.
	Client *http.Client
	// Observer is told of every fetch (and file read); nil: none.
	Observer Observer
}

// Observer is told of each fetch of a discovery document or a JWKS, for
// metrics and logs. It is called from the goroutine that fetched, after the
// fetch; it must not block.
type Observer interface {
	// Fetched reports one fetch: issuer is the trusted issuer's URL,
	// document "discovery" or "jwks" (also for a local JWKS file read), err
	// nil on success. A failed refetch whose old keys stay in use (see
	// Set.Verify) is reported here too.
	Fetched(issuer, document string, err error)
}

// Defaults of the Config fields left zero.
const (
	DefaultTimeout         = 5 * time.Second
	DefaultMaxBytes        = 512 << 10
	DefaultMinCacheTTL     = time.Minute
	DefaultMaxCacheTTL     = 24 * time.Hour
	DefaultDefaultCacheTTL = time.Hour
	DefaultRefreshInterval = time.Minute
	DefaultLeeway          = time.Minute
	DefaultMaxAge          = time.Hour
)

// Documents an Observer is told of.
const (
	DocumentDiscovery = "discovery"
	DocumentJWKS      = "jwks"
)

// Set is the trusted issuers with their cached keys. It is safe for
// concurrent use.
type Set struct {
	cfg     Config
	client  *http.Client
	urls    []string
	issuers map[string]*issuerKeys // by URL
}

// New returns a Set for cfg. It reads each issuer's JWKS file now and fails
// if one cannot be read or holds no usable key; it fetches nothing: an
// issuer's documents are fetched when a token first needs them.
func New(cfg Config) (*Set, error) {
	cfg = withDefaults(cfg)
	if cfg.MinCacheTTL > cfg.MaxCacheTTL {
		return nil, fmt.Errorf("issuers: MinCacheTTL %s is more than MaxCacheTTL %s", cfg.MinCacheTTL, cfg.MaxCacheTTL)
	}
	s := &Set{cfg: cfg, client: safeClient(cfg.Client, cfg.Timeout), issuers: make(map[string]*issuerKeys)}
	for _, iss := range cfg.Issuers {
		if err := checkIssuerURL(iss.URL); err != nil {
			return nil, fmt.Errorf("issuers: trusted issuer %q: %w", iss.URL, err)
		}
		if _, dup := s.issuers[iss.URL]; dup {
			return nil, fmt.Errorf("issuers: trusted issuer %q is listed twice", iss.URL)
		}
		ik := &issuerKeys{set: s, issuer: iss}
		if iss.JWKSFile != "" {
			if err := ik.loadFile(cfg.Clock()); err != nil {
				return nil, fmt.Errorf("issuers: trusted issuer %q: %w", iss.URL, err)
			}
		}
		s.issuers[iss.URL] = ik
		s.urls = append(s.urls, iss.URL)
	}
	return s, nil
}

func withDefaults(cfg Config) Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Timeout, DefaultTimeout)
	def(&cfg.MinCacheTTL, DefaultMinCacheTTL)
	def(&cfg.MaxCacheTTL, DefaultMaxCacheTTL)
	def(&cfg.DefaultCacheTTL, DefaultDefaultCacheTTL)
	def(&cfg.RefreshInterval, DefaultRefreshInterval)
	def(&cfg.Leeway, DefaultLeeway)
	def(&cfg.MaxAge, DefaultMaxAge)
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	cfg.DefaultCacheTTL = min(max(cfg.DefaultCacheTTL, cfg.MinCacheTTL), cfg.MaxCacheTTL)
	return cfg
}

type noObserver struct{}

func (noObserver) Fetched(string, string, error) {}

// URLs returns the trusted issuers' URLs, in the configured order.
func (s *Set) URLs() []string { return slices.Clone(s.urls) }

// Trusted says whether iss is exactly one of the trusted issuers' URLs.
func (s *Set) Trusted(iss string) bool {
	_, ok := s.issuers[iss]
	return ok
}
