package main

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/access"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// operatorScopes are the downstream scopes the scope tests' servers declare.
const operatorScopes = "orders:read,orders:write"

// forEachScopedSetup is forEachSetup with the operator's scopes declared.
func forEachScopedSetup(t *testing.T, f func(t *testing.T, s *service, c caller)) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_SCOPES", operatorScopes)
		for _, c := range s.callers(t) {
			t.Run(c.name, func(t *testing.T) { f(t, s, c) })
		}
	})
}

func TestTokensCarryTheScopesAskedFor(t *testing.T) {
	forEachScopedSetup(t, func(t *testing.T, s *service, c caller) {
		s.mustUser(t, "alice-"+c.name, "human")
		a := rpc{t: t, c: c}
		login := a.login("alice-" + c.name)
		got, err := a.get(login, idOf(login))
		if err != nil {
			t.Fatal(describe(err))
		}
		if want := []string{"audit:read", "introspect", "orders:read", "orders:write", "tokens:read", "tokens:write", "users:read", "users:write"}; !slices.Equal(got.GetToken().GetScopes(), want) {
			t.Errorf("a token made with a password and no scopes: %v, want every known scope %v", got.GetToken().GetScopes(), want)
		}

		made := a.mustCreate(login, &pb.CreateTokenRequest{Scopes: []string{"tokens:read", "orders:read", "tokens:read"}})
		if want := []string{"orders:read", "tokens:read"}; !slices.Equal(made.GetMetadata().GetScopes(), want) {
			t.Errorf("scopes asked for: %v, want %v (sorted, once each)", made.GetMetadata().GetScopes(), want)
		}
		// Without scopes, a bearer's new token gets the bearer's.
		inherited := a.mustCreate(login, &pb.CreateTokenRequest{})
		if !slices.Equal(inherited.GetMetadata().GetScopes(), got.GetToken().GetScopes()) {
			t.Errorf("a token made with a bearer and no scopes: %v, want the bearer's %v", inherited.GetMetadata().GetScopes(), got.GetToken().GetScopes())
		}

		_, err = a.create(login, &pb.CreateTokenRequest{Scopes: []string{"orders:delete"}})
		wantCode(t, "an unknown scope", err, codes.InvalidArgument)
		if !strings.Contains(status.Convert(err).Message(), `"orders:delete"`) {
			t.Errorf("an unknown scope's message does not name it: %s", status.Convert(err).Message())
		}
	})
}

func TestABearerCannotMintMoreThanItHas(t *testing.T) {
	forEachScopedSetup(t, func(t *testing.T, s *service, c caller) {
		s.mustUser(t, "bob-"+c.name, "human")
		a := rpc{t: t, c: c}
		login := a.login("bob-" + c.name)
		expire := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
		limited := a.mustCreate(login, &pb.CreateTokenRequest{Scopes: []string{"tokens:write", "orders:read"},
			ExpireTime: timestamppb.New(expire)}).GetToken()

		_, err := a.create(limited, &pb.CreateTokenRequest{Scopes: []string{"orders:read", "orders:write"}})
		wantCode(t, "a scope the bearer lacks", err, codes.PermissionDenied)
		if !strings.Contains(status.Convert(err).Message(), `"orders:write"`) {
			t.Errorf("the refusal does not name the scope: %s", status.Convert(err).Message())
		}

		child := a.mustCreate(limited, &pb.CreateTokenRequest{Scopes: []string{"orders:read"}})
		if got := child.GetMetadata().GetExpireTime().AsTime(); !got.Equal(expire) {
			t.Errorf("a token made with an expiring bearer and no expiry expires %v, want the bearer's %v", got, expire)
		}
		_, err = a.create(limited, &pb.CreateTokenRequest{ExpireTime: timestamppb.New(expire.Add(time.Hour))})
		wantCode(t, "an expiry past the bearer's", err, codes.InvalidArgument)
		// The password has no such bounds.
		a.mustCreate("", &pb.CreateTokenRequest{Username: "bob-" + c.name, Password: password,
			Scopes: []string{"orders:write"}, ExpireTime: timestamppb.New(expire.Add(time.Hour))})
	})
}

