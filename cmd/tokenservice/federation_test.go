package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/routers"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v3/jwk"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/oauth"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// audience is what the stand-in's tokens are requested for: this service.
const audience = "http://tokenservice.test"

func (a rpc) createCredential(bearer, userID string, c *pb.FederatedCredential) (*pb.FederatedCredential, error) {
	resp := &pb.CreateFederatedCredentialResponse{}
	err := a.c.call(context.Background(), pb.FederatedCredentialService_CreateFederatedCredential_FullMethodName, bearer,
		&pb.CreateFederatedCredentialRequest{UserId: userID, FederatedCredential: c}, resp)
	return resp.GetFederatedCredential(), err
}

func (a rpc) mustCreateCredential(bearer, userID string, c *pb.FederatedCredential) *pb.FederatedCredential {
	a.t.Helper()
	got, err := a.createCredential(bearer, userID, c)
	if err != nil {
		a.t.Fatalf("CreateFederatedCredential: %s", describe(err))
	}
	return got
}

func (a rpc) getCredential(bearer, userID, id string) (*pb.FederatedCredential, error) {
	resp := &pb.GetFederatedCredentialResponse{}
	err := a.c.call(context.Background(), pb.FederatedCredentialService_GetFederatedCredential_FullMethodName, bearer,
		&pb.GetFederatedCredentialRequest{UserId: userID, FederatedCredentialId: id}, resp)
	return resp.GetFederatedCredential(), err
}

func (a rpc) listCredentials(bearer, userID string) ([]*pb.FederatedCredential, error) {
	resp := &pb.ListFederatedCredentialsResponse{}
	err := a.c.call(context.Background(), pb.FederatedCredentialService_ListFederatedCredentials_FullMethodName, bearer,
		&pb.ListFederatedCredentialsRequest{UserId: userID}, resp)
	return resp.GetFederatedCredentials(), err
}

func (a rpc) deleteCredential(bearer, userID, id string) error {
	return a.c.call(context.Background(), pb.FederatedCredentialService_DeleteFederatedCredential_FullMethodName, bearer,
		&pb.DeleteFederatedCredentialRequest{UserId: userID, FederatedCredentialId: id}, &pb.DeleteFederatedCredentialResponse{})
}

// wantMessage fails the test unless err has code and its message contains
// each of words.
func wantMessage(t *testing.T, what string, err error, code codes.Code, words ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: got %s, want %v", what, describe(err), code)
		return
	}
	for _, w := range words {
		if !strings.Contains(status.Convert(err).Message(), w) {
			t.Errorf("%s: message %q does not say %q", what, status.Convert(err).Message(), w)
		}
	}
}

// fedSetup is a service trusting a stand-in issuer, with alice (a person)
// owning the machine user ci, and bob another person.
type fedSetup struct {
	s          *service
	iss        *standIn
	ciID       string
	aliceID    string
	alice, bob string // their API tokens
}

func startFedSetup(t *testing.T, driver string, refresh time.Duration, extraEnv ...string) *fedSetup {
	t.Helper()
	iss := newStandIn(t)
	s := startService(t, storetest.MustConfig(t, driver), append(trusting(refresh, iss), extraEnv...)...)
	aliceID := s.mustUser(t, "alice", "human")
	s.mustUser(t, "bob", "human")
	f := &fedSetup{s: s, iss: iss, aliceID: aliceID, ciID: s.mustUser(t, "alice-ci", "machine:alice")}
	r := rpc{t: t, c: s.grpcCaller()}
	f.alice, f.bob = r.login("alice"), r.login("bob")
	return f
}

