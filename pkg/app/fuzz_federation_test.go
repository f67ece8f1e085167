package app_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/issuers"
	"github.com/tokenservice/tokenservice/pkg/oauth"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// The fuzzed issuer: a fixed URL (its fetches go to a loopback httptest
// server), fixed keys (an RSA key made for this test alone, in testdata,
// and an Ed25519 key derived from a fixed seed) and a fixed verifier
// clock, so that the signed tokens of testdata/fuzz/FuzzTokenExchange
// verify on every run and in every fuzzing process.
const (
	fuzzIssuer   = "https://example.com" // a name httptest's certificate holds
	fuzzSubject  = "repo:acme/deploy:ref:refs/heads/main"
	fuzzAudience = "https://tokenservice.test/federation"
	fuzzEdKid    = "fuzz-ed"
	fuzzRSAKid   = "fuzz-rs"
)

// fuzzNow is the verifier's clock: the tokens are checked as of this time.
var fuzzNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fuzzRSAKey is the issuer's RS256 key, read from testdata.
func fuzzRSAKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz-issuer-rsa.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		tb.Fatal("testdata/fuzz-issuer-rsa.pem: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

// fuzzEdKey is the issuer's fixed Ed25519 key.
func fuzzEdKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("tokenservice FuzzTokenExchange issuer"))
	return ed25519.NewKeyFromSeed(seed[:])
}

// oauthErrors are the error codes a 4xx of the token endpoint may carry:
// RFC 6749 §5.2's, and invalid_target (RFC 8707 §2, RFC 8693 §2.2.2).
var oauthErrors = []string{"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope", "invalid_target"}

// newFederationFuzzHandler starts the application on SQLite trusting
// fuzzIssuer, whose discovery and JWKS (both keys) a loopback TLS server
// answers, and gives alice two machine users whose federated credentials
// accept the same subject: ci-bot with no condition, ci-main only for
// refs/heads/main (so a token with that ref is ambiguous without a
// client_id). It returns the handler, the RS256 key and the two machine
// users' IDs.
func newFederationFuzzHandler(f testing.TB, configure ...func(*app.Config)) (http.Handler, *rsa.PrivateKey, [2]string) {
	f.Helper()
	rsaKey := fuzzRSAKey(f)
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: fuzzEdKey().Public(), KeyID: fuzzEdKid, Algorithm: string(jose.EdDSA), Use: "sig"},
		{Key: rsaKey.Public(), KeyID: fuzzRSAKid, Algorithm: string(jose.RS256), Use: "sig"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	stand := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{"issuer": fuzzIssuer, "jwks_uri": fuzzIssuer + "/jwks"})
		case "/jwks":
			w.Write(jwks)
		default:
			http.NotFound(w, r)
		}
	}))
	f.Cleanup(stand.Close)
	// Every fetch of fuzzIssuer reaches the stand-in, whose certificate
	// names example.com: the issuer is fetched over real TLS at a fixed
	// URL, so the corpus's tokens name the same iss on every run.
	client := stand.Client()
	transport := client.Transport.(*http.Transport).Clone()
	transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", stand.Listener.Addr().String())
	}
	client.Transport = transport

	cfg := apptest.Config(f, "sqlite")
	cfg.Federation.Issuers = issuers.Config{
		Issuers: []issuers.Issuer{{URL: fuzzIssuer}},
		Client:  client,
		Clock:   func() time.Time { return fuzzNow },
	}
	for _, c := range configure {
		c(&cfg)
	}
	a := apptest.MustStart(f, cfg)
	h := a.Handler()
	owner := apptest.MustUserToken(f, a, users.CreateInput{Username: "alice", Password: fuzzPassword})
	var bots [2]string
	for i, c := range []struct{ name, condition string }{{"ci-bot", ""}, {"ci-main", `claims.ref == "refs/heads/main"`}} {
		var u struct{ User struct{ ID string } }
		mustREST(f, h, owner, "/v1alpha1/users", map[string]any{"username": c.name, "machine": true}, &u)
		bots[i] = u.User.ID
		mustREST(f, h, owner, "/v1alpha1/users/"+u.User.ID+"/federatedCredentials", map[string]any{"federatedCredential": map[string]any{
			"issuer": fuzzIssuer, "subject": fuzzSubject, "audiences": []string{fuzzAudience}, "condition": c.condition}}, nil)
	}
	return h, rsaKey, bots
}