// TestEveryMethodChecksItsScope calls every method whose access rule (in
// its proto: pkg/access) names a scope with a token lacking it (refused,
// naming it) and with one holding only that scope (let through to the
// method itself).
func TestEveryMethodChecksItsScope(t *testing.T) {
	rules, err := access.Rules()
	if err != nil {
		t.Fatal(err)
	}
	forEachScopedSetup(t, func(t *testing.T, s *service, c caller) {
		s.mustUser(t, "carol-"+c.name, "admin")
		a := rpc{t: t, c: c}
		login := a.login("carol-" + c.name)
		for _, r := range rules {
			if r.Scope == "" || r.Credential == access.APIToken {
				continue // the API token in the request is the credential
			}
			md, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(r.Method, "/"), "/", ".")))
			if err != nil {
				t.Fatal(err)
			}
			req := apptest.MinimalRequest(t, md.(protoreflect.MethodDescriptor))
			resp, err := protoregistry.GlobalTypes.FindMessageByName(md.(protoreflect.MethodDescriptor).Output().FullName())
			if err != nil {
				t.Fatal(err)
			}
			others := a.mustCreate(login, &pb.CreateTokenRequest{Scopes: otherScopes(r.Scope)}).GetToken()
			err = c.call(context.Background(), r.Method, others, req, resp.New().Interface())
			wantCode(t, r.Method+" without "+r.Scope, err, codes.PermissionDenied)
			if !strings.Contains(status.Convert(err).Message(), `"`+r.Scope+`"`) || reason(err) != "INSUFFICIENT_SCOPE" {
				t.Errorf("%s without %s: %s, want the scope named and INSUFFICIENT_SCOPE", r.Method, r.Scope, describe(err))
			}
			only := a.mustCreate(login, &pb.CreateTokenRequest{Scopes: []string{r.Scope}}).GetToken()
			if err := c.call(context.Background(), r.Method, only, req, resp.New().Interface()); status.Code(err) == codes.PermissionDenied && reason(err) == "INSUFFICIENT_SCOPE" {
				t.Errorf("%s with %s: %s, want it let through", r.Method, r.Scope, describe(err))
			}
		}
	})
}

// otherScopes returns every scope the scope tests' servers know but one.
func otherScopes(but string) []string {
	var out []string
	for _, s := range append(slices.Clone(domain.ServiceScopes), strings.Split(operatorScopes, ",")...) {
		if s != but {
			out = append(out, s)
		}
	}
	return out
}

func reason(err error) string { return apptest.Reason(err) }

func TestAccessTokensCarryAndLimitScopes(t *testing.T) {
	forEachScopedSetup(t, func(t *testing.T, s *service, c caller) {
		s.mustUser(t, "dave-"+c.name, "human")
		a := rpc{t: t, c: c}
		login := a.login("dave-" + c.name)
		api := a.mustCreate(login, &pb.CreateTokenRequest{Scopes: []string{"tokens:read", "orders:read", "orders:write"}}).GetToken()

		all := exchangeScopes(t, c, api, nil)
		if want := "orders:read orders:write tokens:read"; scopeClaim(t, all.GetAccessToken()) != want || strings.Join(all.GetScopes(), " ") != want {
			t.Errorf("an exchange without scopes: claim %q, answer %v; want %q", scopeClaim(t, all.GetAccessToken()), all.GetScopes(), want)
		}
		sub := exchangeScopes(t, c, api, []string{"orders:read"})
		if got := scopeClaim(t, sub.GetAccessToken()); got != "orders:read" {
			t.Errorf("an exchange for orders:read: claim %q", got)
		}
		// The access token is no more than its claim: tokens:read is the API
		// token's, not this access token's.
		_, err := a.list(sub.GetAccessToken(), &pb.ListTokensRequest{})
		wantCode(t, "listing with an access token without tokens:read", err, codes.PermissionDenied)
		if _, err := a.list(all.GetAccessToken(), &pb.ListTokensRequest{}); err != nil {
			t.Errorf("listing with an access token with tokens:read: %s", describe(err))
		}

		resp := &pb.GetAccessTokenResponse{}
		err = c.call(context.Background(), pb.TokenService_GetAccessToken_FullMethodName, "",
			&pb.GetAccessTokenRequest{Token: api, Scopes: []string{"orders:read", "users:read"}}, resp)
		wantCode(t, "an exchange for a scope the API token lacks", err, codes.InvalidArgument)
		if reason(err) != "INVALID_SCOPE" || !strings.Contains(status.Convert(err).Message(), `"users:read"`) {
			t.Errorf("an exchange for more: %s, want INVALID_SCOPE naming users:read", describe(err))
		}
	})
}

