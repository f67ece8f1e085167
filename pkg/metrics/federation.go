package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenservice/tokenservice/pkg/federation"
	"github.com/tokenservice/tokenservice/pkg/issuers"
)

var (
	_ federation.Observer = (*Metrics)(nil)
	_ issuers.Observer    = (*Metrics)(nil)
)

// federationMetrics count federated exchanges and the trusted issuers'
// key fetches. Their issuer label is a trusted issuer's URL (the operator's
// list) or "untrusted": a client cannot add series.
type federationMetrics struct {
	exchanges *prometheus.CounterVec
	fetches   *prometheus.CounterVec
}

func newFederationMetrics(f factory) federationMetrics {
	return federationMetrics{
		exchanges: f.counterVec("federated_exchanges_total", "Exchanges of a trusted issuer's token for an access token (RFC 8693, RFC 7523), by issuer (untrusted: none trusted was named) and outcome: ok, or why not (the verifier's reason, no_credential, audience, condition, ambiguous, denied, error).", "issuer", "outcome"),
		fetches:   f.counterVec("issuer_key_fetches_total", "Fetches of a trusted issuer's discovery document or JWKS (or reads of its local JWKS file), by issuer, document (discovery, jwks) and result (ok, error).", "issuer", "document", "result"),
	}
}

// exchangeOutcomes are the outcome label's values: the exchange's own and
// the verifier's reasons.
var exchangeOutcomes = []string{
	federation.OutcomeOK, federation.OutcomeNoCredential, federation.OutcomeAudience, federation.OutcomeCondition,
	federation.OutcomeAmbiguous, federation.OutcomeDenied, federation.OutcomeError,
	issuers.ReasonMalformed, issuers.ReasonUntrustedIssuer, issuers.ReasonUnsupportedAlg, issuers.ReasonUnknownKey,
	issuers.ReasonSignature, issuers.ReasonExpired, issuers.ReasonNotYetValid, issuers.ReasonTooOld,
	issuers.ReasonMissingClaim, issuers.ReasonKeysUnavailable,
}

// untrusted is the issuer label of a token that named no trusted issuer.
const untrusted = "untrusted"

// TrustedIssuers makes the series of the trusted issuers (and of tokens of
// none) from the start, so that a rate over them is there before the
// first exchange.
func (m *Metrics) TrustedIssuers(urls []string) {
	for _, o := range exchangeOutcomes {
		m.federation.exchanges.WithLabelValues(untrusted, o)
	}
	for _, u := range urls {
		for _, o := range exchangeOutcomes {
			m.federation.exchanges.WithLabelValues(u, o)
		}
		for _, d := range []string{issuers.DocumentDiscovery, issuers.DocumentJWKS} {
			m.federation.fetches.WithLabelValues(u, d, "ok")
			m.federation.fetches.WithLabelValues(u, d, "error")
		}
	}
}

// Exchanged implements federation.Observer.
func (m *Metrics) Exchanged(issuer, outcome string) {
	if issuer == "" {
		issuer = untrusted
	}
	m.federation.exchanges.WithLabelValues(issuer, outcome).Inc()
}

// Fetched implements issuers.Observer.
func (m *Metrics) Fetched(issuer, document string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.federation.fetches.WithLabelValues(issuer, document, result).Inc()
}