// Credential management, over REST and gRPC on each backend: the owner of
// a machine user adds, lists, gets and deletes its federated credentials;
// another person may not see or change them; an untrusted issuer, a
// condition that is not CEL and one over the quota are refused saying why.
func TestFederatedCredentialManagement(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := startFedSetup(t, driver, time.Minute, "TOKENSERVICE_MAX_FEDERATED_CREDENTIALS_PER_USER", "2")
		for _, c := range f.s.callers(t) {
			t.Run(c.name, func(t *testing.T) {
				r := rpc{t: t, c: c}
				want := &pb.FederatedCredential{
					Issuer: f.iss.URL, Subject: "repo:acme/deploy:ref:refs/heads/main", Audiences: []string{audience},
					Condition: `claims.repository_owner == "acme"`, Scopes: []string{"tokens:read"},
					MaxAccessTokenLifetime: durationpb.New(2 * time.Minute), Description: "deploys from main",
				}
				got := r.mustCreateCredential(f.alice, f.ciID, want)
				if !strings.HasPrefix(got.GetId(), "fc_") || got.GetUserId() != f.ciID || got.GetCreateTime() == nil {
					t.Errorf("created: id %q, user %q, create_time %v", got.GetId(), got.GetUserId(), got.GetCreateTime())
				}
				ignoreOutput := protocmp.IgnoreFields(&pb.FederatedCredential{}, "id", "user_id", "create_time")
				if d := cmp.Diff(want, got, protocmp.Transform(), ignoreOutput); d != "" {
					t.Errorf("created (-want +got):\n%s", d)
				}
				fetched, err := r.getCredential(f.alice, f.ciID, got.GetId())
				if err != nil {
					t.Fatal(describe(err))
				}
				if d := cmp.Diff(got, fetched, protocmp.Transform()); d != "" {
					t.Errorf("get (-created +got):\n%s", d)
				}
				list, err := r.listCredentials(f.alice, f.ciID)
				if err != nil || len(list) != 1 || list[0].GetId() != got.GetId() {
					t.Errorf("list: %v, %s", list, describe(err))
				}

				// Another person: existence does not leak, nothing changes.
				_, err = r.getCredential(f.bob, f.ciID, got.GetId())
				wantCode(t, "bob getting alice's machine user's credential", err, codes.NotFound)
				err = r.deleteCredential(f.bob, f.ciID, got.GetId())
				wantCode(t, "bob deleting it", err, codes.NotFound)
				_, err = r.listCredentials(f.bob, f.ciID)
				wantCode(t, "bob listing them", err, codes.PermissionDenied)
				_, err = r.createCredential(f.bob, f.ciID, want)
				wantCode(t, "bob adding one", err, codes.PermissionDenied)

				bad := func(change func(c *pb.FederatedCredential)) *pb.FederatedCredential {
					c := &pb.FederatedCredential{Issuer: f.iss.URL, Subject: "s", Audiences: []string{audience}}
					change(c)
					return c
				}
				_, err = r.createCredential(f.alice, f.ciID, bad(func(c *pb.FederatedCredential) { c.Issuer = "https://evil.example" }))
				wantMessage(t, "an untrusted issuer", err, codes.InvalidArgument, `"https://evil.example" is not a trusted issuer`, f.iss.URL)
				_, err = r.createCredential(f.alice, f.ciID, bad(func(c *pb.FederatedCredential) { c.Condition = `claims.ref ==` }))
				wantMessage(t, "a condition that does not parse", err, codes.InvalidArgument, "not valid CEL", "at column")
				_, err = r.createCredential(f.alice, f.ciID, bad(func(c *pb.FederatedCredential) { c.Condition = `claims.ref.nosuch()` }))
				wantMessage(t, "a condition calling no function", err, codes.InvalidArgument, "not valid CEL", "nosuch")
				_, err = r.createCredential(f.alice, f.ciID, bad(func(c *pb.FederatedCredential) { c.Condition = `"refs/heads/main"` }))
				wantMessage(t, "a condition that is not a boolean", err, codes.InvalidArgument, "not true or false")
				_, err = r.createCredential(f.alice, f.aliceID, bad(func(*pb.FederatedCredential) {}))
				wantMessage(t, "a credential for a person", err, codes.InvalidArgument, "belong to machine users")

				// The quota is 2: one more fits, the third is refused.
				second := r.mustCreateCredential(f.alice, f.ciID, bad(func(c *pb.FederatedCredential) { c.Subject = "second" }))
				_, err = r.createCredential(f.alice, f.ciID, bad(func(c *pb.FederatedCredential) { c.Subject = "third" }))
				wantMessage(t, "over the quota", err, codes.ResourceExhausted, "federated credentials, the most allowed")

				for _, id := range []string{got.GetId(), second.GetId()} {
					if err := r.deleteCredential(f.alice, f.ciID, id); err != nil {
						t.Fatal(describe(err))
					}
				}
				_, err = r.getCredential(f.alice, f.ciID, got.GetId())
				wantCode(t, "a deleted credential", err, codes.NotFound)
				if list, err := r.listCredentials(f.alice, f.ciID); err != nil || len(list) != 0 {
					t.Errorf("list after the deletes: %v, %s", list, describe(err))
				}
			})
		}
	})
}