func exchangeScopes(t *testing.T, c caller, api string, scopes []string) *pb.GetAccessTokenResponse {
	t.Helper()
	resp := &pb.GetAccessTokenResponse{}
	if err := c.call(context.Background(), pb.TokenService_GetAccessToken_FullMethodName, "",
		&pb.GetAccessTokenRequest{Token: api, Scopes: scopes}, resp); err != nil {
		t.Fatalf("exchange for %v: %s", scopes, describe(err))
	}
	return resp
}

// scopeClaim reads an access token's scope claim (RFC 9068 §2.2.3) without
// verifying it: the verifier tests do that.
func scopeClaim(t *testing.T, raw string) string {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Scope string `json:"scope"`
	}
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	return c.Scope
}

// TestAnswersSayWhenTheCredentialExpires checks the expiry header on REST
// and gRPC answers, and its absence for a token without expiry.
func TestAnswersSayWhenTheCredentialExpires(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		s.mustUser(t, "erin", "human")
		a := rpc{t: t, c: s.grpcCaller()}
		expire := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second)
		expiring := a.mustCreate("", &pb.CreateTokenRequest{Username: "erin", Password: password, ExpireTime: timestamppb.New(expire)}).GetToken()
		lasting := a.login("erin")

		for tok, want := range map[string]string{expiring: expire.Format(time.RFC3339), lasting: ""} {
			req, _ := http.NewRequest("GET", s.httpURL+"/v1alpha1/tokens", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Tokenservice-Token-Expiration"); got != want {
				t.Errorf("REST: Tokenservice-Token-Expiration %q, want %q", got, want)
			}
			var header metadata.MD
			ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
			if _, err := pb.NewTokenServiceClient(s.grpcConn).ListTokens(ctx, &pb.ListTokensRequest{}, grpc.Header(&header)); err != nil {
				t.Fatal(describe(err))
			}
			if got := strings.Join(header.Get("tokenservice-token-expiration"), ","); got != want {
				t.Errorf("gRPC: tokenservice-token-expiration %q, want %q", got, want)
			}
			// The exchange, whose credential is the API token in the body.
			header = nil
			if _, err := pb.NewTokenServiceClient(s.grpcConn).GetAccessToken(context.Background(), &pb.GetAccessTokenRequest{Token: tok}, grpc.Header(&header)); err != nil {
				t.Fatal(describe(err))
			}
			if got := strings.Join(header.Get("tokenservice-token-expiration"), ","); got != want {
				t.Errorf("gRPC exchange: tokenservice-token-expiration %q, want %q", got, want)
			}
			resp, err = http.Post(s.httpURL+"/v1alpha1/access-tokens", "application/json", strings.NewReader(`{"token":"`+tok+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Tokenservice-Token-Expiration"); got != want {
				t.Errorf("REST exchange: Tokenservice-Token-Expiration %q, want %q", got, want)
			}
		}
	})
}

// TestListTokensAboutToExpire checks ListTokens' expireBefore over both transports.
func TestListTokensAboutToExpire(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		s.mustUser(t, "fay-"+c.name, "human")
		a := rpc{t: t, c: c}
		login := a.login("fay-" + c.name)
		soon := a.mustCreate(login, &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(24 * time.Hour))}).GetMetadata().GetId()
		a.mustCreate(login, &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(30 * 24 * time.Hour))})
		list, err := a.list(login, &pb.ListTokensRequest{ExpireBefore: timestamppb.New(time.Now().Add(7 * 24 * time.Hour))})
		if err != nil {
			t.Fatal(describe(err))
		}
		if len(list.GetTokens()) != 1 || list.GetTokens()[0].GetId() != soon {
			t.Errorf("tokens expiring within 7 days: %v, want only %s", list.GetTokens(), soon)
		}
	})
}

