package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// oauthClient is an HTTP client that reaches s whatever host a URL names, so
// the issuer's URLs in the discovery document (http://tokenservice.test/...)
// lead to it, as DNS would in production.
func (s *service) oauthClient() *http.Client {
	addr := strings.TrimPrefix(s.httpURL, "http://")
	var d net.Dialer
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// discover reads the RFC 8414 document from the issuer alone.
func discover(t *testing.T, hc *http.Client, issuer string) map[string]any {
	t.Helper()
	resp, err := hc.Get(issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestStandardClientGetsAndUsesAccessTokens: golang.org/x/oauth2's client
// credentials client, given the token endpoint discovered from the issuer
// URL, the token's ID and the token, gets access tokens (HTTP Basic and
// form body alike) and calls the API with them.
func TestStandardClientGetsAndUsesAccessTokens(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_SCOPES", operatorScopes)
		s.mustUser(t, "olga", "human")
		a := rpc{t: t, c: s.grpcCaller()}
		api := a.mustCreate("", &pb.CreateTokenRequest{Username: "olga", Password: password,
			Scopes: []string{"tokens:read", "orders:read"}}).GetToken()
		hc := s.oauthClient()
		doc := discover(t, hc, "http://tokenservice.test")
		for field, want := range map[string]any{
			"issuer":                 "http://tokenservice.test",
			"token_endpoint":         "http://tokenservice.test/oauth2/token",
			"introspection_endpoint": "http://tokenservice.test/oauth2/introspect",
			"revocation_endpoint":    "http://tokenservice.test/oauth2/revoke",
			"jwks_uri":               "http://tokenservice.test/.well-known/jwks.json",
		} {
			if doc[field] != want {
				t.Errorf("metadata %s: %v, want %v", field, doc[field], want)
			}
		}
		if got, _ := json.Marshal(doc["scopes_supported"]); string(got) != `["audit:read","introspect","orders:read","orders:write","tokens:read","tokens:write","users:read","users:write"]` {
			t.Errorf("scopes_supported: %s", got)
		}
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
		for name, style := range map[string]oauth2.AuthStyle{"basic": oauth2.AuthStyleInHeader, "form": oauth2.AuthStyleInParams} {
			cc := clientcredentials.Config{ClientID: idOf(api), ClientSecret: api, TokenURL: doc["token_endpoint"].(string),
				Scopes: []string{"tokens:read"}, AuthStyle: style}
			tok, err := cc.Token(ctx)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if tok.TokenType != "Bearer" || tok.Expiry.Before(time.Now().Add(10*time.Minute)) || tok.Extra("scope") != "tokens:read" {
				t.Errorf("%s: token type %q, expiry %v, scope %v", name, tok.TokenType, tok.Expiry, tok.Extra("scope"))
			}
			// The client the library builds calls the API with the token.
			resp, err := cc.Client(ctx).Get("http://tokenservice.test/v1alpha1/tokens/" + idOf(api))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), idOf(api)) {
				t.Errorf("%s: the API with the access token: HTTP %d %s", name, resp.StatusCode, body)
			}
		}

		// Errors as RFC 6749 §5.2 has them, as the library reads them.
		wrong := api[:len(api)-8] + "AAAAAAAA"
		for name, tc := range map[string]struct {
			cfg  clientcredentials.Config
			code string
		}{
			"wrong secret":      {clientcredentials.Config{ClientID: idOf(api), ClientSecret: wrong}, "invalid_client"},
			"another client_id": {clientcredentials.Config{ClientID: "AAAAAAAAAAAAAAAA", ClientSecret: api}, "invalid_client"},
			"a scope it lacks":  {clientcredentials.Config{ClientID: idOf(api), ClientSecret: api, Scopes: []string{"orders:write"}}, "invalid_scope"},
			"an unknown scope":  {clientcredentials.Config{ClientID: idOf(api), ClientSecret: api, Scopes: []string{"nope"}}, "invalid_scope"},
		} {
			tc.cfg.TokenURL, tc.cfg.AuthStyle = doc["token_endpoint"].(string), oauth2.AuthStyleInHeader
			_, err := tc.cfg.Token(ctx)
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != tc.code {
				t.Errorf("%s: %v, want %s", name, err, tc.code)
				continue
			}
			if tc.code == "invalid_client" && (re.Response.StatusCode != http.StatusUnauthorized || re.Response.Header.Get("WWW-Authenticate") != `Basic realm="tokenservice"`) {
				t.Errorf("%s: HTTP %d, WWW-Authenticate %q; want 401 with a Basic challenge", name, re.Response.StatusCode, re.Response.Header.Get("WWW-Authenticate"))
			}
		}
	})
}