// exchangeAt posts a token-exchange request for subjectToken to the token
// endpoint, with extra form pairs (an empty value removes the field), and
// returns the answer, checked against the OpenAPI document.
func exchangeAt(t *testing.T, s *service, subjectToken string, extra ...string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {subjectToken},
		"subject_token_type": {oauth.TokenTypeJWT}}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			form.Del(extra[i])
			continue
		}
		form.Set(extra[i], extra[i+1])
	}
	req, _ := http.NewRequest("POST", s.httpURL+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	validate(t, cachedSpecRouter(t, s), req, resp, raw)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("the token endpoint answered HTTP %d, not JSON: %s", resp.StatusCode, raw)
	}
	if resp.StatusCode >= 500 {
		t.Errorf("the token endpoint answered %d: %v", resp.StatusCode, body)
	}
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("a token answer without Cache-Control: no-store: %q", resp.Header.Get("Cache-Control"))
	}
	return resp.StatusCode, body
}

// specRouters holds a router per service: loading the spec for each of
// many exchanges would take most of their time.
var specRouters sync.Map // of routers.Router by service URL

func cachedSpecRouter(t *testing.T, s *service) routers.Router {
	if r, ok := specRouters.Load(s.httpURL); ok {
		return r.(routers.Router)
	}
	r := specRouter(t, s.httpURL)
	specRouters.Store(s.httpURL, r)
	return r
}

// mustExchange exchanges subjectToken and returns the access token.
func mustExchange(t *testing.T, s *service, subjectToken string, extra ...string) string {
	t.Helper()
	code, body := exchangeAt(t, s, subjectToken, extra...)
	if code != http.StatusOK {
		t.Fatalf("exchange: HTTP %d %v", code, body)
	}
	return body["access_token"].(string)
}

// wantRefused fails the test unless the answer is a 400 with errCode and a
// description saying words.
func wantRefused(t *testing.T, what string, code int, body map[string]any, errCode string, words ...string) {
	t.Helper()
	if code != http.StatusBadRequest || body["error"] != errCode {
		t.Errorf("%s: HTTP %d %v, want 400 %s", what, code, body, errCode)
		return
	}
	desc, _ := body["error_description"].(string)
	for _, w := range words {
		if !strings.Contains(desc, w) {
			t.Errorf("%s: error_description %q does not say %q", what, desc, w)
		}
	}
}

