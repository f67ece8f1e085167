package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The federated credential the bench makes, and the subject tokens' claims
// that match it.
const (
	federatedSubject  = "repo:tokenbench/bench:ref:refs/heads/main"
	federatedAudience = "https://tokenbench.test/federation"
)

// issuerStandIn is a trusted OIDC issuer for the federated scenarios (issue
// 21): discovery and a JWKS with one RS256 key, on 127.0.0.1 (a loopback
// issuer may be plain http), counting the requests each document gets.
type issuerStandIn struct {
	srv  *httptest.Server
	url  string
	key  *rsa.PrivateKey
	kid  string
	jwks []byte

	discoveryHits, jwksHits atomic.Int64
}

// startIssuer starts the stand-in on a free loopback port.
func startIssuer() (*issuerStandIn, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s := &issuerStandIn{key: key, kid: "bench-" + rand.Text()[:8]}
	s.jwks, err = json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: s.kid, Algorithm: string(jose.RS256), Use: "sig"}}})
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener = l
	s.srv.Start()
	s.url = s.srv.URL
	return s, nil
}

func (s *issuerStandIn) close() { s.srv.Close() }

// serve answers discovery and the JWKS as a platform's issuer does, cached
// for an hour: every fetch the server makes meanwhile is one the rate
// limit or an unknown kid caused, not an expiry.
func (s *issuerStandIn) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=3600")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		s.discoveryHits.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"issuer": s.url, "jwks_uri": s.url + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"}})
	case "/jwks":
		s.jwksHits.Add(1)
		w.Write(s.jwks)
	default:
		http.NotFound(w, r)
	}
}

// fetches returns the requests for discovery and for the JWKS so far.
func (s *issuerStandIn) fetches() (discovery, jwks int64) {
	return s.discoveryHits.Load(), s.jwksHits.Load()
}

// subjectTokens signs n tokens (RS256, each with its own jti) for the
// bench's federated credential, valid for an hour from now (the server's
// --federated-token-max-age is an hour by default); kid names each one's
// key: the issuer's own for tokens that verify, a random one for the
// unknown-kid flood. Signing spreads over the CPUs: 2048-bit RSA takes
// about a millisecond a token.
func (s *issuerStandIn) subjectTokens(n int, kid func() string) ([]string, error) {
	now := time.Now()
	tokens := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				tokens[i], errs[i] = s.sign(kid(), jwt.Claims{
					Issuer:   s.url,
					Subject:  federatedSubject,
					Audience: jwt.Audience{federatedAudience},
					IssuedAt: jwt.NewNumericDate(now),
					Expiry:   jwt.NewNumericDate(now.Add(time.Hour)),
					ID:       rand.Text(),
				})
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("signing subject tokens: %w", err)
		}
	}
	return tokens, nil
}

func (s *issuerStandIn) sign(kid string, claims jwt.Claims) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: s.key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

// ownKid is the kid of the issuer's key; randomKid one it never had.
func (s *issuerStandIn) ownKid() string { return s.kid }
func randomKid() string                 { return "unknown-" + rand.Text() }