func TestRotateToken(t *testing.T) {
	forEachScopedSetup(t, func(t *testing.T, s *service, c caller) {
		s.mustUser(t, "gus-"+c.name, "human")
		a := rpc{t: t, c: c}
		login := a.login("gus-" + c.name)
		old := a.mustCreate(login, &pb.CreateTokenRequest{Note: "ci", Scopes: []string{"orders:read"}}).GetToken()

		fresh := rotate(t, c, login, idOf(old), nil)
		if idOf(fresh.GetToken()) != idOf(old) || fresh.GetToken() == old {
			t.Fatalf("rotation gave %s for %s: want the same ID with a new secret", fresh.GetToken(), old)
		}
		if m := fresh.GetMetadata(); m.GetNote() != "ci" || !slices.Equal(m.GetScopes(), []string{"orders:read"}) {
			t.Errorf("rotation changed the token: %v", m)
		}
		_, err := a.exchange("", old)
		wantCode(t, "the old secret after a rotation without grace", err, codes.Unauthenticated)
		if _, err := a.exchange("", fresh.GetToken()); err != nil {
			t.Errorf("the new secret: %s", describe(err))
		}

		graced := rotate(t, c, login, idOf(old), durationpb.New(time.Hour))
		for name, tok := range map[string]string{"the secret rotated with grace": fresh.GetToken(), "the newest secret": graced.GetToken()} {
			if _, err := a.exchange("", tok); err != nil {
				t.Errorf("%s: %s", name, describe(err))
			}
		}
		resp := &pb.RotateTokenResponse{}
		err = c.call(context.Background(), pb.TokenService_RotateToken_FullMethodName, login,
			&pb.RotateTokenRequest{TokenId: idOf(old), GracePeriod: durationpb.New(25 * time.Hour)}, resp)
		wantCode(t, "a grace period over a day", err, codes.InvalidArgument)
		err = c.call(context.Background(), pb.TokenService_RotateToken_FullMethodName, login,
			&pb.RotateTokenRequest{TokenId: "noSuchToken00000"}, resp)
		wantCode(t, "rotating an unknown token", err, codes.NotFound)
	})
}

func rotate(t *testing.T, c caller, bearer, id string, grace *durationpb.Duration) *pb.RotateTokenResponse {
	t.Helper()
	resp := &pb.RotateTokenResponse{}
	if err := c.call(context.Background(), pb.TokenService_RotateToken_FullMethodName, bearer,
		&pb.RotateTokenRequest{TokenId: id, GracePeriod: grace}, resp); err != nil {
		t.Fatalf("RotateToken: %s", describe(err))
	}
	return resp
}

// TestRotationReachesTheOtherReplica: the new secret works within a second
// on a replica that had the token cached, and the old one stops there within
// the revocation bound (the change feed's poll, with the default settings).
func TestRotationReachesTheOtherReplica(t *testing.T) {
	a, b := twoReplicas(t)
	a.mustUser(t, "hal", "human")
	ra, rb := rpc{t: t, c: a.grpcCaller()}, rpc{t: t, c: b.grpcCaller()}
	login := ra.login("hal")
	old := ra.mustCreate(login, &pb.CreateTokenRequest{}).GetToken()
	access, err := rb.exchange("", old) // now cached on b
	if err != nil {
		t.Fatal(describe(err))
	}
	fresh := rotate(t, a.grpcCaller(), login, idOf(old), nil).GetToken()
	rotated := time.Now()
	// The new secret: within a second (a wrong secret rereads a token at
	// most once a second); the old one: within the revocation bound
	// (waitFor's bound plus its half second of slack).
	waitFor(t, "the other replica to accept the new secret", time.Second, rotated, func() bool {
		_, err := rb.exchange("", fresh)
		return err == nil
	})
	waitFor(t, "the other replica to refuse the old secret", revocationBound-500*time.Millisecond, rotated, func() bool {
		_, err := rb.exchange("", old)
		return status.Code(err) == codes.Unauthenticated
	})
	waitFor(t, "the other replica to refuse the old secret's access token", revocationBound-500*time.Millisecond, rotated, func() bool {
		_, err := rb.list(access.GetAccessToken(), &pb.ListTokensRequest{})
		return status.Code(err) == codes.Unauthenticated
	})
}