// The happy path on each backend: a token of the trusted issuer, signed
// RS256, ES256 or EdDSA, matching a credential's subject, audience and
// condition, is exchanged for an RFC 8693 answer whose access token
// verifies with the served JWKS alone, names the machine user as sub and
// the external workload as act, and works as a bearer on the REST API; the
// JWT bearer grant (RFC 7523) gives the same, and refuses a bad assertion
// with invalid_grant.
func TestFederatedExchange(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := startFedSetup(t, driver, time.Minute)
		r := rpc{t: t, c: f.s.restCaller(t)}
		const sub = "repo:acme/deploy:ref:refs/heads/main"
		cred := r.mustCreateCredential(f.alice, f.ciID, &pb.FederatedCredential{
			Issuer: f.iss.URL, Subject: sub, Audiences: []string{"https://other.example", audience},
			Condition: `claims.repository_owner == "acme" && claims.ref == "refs/heads/main"`,
			Scopes:    []string{"tokens:read", "tokens:write"}, MaxAccessTokenLifetime: durationpb.New(2 * time.Minute),
		})
		f.iss.addKey("es", jose.ES256)
		f.iss.addKey("ed", jose.EdDSA)
		for _, kid := range []string{"k1", "es", "ed"} {
			t.Run(string(f.iss.key(kid).alg), func(t *testing.T) {
				claims := f.iss.claims(sub, audience)
				code, body := exchangeAt(t, f.s, f.iss.key(kid).sign(t, claims, nil), "scope", "tokens:read")
				if code != http.StatusOK {
					t.Fatalf("HTTP %d %v", code, body)
				}
				for field, want := range map[string]any{"issued_token_type": oauth.TokenTypeAccess, "token_type": "Bearer", "scope": "tokens:read"} {
					if body[field] != want {
						t.Errorf("%s: %v, want %v", field, body[field], want)
					}
				}
				// The credential's lifetime, not the server's 15 minutes.
				if in, _ := body["expires_in"].(float64); in < 100 || in > 120 {
					t.Errorf("expires_in %v, want about 120 (the credential's max lifetime)", body["expires_in"])
				}
				access := body["access_token"].(string)
				tok := verifyAccessToken(t, f.s, access)
				var got struct {
					Sub      string         `json:"sub"`
					ClientID string         `json:"client_id"`
					Act      map[string]any `json:"act"`
				}
				for name, dst := range map[string]any{"sub": &got.Sub, "client_id": &got.ClientID, "act": &got.Act} {
					if err := tok.Get(name, dst); err != nil {
						t.Errorf("access token claim %s: %v", name, err)
					}
				}
				if got.Sub != f.ciID || got.ClientID != cred.GetId() {
					t.Errorf("access token sub %q client_id %q, want the machine user %q and the credential %q", got.Sub, got.ClientID, f.ciID, cred.GetId())
				}
				if d := cmp.Diff(map[string]any{"iss": f.iss.URL, "sub": sub}, got.Act); d != "" {
					t.Errorf("act (-want +got):\n%s", d)
				}
				// A bearer on the REST API, as the machine user.
				list, err := r.list(access, &pb.ListTokensRequest{})
				if err != nil {
					t.Fatalf("the access token as a bearer: %s", describe(err))
				}
				if len(list.GetTokens()) != 0 {
					t.Errorf("the machine user has no API tokens, listed %d", len(list.GetTokens()))
				}
				// Its scope is what was asked, not the credential's all.
				_, err = r.create(access, &pb.CreateTokenRequest{})
				wantCode(t, "creating a token with a tokens:read access token", err, codes.PermissionDenied)
			})
		}

		t.Run("jwt-bearer", func(t *testing.T) {
			form := url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {f.iss.token(f.iss.claims(sub, audience))}}
			resp, body := postForm(t, f.s, "/oauth2/token", "", form)
			if resp.StatusCode != http.StatusOK || body["token_type"] != "Bearer" || body["access_token"] == nil {
				t.Fatalf("jwt-bearer: HTTP %d %v", resp.StatusCode, body)
			}
			if _, ok := body["issued_token_type"]; ok {
				t.Errorf("jwt-bearer answer with issued_token_type (RFC 8693's, not RFC 7523's): %v", body)
			}
			verifyAccessToken(t, f.s, body["access_token"].(string))
			wrongSub := f.iss.token(f.iss.claims("repo:acme/other:ref:refs/heads/main", audience))
			for name, assertion := range map[string]string{"garbage": "not.a.jwt", "another subject": wrongSub} {
				resp, body := postForm(t, f.s, "/oauth2/token", "", url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {assertion}})
				// The description names this grant's parameter, not RFC 8693's.
				wantRefused(t, "jwt-bearer with "+name, resp.StatusCode, body, "invalid_grant", "assertion")
				if strings.Contains(fmt.Sprint(body["error_description"]), "subject_token") {
					t.Errorf("jwt-bearer with %s: %q names subject_token, which this grant does not send", name, body["error_description"])
				}
			}
		})
	})
}

