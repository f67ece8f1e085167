package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/tokenservice/tokenservice/pkg/cache"
	"github.com/tokenservice/tokenservice/pkg/federation"
	"github.com/tokenservice/tokenservice/pkg/issuers"
)

// FederationConfig says which OIDC issuers' tokens may stand for machine
// users (issue 21) and how their keys are fetched.
type FederationConfig struct {
	// Issuers fetches and checks the trusted issuers' keys; no Issuers:
	// every federated credential and exchange is refused, naming the flag.
	Issuers issuers.Config
	// MaxPerUser bounds each machine user's federated credentials (0:
	// federation.DefaultMaxPerUser; negative: no bound).
	MaxPerUser int
}

// buildFederation builds the federated credentials' rules over the store
// (through the cache) and the trusted issuers.
func (a *App) buildFederation(data cache.Store) error {
	cfg := a.cfg.Federation
	icfg := cfg.Issuers
	icfg.Observer = a.metrics
	set, err := issuers.New(icfg)
	if err != nil {
		return err
	}
	a.trustedIssuers = set.URLs()
	a.metrics.TrustedIssuers(a.trustedIssuers)
	conditions, err := federation.NewConditions(federation.DefaultConditionsKept)
	if err != nil {
		return err
	}
	max := cfg.MaxPerUser
	switch {
	case max == 0:
		max = federation.DefaultMaxPerUser
	case max < 0:
		max = 0
	}
	a.federation = federation.New(federation.Config{MaxPerUser: max}, federation.Deps{
		Store: data, Tokens: a.tokens, Issuers: trustedIssuers{set}, Conditions: conditions,
		Audit: a.auditRecorder, Observer: a.metrics, Clock: now, Rand: rand.Reader})
	return nil
}

// trustedIssuerOf returns the iss a refused token names, unverified, if it
// is a trusted issuer (for the metrics' issuer label, which no client may
// fill with values of its own), else "".
func (t trustedIssuers) trustedIssuerOf(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || len(parts[1]) > 64<<10 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	// A map, as the verifier reads claims: a struct field would also take
	// "ISS" (encoding/json matches names without case), and credit a
	// token that names an untrusted iss to a trusted issuer.
	var claims map[string]any
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	iss, _ := claims["iss"].(string)
	if !t.set.Trusted(iss) {
		return ""
	}
	return iss
}

// trustedIssuers adapts an issuers.Set to what pkg/federation asks.
type trustedIssuers struct{ set *issuers.Set }

func (t trustedIssuers) URLs() []string          { return t.set.URLs() }
func (t trustedIssuers) Trusted(iss string) bool { return t.set.Trusted(iss) }

func (t trustedIssuers) Verify(ctx context.Context, raw string) (*federation.SubjectToken, error) {
	tok, err := t.set.Verify(ctx, raw)
	if err != nil {
		var e *issuers.Error
		if !errors.As(err, &e) {
			return nil, &federation.RefusedToken{Reason: federation.OutcomeError, Message: "the subject token could not be verified"}
		}
		return nil, &federation.RefusedToken{Issuer: t.trustedIssuerOf(raw), Reason: e.Reason, Message: e.Message}
	}
	return &federation.SubjectToken{Issuer: tok.Issuer, Subject: tok.Subject, ID: tok.ID, Audience: tok.Audience, Claims: tok.Claims}, nil
}
