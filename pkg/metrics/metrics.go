// Package metrics owns the service's Prometheus metrics: the RPCs' (by
// go-grpc-middleware's provider, over gRPC and over REST), the Go runtime's,
// the process's, the database pool's, and the service's own counters, which
// it collects by observing the token, user, cache and last-used packages (and
// the key rotations the app reports). Names follow
// https://prometheus.io/docs/practices/naming/: the service's own under one
// namespace, base units, _total on counters.
package metrics

import (
	"context"
	"database/sql"
	"math"
	"net/http"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/tokenservice/tokenservice/pkg/cache"
	"github.com/tokenservice/tokenservice/pkg/lastused"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"
)

const namespace = "tokenservice"

// Transports label the RPC metrics: the same services answer both.
const (
	TransportGRPC = "grpc"
	TransportREST = "rest"
)

// Metrics holds the registry and the service's own metrics. It implements
// the observers of tokens, users, cache and lastused.
type Metrics struct {
	reg  *prometheus.Registry
	rpcs *grpcprom.ServerMetrics

	tokensCreated     prometheus.Counter
	checks            map[tokens.Check]map[tokens.Outcome]prometheus.Counter
	passwords         map[users.PasswordOutcome]prometheus.Counter
	limited           map[users.PasswordOutcome]prometheus.Counter
	creationsLimited  prometheus.Counter
	cacheReads        map[cache.Kind][2]prometheus.Counter // [miss, hit]
	flushes           [2]prometheus.Counter                // [ok, error]
	flushedTokens     prometheus.Counter
	feedPolls         [2]prometheus.Counter // [ok, error]
	feedChanges       prometheus.Counter
	feedLastPoll      prometheus.Gauge
	signingKeysAdded  prometheus.Counter
	keyReloadFailures prometheus.Counter
	audit             auditMetrics
	federation        federationMetrics
}

var (
	_ tokens.Observer    = (*Metrics)(nil)
	_ users.Observer     = (*Metrics)(nil)
	_ cache.Observer     = (*Metrics)(nil)
	_ lastused.Observer  = (*Metrics)(nil)
	_ cache.FeedObserver = (*Metrics)(nil)
)