// postForm posts form to path on s, with an Authorization header if given,
// and checks the answer against the operation the OpenAPI 3 document gives it.
func postForm(t *testing.T, s *service, path, authorization string, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.httpURL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	req.Body = io.NopCloser(strings.NewReader(form.Encode()))
	validate(t, specRouter(t, s.httpURL), req, resp, body)
	var out map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%s: HTTP %d, not JSON: %s", path, resp.StatusCode, body)
		}
	}
	return resp, out
}

// TestTokenEndpointFollowsRFC6749 checks what the library above does not
// show: §5.1's headers, §5.2's error codes for the grant and the request.
func TestTokenEndpointFollowsRFC6749(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "pia", "human")
	api := rpc{t: t, c: s.grpcCaller()}.login("pia")
	basic := "Basic " + basicAuth(idOf(api), api)
	resp, body := postForm(t, s, "/oauth2/token", basic, url.Values{"grant_type": {"client_credentials"}})
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" || body["token_type"] != "Bearer" {
		t.Errorf("success: HTTP %d, Cache-Control %q, Pragma %q, %v", resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"), body)
	}
	if exp, ok := body["expires_in"].(float64); !ok || exp < 890 || exp > 900 {
		t.Errorf("expires_in %v, want the 15-minute lifetime", body["expires_in"])
	}
	for name, tc := range map[string]struct {
		auth   string
		form   url.Values
		status int
		code   string
	}{
		"another grant":      {basic, url.Values{"grant_type": {"password"}}, 400, "unsupported_grant_type"},
		"no grant":           {basic, url.Values{}, 400, "invalid_request"},
		"a repeated param":   {basic, url.Values{"grant_type": {"client_credentials", "client_credentials"}}, 400, "invalid_request"},
		"two client auths":   {basic, url.Values{"grant_type": {"client_credentials"}, "client_id": {idOf(api)}, "client_secret": {api}}, 400, "invalid_request"},
		"no client auth":     {"", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
		"a bad scope syntax": {basic, url.Values{"grant_type": {"client_credentials"}, "scope": {`a\b`}}, 400, "invalid_scope"},
		"an access token as the secret": {"", url.Values{"grant_type": {"client_credentials"}, "client_id": {idOf(api)},
			"client_secret": {"eyJhbGciOiJFUzI1NiJ9.e30.x"}}, 401, "invalid_client"},
	} {
		resp, body := postForm(t, s, "/oauth2/token", tc.auth, tc.form)
		if resp.StatusCode != tc.status || body["error"] != tc.code {
			t.Errorf("%s: HTTP %d %v, want %d %s", name, resp.StatusCode, body, tc.status, tc.code)
		}
		if d, _ := body["error_description"].(string); strings.ContainsAny(d, "\"\\") {
			t.Errorf("%s: error_description %q has characters RFC 6749 §5.2 excludes", name, d)
		}
	}
	req, _ := http.NewRequest("POST", s.httpURL+"/oauth2/token", strings.NewReader(`{"grant_type":"client_credentials"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", basic)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != 400 {
		t.Errorf("a JSON body: HTTP %d, want 400", resp.StatusCode)
	}
	// §3.2: a parameter without a value is as if omitted.
	if resp, body := postForm(t, s, "/oauth2/token", basic, url.Values{"grant_type": {"client_credentials"}, "client_secret": {""}}); resp.StatusCode != 200 {
		t.Errorf("an empty client_secret beside Basic: HTTP %d %v, want 200", resp.StatusCode, body)
	}
	for _, path := range []string{"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"} {
		resp, err := http.Get(s.httpURL + path)
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]any
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" || e["error"] != "invalid_request" {
			t.Errorf("GET %s: HTTP %d, Allow %q, %v; want 405, POST and an RFC 6749 error", path, resp.StatusCode, resp.Header.Get("Allow"), e)
		}
	}
}

func basicAuth(id, secret string) string {
	return base64Std(url.QueryEscape(id) + ":" + url.QueryEscape(secret))
}

// TestIntrospectionFollowsRFC7662 checks §2.1's caller authorization and
// §2.2's answers, for API tokens and access tokens.
func TestIntrospectionFollowsRFC7662(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_SCOPES", operatorScopes)
		s.mustUser(t, "quin", "human")
		a := rpc{t: t, c: s.grpcCaller()}
		login := a.login("quin")
		gateway := a.mustCreate(login, &pb.CreateTokenRequest{Scopes: []string{"introspect"}}).GetToken()
		subject := a.mustCreate(login, &pb.CreateTokenRequest{Scopes: []string{"orders:read", "orders:write"},
			ExpireTime: timestamppbIn(48 * time.Hour)}).GetToken()
		access := exchangeScopes(t, s.grpcCaller(), subject, []string{"orders:read"}).GetAccessToken()

		for name, authz := range map[string]string{
			"a bearer": "Bearer " + gateway, "client credentials": "Basic " + basicAuth(idOf(gateway), gateway),
		} {
			resp, body := postForm(t, s, "/oauth2/introspect", authz, url.Values{"token": {subject}})
			if resp.StatusCode != 200 || body["active"] != true || body["scope"] != "orders:read orders:write" ||
				body["client_id"] != idOf(subject) || body["sub"] == nil || body["exp"] == nil || body["iat"] == nil || body["token_type"] != "Bearer" {
				t.Errorf("%s, an API token: HTTP %d %v", name, resp.StatusCode, body)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q", name, resp.Header.Get("Cache-Control"))
			}
		}
		_, body := postForm(t, s, "/oauth2/introspect", "Bearer "+gateway, url.Values{"token": {access}, "token_type_hint": {"access_token"}})
		if body["active"] != true || body["scope"] != "orders:read" || body["client_id"] != idOf(subject) || body["jti"] == nil {
			t.Errorf("an access token: %v", body)
		}

		// Inactive: every kind of not valid, with nothing but active (§2.2).
		if err := a.del(login, idOf(subject)); err != nil {
			t.Fatal(describe(err))
		}
		for name, tok := range map[string]string{
			"a deleted token": subject, "its access token": access, "garbage": "hello",
			"a wrong secret": auth.APIToken{ID: idOf(gateway), Secret: strings.Repeat("A", auth.SecretLen)}.String(),
		} {
			resp, body := postForm(t, s, "/oauth2/introspect", "Bearer "+gateway, url.Values{"token": {tok}})
			if resp.StatusCode != 200 || len(body) != 1 || body["active"] != false {
				t.Errorf("%s: HTTP %d %v, want only active false", name, resp.StatusCode, body)
			}
		}

		// The caller: without the introspect scope, or without a credential, 401 (§2.3).
		noScope := a.mustCreate(login, &pb.CreateTokenRequest{Scopes: []string{"tokens:read"}}).GetToken()
		resp, body := postForm(t, s, "/oauth2/introspect", "Bearer "+noScope, url.Values{"token": {gateway}})
		if resp.StatusCode != 401 || body["error"] != "insufficient_scope" || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Errorf("without the introspect scope: HTTP %d %v %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
		}
		resp, body = postForm(t, s, "/oauth2/introspect", "", url.Values{"token": {gateway}})
		if resp.StatusCode != 401 || body["error"] != "invalid_client" {
			t.Errorf("without a credential: HTTP %d %v", resp.StatusCode, body)
		}
		resp, body = postForm(t, s, "/oauth2/introspect", "Bearer "+gateway, url.Values{})
		if resp.StatusCode != 400 || body["error"] != "invalid_request" {
			t.Errorf("without a token: HTTP %d %v", resp.StatusCode, body)
		}
		resp, body = postForm(t, s, "/oauth2/introspect", "Bearer "+gateway, url.Values{"token": {gateway}, "client_id": {idOf(gateway)}, "client_secret": {gateway}})
		if resp.StatusCode != 400 || body["error"] != "invalid_request" {
			t.Errorf("a bearer and client credentials at once: HTTP %d %v", resp.StatusCode, body)
		}

		// RFC 7662 §2.1's example request, as written (a token that is not
		// this server's): inactive.
		req, _ := http.NewRequest("POST", s.httpURL+"/oauth2/introspect", strings.NewReader("token=mF_9.B5f-4.1JqM&token_type_hint=access_token"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+gateway)
		if r, err := http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		} else {
			var out map[string]any
			json.NewDecoder(r.Body).Decode(&out)
			r.Body.Close()
			if r.StatusCode != 200 || len(out) != 1 || out["active"] != false {
				t.Errorf("RFC 7662's example request: HTTP %d %v", r.StatusCode, out)
			}
		}
	})
}

// TestRevocationByPossession: RFC 7009 with the token as its own proof.
// The leaked token stops at once on its replica and within the cache TTL on
// another; anything else is a 200 that tells nothing.
func TestRevocationByPossession(t *testing.T) {
	const ttl = time.Second
	db := storetest.MustConfig(t, "mysql")
	a := startService(t, db, "TOKENSERVICE_CACHE_TTL", ttl.String())
	b := startService(t, db, "TOKENSERVICE_CACHE_TTL", ttl.String(), "TOKENSERVICE_REVOKE_API_TOKEN_BY_ACCESS_TOKEN", "true")
	a.mustUser(t, "rita", "human")
	ra, rb := rpc{t: t, c: a.grpcCaller()}, rpc{t: t, c: b.restCaller(t)}
	login := ra.login("rita")
	leaked := ra.mustCreate(login, &pb.CreateTokenRequest{}).GetToken()
	for _, r := range []rpc{ra, rb} {
		if _, err := r.list(leaked, &pb.ListTokensRequest{}); err != nil { // cached on both
			t.Fatal(describe(err))
		}
	}
	resp, body := postForm(t, a, "/oauth2/revoke", "", url.Values{"token": {leaked}, "token_type_hint": {"refresh_token"}})
	if resp.StatusCode != 200 || body != nil {
		t.Fatalf("revoking a leaked token: HTTP %d %v", resp.StatusCode, body)
	}
	revoked := time.Now()
	_, err := ra.list(leaked, &pb.ListTokensRequest{})
	wantCode(t, "the revoked token on its replica", err, codes.Unauthenticated)
	waitFor(t, "the other replica to refuse the revoked token", ttl, revoked, func() bool {
		_, err := rb.list(leaked, &pb.ListTokensRequest{})
		return status.Code(err) == codes.Unauthenticated
	})

	for name, tok := range map[string]string{
		"the same token again": leaked, "garbage": "not a token", "a made-up token": "tks_AAAAAAAAAAAAAAAA_" + strings.Repeat("A", 49),
		"RFC 7009 §2.1's example": "45ghiukldjahdnhzdauz",
	} {
		if resp, body := postForm(t, a, "/oauth2/revoke", "", url.Values{"token": {tok}}); resp.StatusCode != 200 || body != nil {
			t.Errorf("%s: HTTP %d %v, want 200 and nothing", name, resp.StatusCode, body)
		}
	}
	if resp, body := postForm(t, a, "/oauth2/revoke", "", url.Values{}); resp.StatusCode != 400 || body["error"] != "invalid_request" {
		t.Errorf("no token: HTTP %d %v", resp.StatusCode, body)
	}

	// An access token: refused where the operator has not allowed it; where
	// it has, it takes its API token with it.
	other := ra.mustCreate(login, &pb.CreateTokenRequest{}).GetToken()
	access := exchangeScopes(t, a.grpcCaller(), other, nil).GetAccessToken()
	if resp, body := postForm(t, a, "/oauth2/revoke", "", url.Values{"token": {access}}); resp.StatusCode != 400 || body["error"] != "unsupported_token_type" {
		t.Errorf("an access token where not allowed: HTTP %d %v", resp.StatusCode, body)
	}
	if resp, _ := postForm(t, b, "/oauth2/revoke", "", url.Values{"token": {access}}); resp.StatusCode != 200 {
		t.Errorf("an access token where allowed: HTTP %d", resp.StatusCode)
	}
	_, err = rb.exchange("", other)
	wantCode(t, "the API token whose access token was revoked", err, codes.Unauthenticated)
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func timestamppbIn(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(time.Now().Add(d)) }

// TestMetadataMatchesTheSpec checks the metadata document against the
// OpenAPI 3 document's description of it.
func TestMetadataMatchesTheSpec(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		req, _ := http.NewRequest("GET", s.httpURL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		validate(t, specRouter(t, s.httpURL), req, resp, body)
	}
}