// TestStaleReplicaCannotRotateBack: a replica whose cache still holds a
// token as it was before a rotation on another replica does not let the
// replaced secret rotate it (and so take the token from its owner).
func TestStaleReplicaCannotRotateBack(t *testing.T) {
	// b's cache stays stale for the test: it does not follow the change feed.
	a, b := twoReplicas(t, "TOKENSERVICE_CACHE_TTL", "1h", "TOKENSERVICE_REVOCATION_POLL_INTERVAL", "0")
	a.mustUser(t, "ike", "human")
	ra, rb := rpc{t: t, c: a.grpcCaller()}, rpc{t: t, c: b.grpcCaller()}
	login := ra.login("ike")
	leaked := ra.mustCreate(login, &pb.CreateTokenRequest{}).GetToken()
	if _, err := rb.get(leaked, idOf(leaked)); err != nil { // now cached on b
		t.Fatal(describe(err))
	}
	fresh := rotate(t, a.grpcCaller(), login, idOf(leaked), nil).GetToken()
	err := b.grpcCaller().call(context.Background(), pb.TokenService_RotateToken_FullMethodName, leaked,
		&pb.RotateTokenRequest{TokenId: idOf(leaked)}, &pb.RotateTokenResponse{})
	// Refused as the replaced secret it is: the call reads the token from
	// the database. (Two rotations racing each other are the store's
	// compare-and-swap's: TestRotateSecret.)
	wantCode(t, "the replaced secret rotating the token on a stale replica", err, codes.Unauthenticated)
	if _, err := ra.get(fresh, idOf(fresh)); err != nil {
		t.Errorf("the owner's new secret after the attempt: %s", describe(err))
	}

	// Nor does that replica let the replaced secret, or an access token
	// minted from it, make a lasting token or delete the token for the
	// hour its cache would: a call that makes or changes lasting
	// credentials reads the token from the database. Nor does revoking the
	// replaced secret there (RFC 7009) delete the token: it ends a grace
	// period, here none.
	other := ra.mustCreate(login, &pb.CreateTokenRequest{}).GetToken()
	access := exchangeScopes(t, b.grpcCaller(), other, serviceWriteScopes).GetAccessToken() // and cached on b
	if _, err := rb.get(other, idOf(other)); err != nil {
		t.Fatal(describe(err))
	}
	renewed := rotate(t, a.grpcCaller(), login, idOf(other), durationpb.New(time.Hour)).GetToken()
	_, err = rb.create(other, &pb.CreateTokenRequest{})
	wantCode(t, "the replaced secret making a token on the stale replica", err, codes.PermissionDenied)
	wantCode(t, "the replaced secret's access token deleting the token on the stale replica", rb.del(access, idOf(other)), codes.PermissionDenied)
	if r, _ := postForm(t, b, "/oauth2/revoke", "", url.Values{"token": {other}}); r.StatusCode != http.StatusOK {
		t.Fatalf("revoking the replaced secret on the stale replica: %d", r.StatusCode)
	}
	if _, err := ra.get(renewed, idOf(renewed)); err != nil {
		t.Errorf("the owner's new secret after the stale replica was asked to revoke the replaced one: %s", describe(err))
	}
}

// TestRotationHandsOutNoMoreThanTheCallerHolds: a narrow token cannot rotate
// (and so take over) a broader or longer-lived one, and a secret a rotation
// replaced cannot rotate its token back; a grace period ends.
func TestRotationHandsOutNoMoreThanTheCallerHolds(t *testing.T) {
	forEachScopedSetup(t, func(t *testing.T, s *service, c caller) {
		s.mustUser(t, "ida-"+c.name, "human")
		a := rpc{t: t, c: c}
		login := a.login("ida-" + c.name)
		narrow := a.mustCreate(login, &pb.CreateTokenRequest{Scopes: []string{"tokens:write"}}).GetToken()
		resp := &pb.RotateTokenResponse{}
		err := c.call(context.Background(), pb.TokenService_RotateToken_FullMethodName, narrow, &pb.RotateTokenRequest{TokenId: idOf(login)}, resp)
		wantCode(t, "a tokens:write token rotating the login's full-scope token", err, codes.PermissionDenied)
		expiring := a.mustCreate(login, &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(time.Hour))}).GetToken()
		err = c.call(context.Background(), pb.TokenService_RotateToken_FullMethodName, expiring, &pb.RotateTokenRequest{TokenId: idOf(login)}, resp)
		wantCode(t, "an expiring token rotating a lasting one", err, codes.PermissionDenied)
		rotate(t, c, narrow, idOf(narrow), nil) // itself: allowed

		old := a.mustCreate(login, &pb.CreateTokenRequest{}).GetToken()
		rotate(t, c, login, idOf(old), durationpb.New(time.Second))
		err = c.call(context.Background(), pb.TokenService_RotateToken_FullMethodName, old, &pb.RotateTokenRequest{TokenId: idOf(old)}, resp)
		wantCode(t, "the replaced secret rotating its token back", err, codes.PermissionDenied)
		if _, err := a.exchange("", old); err != nil {
			t.Errorf("the replaced secret within its grace period: %s", describe(err))
		}
		waitFor(t, "the grace period to end", time.Second, time.Now(), func() bool {
			_, err := a.exchange("", old)
			return status.Code(err) == codes.Unauthenticated
		})
	})
}