// latencyBuckets cover an exchange from the cache (tens of microseconds)
// to a password check under load (a second).
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// New returns the metrics, registered in a registry of their own with the
// Go runtime's and the process's collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		rpcs: grpcprom.NewServerMetrics(
			grpcprom.WithContextLabels("transport"),
			grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(latencyBuckets)),
		),
	}
	f := factory{reg}
	m.tokensCreated = f.counter("api_tokens_created_total", "API tokens created.")
	exchanges := f.counterVec("token_exchanges_total", "API tokens exchanged for access tokens, by outcome.", "outcome")
	bearers := f.counterVec("bearer_checks_total", "Bearer credentials checked, by credential (api_token, access_token) and outcome.", "credential", "outcome")
	// The outcomes each check can have, each series there from the start.
	apiToken := []tokens.Outcome{tokens.OutcomeOK, tokens.OutcomeMalformed, tokens.OutcomeUnknown, tokens.OutcomeWrongSecret,
		tokens.OutcomeRevoked, tokens.OutcomeExpired, tokens.OutcomeError}
	accessToken := []tokens.Outcome{tokens.OutcomeOK, tokens.OutcomeMalformed, tokens.OutcomeInvalid,
		tokens.OutcomeRevoked, tokens.OutcomeExpired, tokens.OutcomeError}
	m.checks = map[tokens.Check]map[tokens.Outcome]prometheus.Counter{
		tokens.CheckExchange: {}, tokens.CheckBearerAPIToken: {}, tokens.CheckBearerAccessToken: {},
	}
	for _, o := range apiToken {
		m.checks[tokens.CheckExchange][o] = exchanges.WithLabelValues(string(o))
		m.checks[tokens.CheckBearerAPIToken][o] = bearers.WithLabelValues("api_token", string(o))
	}
	for _, o := range accessToken {
		m.checks[tokens.CheckBearerAccessToken][o] = bearers.WithLabelValues("access_token", string(o))
	}
	passwords := f.counterVec("password_attempts_total", "Password attempts (logins, and old passwords given to change one), by outcome.", "outcome")
	limits := f.counterVec("rate_limit_refusals_total", "Attempts refused by a rate limit, by limit: password attempts (address, user_and_address, user) and user creations (user_creations).", "limit")
	m.creationsLimited = limits.WithLabelValues("user_creations")
	m.passwords, m.limited = map[users.PasswordOutcome]prometheus.Counter{}, map[users.PasswordOutcome]prometheus.Counter{}
	for _, o := range []users.PasswordOutcome{users.PasswordOK, users.PasswordWrong, users.PasswordUnknownUser, users.PasswordSignInOff} {
		m.passwords[o] = passwords.WithLabelValues(string(o))
	}
	limitedAttempts := passwords.WithLabelValues("limited")
	for o, limit := range map[users.PasswordOutcome]string{users.LimitedByAddress: "address", users.LimitedByUserAndAddress: "user_and_address", users.LimitedByUser: "user"} {
		m.passwords[o] = limitedAttempts
		m.limited[o] = limits.WithLabelValues(limit)
	}
	reads := f.counterVec("cache_reads_total", "Token, user and federated credential reads, by cache (tokens, users, federated_credentials) and result (hit: answered from memory; miss: read from the database).", "cache", "result")
	m.cacheReads = map[cache.Kind][2]prometheus.Counter{}
	for _, k := range []cache.Kind{cache.Tokens, cache.Users, cache.FederatedCredentials} {
		m.cacheReads[k] = [2]prometheus.Counter{reads.WithLabelValues(string(k), "miss"), reads.WithLabelValues(string(k), "hit")}
	}
	flushes := f.counterVec("last_used_flushes_total", "Batched writes of tokens' last-used times, by result (ok, error).", "result")
	m.flushes = [2]prometheus.Counter{flushes.WithLabelValues("ok"), flushes.WithLabelValues("error")}
	m.flushedTokens = f.counter("last_used_flushed_tokens_total", "Tokens whose last-used time was written.")
	polls := f.counterVec("change_feed_polls_total", "Polls of the database's change feed (revocations through any replica), by result (ok, error).", "result")
	m.feedPolls = [2]prometheus.Counter{polls.WithLabelValues("ok"), polls.WithLabelValues("error")}
	m.feedChanges = f.counter("change_feed_changes_total", "Changes read from the change feed and dropped from this replica's cache.")
	m.feedLastPoll = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "change_feed_last_success_timestamp_seconds",
		Help: "When the change feed was last polled successfully (Unix time): while it is older than the cache TTL, cached tokens and users expire by the TTL."})
	reg.MustRegister(m.feedLastPoll)
	m.keyReloadFailures = f.counter("signing_key_reload_failures_total", "Reloads of the signing keys from the database that failed (the replica keeps the keys it has; past the propagation delay less the JWKS max-age it is not ready).")
	m.signingKeysAdded = f.counter("signing_keys_added_total", "Signing keys this replica added: rotations it made (keys rotate and other replicas add keys too).")
	m.audit = newAuditMetrics(f)
	m.federation = newFederationMetrics(f)
	reg.MustRegister(m.rpcs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// UnaryServerInterceptor counts and times each RPC, labelled with the
// transport it came by.
func (m *Metrics) UnaryServerInterceptor(transport string) grpc.UnaryServerInterceptor {
	labels := prometheus.Labels{"transport": transport}
	return m.rpcs.UnaryServerInterceptor(grpcprom.WithLabelsFromContext(func(context.Context) prometheus.Labels { return labels }))
}

// Sources are what the collectors read at each scrape.
type Sources struct {
	// DB: the pool's metrics (connections open, in use, idle, waits), from
	// database/sql's statistics.
	DB *sql.DB
	// SigningKeyActivated: when the key that signs started signing (false
	// while none is loaded): an alert on its age catches a rotation that
	// stopped.
	SigningKeyActivated func() (time.Time, bool)
	// CountExpiring: the live API tokens that expire between from and to
	// (an indexed count), read with Clock for the tokens expiring within
	// ExpiringWithin.
	CountExpiring func(ctx context.Context, from, to time.Time) (int64, error)
	Clock         func() time.Time
	// Transactions: the store's write transactions so far, and how often
	// they lost a conflict (on Galera, a certification failure).
	Transactions func() TransactionCounts
}

// TransactionCounts are the store's counts of its write transactions.
type TransactionCounts struct {
	Begun     uint64 // each transaction once, however often it ran
	Conflicts uint64 // attempts that lost a conflict, then ran again or gave up
	GaveUp    uint64 // transactions that lost a conflict on every attempt
}

// Register adds the collectors that read the sources: the one list of
// them, which the app and Families both use.
func (m *Metrics) Register(s Sources) {
	m.reg.MustRegister(collectors.NewDBStatsCollector(s.DB, namespace))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "signing_key_age_seconds",
		Help: "Seconds since the key that signs access tokens started signing.",
	}, func() float64 {
		at, ok := s.SigningKeyActivated()
		if !ok {
			return 0
		}
		return time.Since(at).Seconds()
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "api_tokens_expiring_soon",
		Help: "Live API tokens that expire within the next 7 days.",
	}, func() float64 {
		// NaN when the database does not answer in time.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		now := s.Clock()
		n, err := s.CountExpiring(ctx, now, now.Add(ExpiringWithin))
		if err != nil {
			return math.NaN()
		}
		return float64(n)
	}))
	for _, c := range []struct {
		name, help string
		count      func(TransactionCounts) uint64
	}{
		{"db_transactions_total", "Write transactions begun, each counted once however often it ran.",
			func(c TransactionCounts) uint64 { return c.Begun }},
		{"db_transaction_conflicts_total", "Attempts of a write transaction that lost a conflict (a deadlock; on Galera, a certification failure) and ran again or gave up.",
			func(c TransactionCounts) uint64 { return c.Conflicts }},
		{"db_transactions_given_up_total", "Write transactions that lost a conflict on every attempt: the caller was told to retry (UNAVAILABLE).",
			func(c TransactionCounts) uint64 { return c.GaveUp }},
	} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: c.name, Help: c.help},
			func() float64 { return float64(c.count(s.Transactions())) }))
	}
}