// verifyAccessToken verifies an access token as a gateway does, with a
// third-party JOSE library and the served JWKS alone.
func verifyAccessToken(t *testing.T, s *service, access string) jwxjwt.Token {
	t.Helper()
	set, err := jwk.Fetch(context.Background(), s.httpURL+"/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwxjwt.Parse([]byte(access), jwxjwt.WithKeySet(set), jwxjwt.WithIssuer(audience), jwxjwt.WithValidate(true))
	if err != nil {
		t.Fatalf("the access token does not verify with the served JWKS: %v", err)
	}
	return tok
}

// Each refusal at the token endpoint, on each backend: a 400 with RFC 8693
// §2.2.2's error code and a description in plain words, never a 5xx; the
// exchanges metric counts them by issuer and outcome.
func TestFederatedExchangeRefusals(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := startFedSetup(t, driver, time.Minute)
		other := newStandIn(t) // a well-formed issuer this service does not trust
		r := rpc{t: t, c: f.s.grpcCaller()}
		const sub = "repo:acme/deploy:ref:refs/heads/main"
		r.mustCreateCredential(f.alice, f.ciID, &pb.FederatedCredential{
			Issuer: f.iss.URL, Subject: sub, Audiences: []string{audience},
			Condition: `claims.repository_owner == "acme"`, Scopes: []string{"tokens:read"},
		})
		metricsURL := "http://" + f.s.app.MetricsAddr() + "/metrics"
		before := scrape(t, metricsURL)
		// Each case changes a valid token's claims, or makes its own token.
		with := func(change func(c map[string]any)) string {
			c := f.iss.claims(sub, audience)
			change(c)
			return f.iss.token(c)
		}
		now := time.Now()
		// HS256 with the issuer's RSA public key as the secret: a verifier
		// taking the key for what the header says would accept it.
		pub, _ := x509.MarshalPKIXPublicKey(f.iss.key("k1").priv.Public())
		hmacKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
		hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: hmacKey, KeyID: "k1"}}, nil)
		hs256, _ := jwt.Signed(hs).Claims(f.iss.claims(sub, audience)).Serialize()
		payload, _ := json.Marshal(f.iss.claims(sub, audience))
		unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
		valid := f.iss.token(f.iss.claims(sub, audience))

		for _, tc := range []struct {
			name, token string
			extra       []string // form changes
			code        string
			says        []string
			outcome     string // the metric's outcome label, for the issuer ("" untrusted), if counted
		}{
			{name: "expired", token: with(func(c map[string]any) {
				c["exp"], c["iat"], c["nbf"] = now.Add(-10*time.Minute).Unix(), now.Add(-20*time.Minute).Unix(), now.Add(-20*time.Minute).Unix()
			}), code: "invalid_request", says: []string{"the token expired at"}, outcome: "expired"},
			{name: "not yet valid", token: with(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() }),
				code: "invalid_request", says: []string{"not valid before"}, outcome: "not_yet_valid"},
			{name: "issued too long ago", token: with(func(c map[string]any) { c["iat"] = now.Add(-3 * time.Hour).Unix() }),
				code: "invalid_request", says: []string{"more than 1h0m0s ago"}, outcome: "too_old"},
			{name: "issued in the future", token: with(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() }),
				code: "invalid_request", says: []string{"issued in the future"}, outcome: "too_old"},
			{name: "no exp", token: with(func(c map[string]any) { delete(c, "exp") }),
				code: "invalid_request", says: []string{"no exp"}, outcome: "missing_claim"},
			{name: "another audience", token: with(func(c map[string]any) { c["aud"] = "https://other.example" }),
				code: "invalid_request", says: []string{"https://other.example", "not an audience"}, outcome: "audience"},
			{name: "another subject", token: with(func(c map[string]any) { c["sub"] = "repo:acme/deploy:ref:refs/heads/dev" }),
				code: "invalid_request", says: []string{"no federated credential accepts", "refs/heads/dev"}, outcome: "no_credential"},
			{name: "the condition is false", token: with(func(c map[string]any) { c["repository_owner"] = "mallory" }),
				code: "invalid_request", says: []string{"do not satisfy the condition"}, outcome: "condition"},
			{name: "the condition reads a claim the token lacks", token: with(func(c map[string]any) { delete(c, "repository_owner") }),
				code: "invalid_request", says: []string{"do not satisfy the condition"}, outcome: "condition"},
			{name: "unsigned (alg none)", token: unsigned,
				code: "invalid_request", says: []string{`alg 'none' is not accepted`}},
			{name: "HS256 with the RSA public key", token: hs256,
				code: "invalid_request", says: []string{`alg 'HS256' is not accepted`}},
			{name: "a signature by another key under the issuer's kid", token: newKey(t, "k1", jose.RS256).sign(t, f.iss.claims(sub, audience), nil),
				code: "invalid_request", says: []string{"signature does not verify"}, outcome: "signature"},
			{name: "an unknown kid", token: newKey(t, "k-unknown", jose.RS256).sign(t, f.iss.claims(sub, audience), nil),
				code: "invalid_request", says: []string{`no RS256 key with kid 'k-unknown'`}, outcome: "unknown_key"},
			// Refused by the endpoint's body limit (16 KiB) before the
			// verifier's own (64 KiB).
			{name: "oversized", token: with(func(c map[string]any) { c["padding"] = strings.Repeat("x", 70<<10) }),
				code: "invalid_request", says: []string{"the body is too large"}},
			{name: "garbage", token: "garbage",
				code: "invalid_request", says: []string{"not a JWT in compact form"}},
			{name: "an untrusted issuer", token: other.token(other.claims(sub, audience)),
				code: "invalid_request", says: []string{other.URL, "is not trusted here"}, outcome: "untrusted_issuer"},
			{name: "no subject_token_type", token: valid, extra: []string{"subject_token_type", ""},
				code: "invalid_request", says: []string{"subject_token_type is required"}},
			{name: "an access token as subject_token_type", token: valid, extra: []string{"subject_token_type", oauth.TokenTypeAccess},
				code: "invalid_request", says: []string{"is not accepted"}},
			{name: "no subject_token", token: "", code: "invalid_request", says: []string{"subject_token is required"}},
			{name: "a scope the credential does not grant", token: valid, extra: []string{"scope", "tokens:write"},
				code: "invalid_scope", says: []string{"tokens:write"}, outcome: "denied"},
			{name: "an unknown resource", token: valid, extra: []string{"resource", "https://elsewhere.example"},
				code: "invalid_target", outcome: "denied"},
			{name: "client authentication", token: valid, extra: []string{"client_secret", "x"},
				code: "invalid_request", says: []string{"send no client authentication"}},
			{name: "a client_id naming another machine user", token: valid, extra: []string{"client_id", f.aliceID},
				code: "invalid_request", says: []string{"no federated credential of the machine user"}, outcome: "no_credential"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, body := exchangeAt(t, f.s, tc.token, tc.extra...)
				wantRefused(t, tc.name, code, body, tc.code, tc.says...)
				if desc, _ := body["error_description"].(string); strings.Contains(desc, "go-jose") || strings.Contains(desc, "square/") {
					t.Errorf("the description speaks of the library: %q", desc)
				}
			})
		}
		if _, err := r.list(mustExchange(t, f.s, valid), &pb.ListTokensRequest{}); err != nil {
			t.Fatalf("the valid token after the refusals: %s", describe(err))
		}

		after := scrape(t, metricsURL)
		moved := func(issuer, outcome string) float64 {
			key := series("tokenservice_federated_exchanges_total", "issuer", issuer, "outcome", outcome)
			return after[key] - before[key]
		}
		for _, m := range []struct {
			issuer, outcome string
			want            float64
		}{
			{f.iss.URL, "ok", 1}, {f.iss.URL, "expired", 1}, {f.iss.URL, "too_old", 2}, {f.iss.URL, "condition", 2},
			{f.iss.URL, "no_credential", 2}, {f.iss.URL, "unknown_key", 1}, {f.iss.URL, "denied", 2},
			// alg none and HS256 name the trusted issuer as iss: their
			// refusals count under it, though their claims are unverified.
			{f.iss.URL, "unsupported_alg", 2}, {"untrusted", "untrusted_issuer", 1}, {"untrusted", "malformed", 1},
			{other.URL, "untrusted_issuer", 0},
		} {
			if got := moved(m.issuer, m.outcome); got != m.want {
				t.Errorf("tokenservice_federated_exchanges_total{issuer=%q,outcome=%q} moved %v, want %v", m.issuer, m.outcome, got, m.want)
			}
		}
		if other.requests("") != 0 {
			t.Errorf("the untrusted issuer was asked %d times", other.requests(""))
		}
	})
}