// TestRemovedScopesStopWorking: a scope taken out of --scopes is granted by
// no exchange and no check, though tokens keep it stored.
func TestRemovedScopesStopWorking(t *testing.T) {
	db := storetest.MustConfig(t, "sqlite")
	before := startService(t, db, "TOKENSERVICE_SCOPES", operatorScopes)
	before.mustUser(t, "jon", "human")
	a := rpc{t: t, c: before.grpcCaller()}
	api := a.mustCreate("", &pb.CreateTokenRequest{Username: "jon", Password: password, Scopes: []string{"orders:read", "orders:write"}}).GetToken()
	gateway := a.mustCreate("", &pb.CreateTokenRequest{Username: "jon", Password: password, Scopes: []string{"introspect"}}).GetToken()
	access := exchangeScopes(t, before.grpcCaller(), api, nil).GetAccessToken()
	if err := before.shutdown(); err != nil {
		t.Fatal(err)
	}
	after := startService(t, db, "TOKENSERVICE_SCOPES", "orders:read")
	if got := scopeClaim(t, exchangeScopes(t, after.grpcCaller(), api, nil).GetAccessToken()); got != "orders:read" {
		t.Errorf("an exchange after orders:write was removed: scope %q", got)
	}
	resp := &pb.GetAccessTokenResponse{}
	err := after.grpcCaller().call(context.Background(), pb.TokenService_GetAccessToken_FullMethodName, "",
		&pb.GetAccessTokenRequest{Token: api, Scopes: []string{"orders:write"}}, resp)
	wantCode(t, "asking for a removed scope", err, codes.InvalidArgument)
	if r := envoyCheck(t, after, "Bearer "+api, "orders:write"); codes.Code(r.GetStatus().GetCode()) != codes.PermissionDenied {
		t.Errorf("a route needing a removed scope: %v", r)
	}
	// A gateway that authorizes by introspection is told the scopes in force only.
	for name, tok := range map[string]string{"the API token": api, "an access token minted before": access} {
		_, body := postForm(t, after, "/oauth2/introspect", "Bearer "+gateway, url.Values{"token": {tok}})
		if body["active"] != true || body["scope"] != "orders:read" {
			t.Errorf("introspecting %s after orders:write was removed: %v, want active with scope orders:read", name, body)
		}
	}
	// A token made while orders:write is out, with every scope in force,
	// still lacks what the other token holds: it may not rotate it (its
	// holder would have orders:write back when the operator restores it).
	b := rpc{t: t, c: after.grpcCaller()}
	narrow := b.mustCreate("", &pb.CreateTokenRequest{Username: "jon", Password: password,
		Scopes: []string{"orders:read", "tokens:read", "tokens:write", "users:read", "users:write", "introspect", "audit:read"}}).GetToken()
	err = after.grpcCaller().call(context.Background(), pb.TokenService_RotateToken_FullMethodName, narrow,
		&pb.RotateTokenRequest{TokenId: idOf(api)}, &pb.RotateTokenResponse{})
	wantCode(t, "a token without the removed scope rotating one that holds it", err, codes.PermissionDenied)
	wantCode(t, "a token without the removed scope deleting one that holds it", b.del(narrow, idOf(api)), codes.PermissionDenied)
}