// ExpiringWithin is the horizon of the expiring-tokens gauge.
const ExpiringWithin = 7 * 24 * time.Hour

// TokenCreated implements tokens.Observer.
func (m *Metrics) TokenCreated() { m.tokensCreated.Inc() }

// CredentialChecked implements tokens.Observer.
func (m *Metrics) CredentialChecked(check tokens.Check, outcome tokens.Outcome) {
	if c := m.checks[check][outcome]; c != nil {
		c.Inc()
	}
}

// PasswordChecked implements users.Observer.
func (m *Metrics) PasswordChecked(outcome users.PasswordOutcome) {
	if c := m.passwords[outcome]; c != nil {
		c.Inc()
	}
	if c := m.limited[outcome]; c != nil {
		c.Inc()
	}
}

// UserCreationLimited implements users.Observer.
func (m *Metrics) UserCreationLimited() { m.creationsLimited.Inc() }

// CacheRead implements cache.Observer.
func (m *Metrics) CacheRead(kind cache.Kind, hit bool) {
	i := 0
	if hit {
		i = 1
	}
	if c := m.cacheReads[kind][i]; c != nil {
		c.Inc()
	}
}

// LastUsedFlushed implements lastused.Observer.
func (m *Metrics) LastUsedFlushed(n int, err error) {
	if err != nil {
		m.flushes[1].Inc()
		return
	}
	m.flushes[0].Inc()
	m.flushedTokens.Add(float64(n))
}

// FeedPolled implements cache.FeedObserver.
func (m *Metrics) FeedPolled(changes int, err error) {
	if err != nil {
		m.feedPolls[1].Inc()
		return
	}
	m.feedPolls[0].Inc()
	m.feedChanges.Add(float64(changes))
	m.feedLastPoll.SetToCurrentTime()
}

// SigningKeyAdded counts a key this replica added.
func (m *Metrics) SigningKeyAdded() { m.signingKeysAdded.Inc() }

// SigningKeyReloadFailed counts a failed reload of the signing keys.
func (m *Metrics) SigningKeyReloadFailed() { m.keyReloadFailures.Inc() }
