package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// oidcIssuer is a platform's OIDC issuer: discovery and a JWKS on loopback
// HTTP (which serve's --trusted-issuers allows), tokens signed RS256 with
// go-jose.
type oidcIssuer struct {
	*httptest.Server
	signer jose.Signer
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	op := &oidcIssuer{signer: signer}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": op.URL, "jwks_uri": op.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	op.Server = httptest.NewServer(mux)
	t.Cleanup(op.Close)
	return op
}

// token returns a token of the issuer's for subject and audience, with
// the extra claims given.
func (op *oidcIssuer) token(t *testing.T, subject, audience string, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.Signed(op.signer).Claims(jwt.Claims{Issuer: op.URL, Subject: subject, Audience: jwt.Audience{audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)), ID: subject + now.String()}).
		Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The CLI against the real server: a GitHub Actions job's token, asked of
// a stand-in of GitHub's request URL and signed by a stand-in issuer, is
// exchanged at serve's token endpoint for an access token of the machine
// user whose federated credential trusts it; a job on another branch is
// refused in the server's words.
func TestExchangeEndToEnd(t *testing.T) {
	op := newOIDCIssuer(t)
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_TRUSTED_ISSUERS", op.URL)
		s.mustUser(t, "alice", "admin")
		botID := s.mustUser(t, "ci-bot", "machine:alice")
		a := rpc{t, s.grpcCaller()}
		alice := a.login("alice")
		const main, audience = "repo:acme/app:ref:refs/heads/main", "https://tokens.example.com"
		_, err := pb.NewFederatedCredentialServiceClient(s.grpcConn).CreateFederatedCredential(as(alice), &pb.CreateFederatedCredentialRequest{
			UserId: botID,
			FederatedCredential: &pb.FederatedCredential{Issuer: op.URL, Subject: main, Audiences: []string{audience},
				Condition: `claims.repository_owner_id == "1234"`},
		})
		if err != nil {
			t.Fatalf("CreateFederatedCredential: %s", describe(err))
		}

		subject := main
		gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer job-request-token" {
				http.Error(w, "bad credentials", http.StatusUnauthorized)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"value": op.token(t, subject, r.URL.Query().Get("audience"), map[string]any{"repository_owner_id": "1234"})})
		}))
		t.Cleanup(gh.Close)
		sh := machineShell(t, map[string]string{
			githubRequestURL:   gh.URL + "/idtoken?api-version=2.0",
			githubRequestToken: "job-request-token",
		})

		access := strings.TrimSpace(sh.must("", "token", "exchange", "--github-actions", "--issuer", s.httpURL, "--audience", audience))
		got, err := a.users().GetUser(as(access), &pb.GetUserRequest{UserId: "me"})
		if err != nil || got.GetUser().GetUsername() != "ci-bot" {
			t.Errorf("the exchanged access token is ci-bot's: %v, %s", got.GetUser(), describe(err))
		}

		subject = "repo:acme/app:ref:refs/heads/dev"
		_, errOut, code := sh.run("", "token", "exchange", "--github-actions", "--issuer", s.httpURL, "--audience", audience)
		if code != exitCredentials || !strings.Contains(errOut, "the server refused the platform's token: ") {
			t.Errorf("another branch's job: exit %d, stderr %q; want exit 3, the server's refusal", code, errOut)
		}
		// The wrong audience: refused too.
		subject = main
		if _, _, code := sh.run("", "token", "exchange", "--github-actions", "--issuer", s.httpURL); code != exitCredentials {
			t.Errorf("a token for the issuer's audience, not the credential's: exit %d, want 3", code)
		}
	})
}