// mustREST POSTs body as JSON to path with bearer, wants 200 and decodes
// the answer into out (nil: discards it).
func mustREST(tb testing.TB, h http.Handler, bearer, path string, body, out any) {
	tb.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("POST %s: HTTP %d: %s", path, rec.Code, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			tb.Fatalf("POST %s: %v", path, err)
		}
	}
}

// fuzzClaims are a subject token's claims, valid at fuzzNow for the
// credentials, with extra merged in (a nil value removes a claim).
func fuzzClaims(extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": fuzzIssuer, "sub": fuzzSubject, "aud": fuzzAudience, "jti": "run-1",
		"iat": fuzzNow.Add(-time.Minute).Unix(), "exp": fuzzNow.Add(10 * time.Minute).Unix(),
		"repository_owner": "acme",
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// fuzzSign signs claims with key (an ed25519 or RSA private key) as alg
// under kid, through go-jose.
func fuzzSign(tb testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	tb.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// unsigned returns a JWT of header and claims with signature sig, as a
// forger would write it.
func unsigned(header string, claims map[string]any, sig string) string {
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc(c) + "." + sig
}

// fuzzSubjectTokens are the seeds' subject tokens that need no key made at
// run time: they are also in testdata/fuzz/FuzzTokenExchange.
func fuzzSubjectTokens(tb testing.TB) []string {
	ed := fuzzEdKey()
	good := fuzzSign(tb, jose.EdDSA, ed, fuzzEdKid, fuzzClaims(nil))
	return []string{
		good,
		fuzzSign(tb, jose.EdDSA, ed, fuzzEdKid, fuzzClaims(map[string]any{"ref": "refs/heads/main"})), // both credentials
		fuzzSign(tb, jose.EdDSA, ed, "", fuzzClaims(nil)),                                             // no kid, two keys
		fuzzSign(tb, jose.EdDSA, ed, "rotated-away", fuzzClaims(nil)),                                 // unknown kid
		fuzzSign(tb, jose.EdDSA, ed, fuzzEdKid, fuzzClaims(map[string]any{"iss": "https://evil.example"})),
		fuzzSign(tb, jose.EdDSA, ed, fuzzEdKid, fuzzClaims(map[string]any{"aud": []string{"x", "y"}})),
		fuzzSign(tb, jose.EdDSA, ed, fuzzEdKid, fuzzClaims(map[string]any{"sub": "repo:acme/other:ref:refs/heads/main"})),
		fuzzSign(tb, jose.EdDSA, ed, fuzzEdKid, fuzzClaims(map[string]any{"exp": fuzzNow.Add(-time.Hour).Unix()})),
		fuzzSign(tb, jose.EdDSA, ed, fuzzEdKid, fuzzClaims(map[string]any{"iat": nil, "exp": 1e300})),
		fuzzSign(tb, jose.EdDSA, ed, fuzzEdKid, fuzzClaims(map[string]any{"nbf": "tomorrow", "ref": 7})),
		fuzzSign(tb, jose.EdDSA, ed, fuzzEdKid, fuzzClaims(map[string]any{"sub": strings.Repeat("s", 4000)})),
		unsigned(`{"alg":"none"}`, fuzzClaims(nil), ""),
		unsigned(`{"alg":"HS256","kid":"`+fuzzEdKid+`"}`, fuzzClaims(nil), "c2ln"),
		unsigned(`{"alg":"EdDSA","kid":"`+fuzzEdKid+`","crit":["b64"],"b64":false}`, fuzzClaims(nil), "c2ln"),
		unsigned(`{"alg":"EdDSA","jku":"https://evil.example/jwks","kid":"x"}`, fuzzClaims(nil), "c2ln"),
		good[:len(good)-10],
		good + "." + good,
		strings.Repeat("A", 20000),
		"a.b.c",
		"",
	}
}

// FuzzTokenExchange posts the token endpoint's federated grants (RFC
// 8693's token exchange and RFC 7523's JWT bearer) with fuzzed subject
// tokens, token types, scopes and client IDs to the real handler, with a
// trusted issuer: whatever arrives, never a 5xx, never a panic, a 4xx
// carries one of RFC 6749 §5.2's errors (or invalid_target) as JSON, and a
// 200 an access token.
func FuzzTokenExchange(f *testing.F) {
	h, rsaKey, bots := newFederationFuzzHandler(f)
	tokens := fuzzSubjectTokens(f)
	rsaGood := fuzzSign(f, jose.RS256, rsaKey, fuzzRSAKid, fuzzClaims(nil))
	grants := []string{oauth.GrantTokenExchange, oauth.GrantJWTBearer}
	types := []string{oauth.TokenTypeJWT, oauth.TokenTypeIDToken, oauth.TokenTypeAccess, ""}
	for i, tok := range append(tokens, rsaGood) {
		f.Add(grants[i%2], tok, types[i%len(types)], "", "")
	}
	f.Add(oauth.GrantTokenExchange, rsaGood, oauth.TokenTypeJWT, "tokens:read", bots[0])
	f.Add(oauth.GrantTokenExchange, tokens[1], oauth.TokenTypeJWT, "", bots[1])
	f.Add(oauth.GrantTokenExchange, tokens[1], oauth.TokenTypeJWT, "", "")
	f.Add(oauth.GrantJWTBearer, tokens[0], "", "tokens:write users:write", bots[1])
	f.Add(oauth.GrantTokenExchange, tokens[0], oauth.TokenTypeJWT, "  ", "u_"+strings.Repeat("0", 300))
	f.Add(oauth.GrantTokenExchange, tokens[0], oauth.TokenTypeJWT, "no-such-scope", "")
	f.Add("urn:ietf:params:oauth:grant-type:device_code", tokens[0], oauth.TokenTypeJWT, "", "")

	// The fuzzer starts from tokens that get through: else every input
	// could be refused for one reason the seeds never get past.
	for _, tok := range []string{tokens[0], rsaGood} {
		if code, body := postForm(h, url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {tok}, "subject_token_type": {oauth.TokenTypeJWT}}); code != http.StatusOK {
			f.Fatalf("the seeds' good token: HTTP %d: %s", code, body)
		}
	}

	f.Fuzz(func(t *testing.T, grant, subjectToken, subjectTokenType, scope, clientID string) {
		form := url.Values{"grant_type": {grant}}
		set := func(k, v string) {
			if v != "" {
				form.Set(k, v)
			}
		}
		if grant == oauth.GrantJWTBearer {
			set("assertion", subjectToken)
		} else {
			set("subject_token", subjectToken)
		}
		set("subject_token_type", subjectTokenType)
		set("scope", scope)
		set("client_id", clientID)
		code, out := postForm(h, form)
		switch {
		case code >= 500:
			t.Fatalf("%s: HTTP %d: %s", grant, code, out)
		case code >= 400:
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(out, &e); err != nil || !slices.Contains(oauthErrors, e.Error) {
				t.Fatalf("%s: HTTP %d without an RFC 6749 section 5.2 error: %s", grant, code, out)
			}
		case code == http.StatusOK:
			var x struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				IssuedType  string `json:"issued_token_type"`
			}
			if err := json.Unmarshal(out, &x); err != nil || x.AccessToken == "" || x.TokenType != "Bearer" {
				t.Fatalf("%s: 200 without an access token: %s", grant, out)
			}
			if grant == oauth.GrantTokenExchange && x.IssuedType != oauth.TokenTypeAccess {
				t.Fatalf("token exchange: issued_token_type %q, want %s (RFC 8693 section 2.2.1)", x.IssuedType, oauth.TokenTypeAccess)
			}
		default:
			t.Fatalf("%s: HTTP %d: %s", grant, code, out)
		}
	})
}

// postForm posts form to the token endpoint and returns the status and body.
func postForm(h http.Handler, form url.Values) (int, []byte) {
	req := httptest.NewRequest(http.MethodPost, oauth.TokenPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	out, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, out
}
