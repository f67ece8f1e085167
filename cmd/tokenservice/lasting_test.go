package main

import (
	"context"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// serviceWriteScopes are the service's scopes an exchange gives only when
// it names them.
var serviceWriteScopes = []string{"tokens:read", "tokens:write", "users:read", "users:write"}

// lastingChanges tries, as bearer, every call that makes or changes a
// lasting credential, each on a target of its own, and returns each call's
// error by name.
func lastingChanges(t *testing.T, s *service, a rpc, login, bearer string) map[string]error {
	t.Helper()
	other := a.mustCreate(login, &pb.CreateTokenRequest{Note: "other"}).GetToken()
	bot := a.mustCreateUser(login, &pb.CreateUserRequest{Username: "bot-" + idOf(other), Machine: true})
	errs := map[string]error{}
	_, errs["CreateToken"] = a.create(bearer, &pb.CreateTokenRequest{})
	errs["RotateToken"] = a.c.call(context.Background(), pb.TokenService_RotateToken_FullMethodName, bearer,
		&pb.RotateTokenRequest{TokenId: idOf(other)}, &pb.RotateTokenResponse{})
	errs["DeleteToken of another"] = a.del(bearer, idOf(other))
	_, errs["CreateUser"] = a.users().CreateUser(as(bearer), &pb.CreateUserRequest{Username: "bot2-" + idOf(other), Machine: true})
	_, errs["DeleteUser"] = a.users().DeleteUser(as(bearer), &pb.DeleteUserRequest{UserId: bot.GetId()})
	_, errs["ChangePassword"] = a.users().ChangePassword(as(bearer), &pb.ChangePasswordRequest{UserId: "me", OldPassword: password, NewPassword: password + "!"})
	return errs
}

// wantLastingRefused checks that every call of lastingChanges was refused
// as needing a lasting credential.
func wantLastingRefused(t *testing.T, what string, errs map[string]error) {
	t.Helper()
	for call, err := range errs {
		if status.Code(err) != codes.PermissionDenied || reason(err) != "LASTING_CREDENTIAL_REQUIRED" {
			t.Errorf("%s: %s: got %s, want PermissionDenied LASTING_CREDENTIAL_REQUIRED", what, call, describe(err))
		}
	}
}

// TestAccessTokensMakeNoLastingCredentials: an access token, which every API
// behind the gateways receives, can neither make nor take a lasting
// credential, even with the write scopes named; an exchange gives the
// write scopes only when named; an access token may still delete the API
// token it came from, and read.
func TestAccessTokensMakeNoLastingCredentials(t *testing.T) {
	forEachScopedSetup(t, func(t *testing.T, s *service, c caller) {
		user := "kim-" + c.name
		s.mustUser(t, user, "human")
		a := rpc{t: t, c: c}
		login := a.login(user)

		if got := scopeClaim(t, exchangeScopes(t, c, login, nil).GetAccessToken()); got != "audit:read introspect orders:read orders:write tokens:read users:read" {
			t.Errorf("an exchange without scopes of an all-scopes token: scope %q, want every scope but the service's write scopes", got)
		}
		named := exchangeScopes(t, c, login, serviceWriteScopes).GetAccessToken()
		if got := scopeClaim(t, named); got != "tokens:read tokens:write users:read users:write" {
			t.Fatalf("an exchange naming the write scopes: scope %q", got)
		}
		wantLastingRefused(t, "an access token with the write scopes", lastingChanges(t, s, a, login, named))
		if _, err := a.list(named, &pb.ListTokensRequest{}); err != nil {
			t.Errorf("an access token reading: %s", describe(err))
		}
		// The control: the API token it came from may do each.
		for call, err := range lastingChanges(t, s, a, login, login) {
			if err != nil {
				t.Errorf("the API token: %s: %s", call, describe(err))
			}
		}
		// An access token may delete its own API token (revoke itself).
		own := a.mustCreate(login, &pb.CreateTokenRequest{}).GetToken()
		if err := a.del(exchangeScopes(t, c, own, []string{"tokens:write"}).GetAccessToken(), idOf(own)); err != nil {
			t.Errorf("an access token deleting its own API token: %s", describe(err))
		}
	})
}

// TestRotationShutsOutTheReplacedSecret: after a rotation the replaced
// secret and every access token minted from it (before the rotation or
// during its grace period) can make no lasting change; without a grace
// period, or once it ends, they are refused as a deleted token's are, over
// the API, introspection and Envoy's Check alike.
func TestRotationShutsOutTheReplacedSecret(t *testing.T) {
	forEachScopedSetup(t, func(t *testing.T, s *service, c caller) {
		user := "lee-" + c.name
		s.mustUser(t, user, "human")
		a := rpc{t: t, c: c}
		login := a.login(user)
		introspect := func(token string) bool {
			_, body := postForm(t, s, "/oauth2/introspect", "Bearer "+login, url.Values{"token": {token}})
			return body["active"] == true
		}
		checked := func(token string) codes.Code {
			return codes.Code(envoyCheck(t, s, "Bearer "+token, "").GetStatus().GetCode())
		}
		wantRefused := func(what, token string) {
			t.Helper()
			_, err := a.list(token, &pb.ListTokensRequest{})
			wantCode(t, what+": listing", err, codes.Unauthenticated)
			if introspect(token) {
				t.Errorf("%s: introspected as active", what)
			}
			if code := checked(token); code != codes.Unauthenticated {
				t.Errorf("%s: Envoy's Check: %v, want Unauthenticated", what, code)
			}
		}

		// Without a grace period: the access tokens of the old secret go with it.
		leaked := a.mustCreate(login, &pb.CreateTokenRequest{}).GetToken()
		before := exchangeScopes(t, c, leaked, serviceWriteScopes).GetAccessToken()
		if !introspect(before) || checked(before) != codes.OK {
			t.Fatal("the access token before the rotation is not active")
		}
		fresh := rotate(t, c, login, idOf(leaked), nil).GetToken()
		wantRefused("an access token of a secret rotated without grace", before)
		if _, err := a.list(exchangeScopes(t, c, fresh, nil).GetAccessToken(), &pb.ListTokensRequest{}); err != nil {
			t.Errorf("an access token of the new secret: %s", describe(err))
		}

		// With a grace period: the old secret and its access tokens only read.
		const grace = 3 * time.Second
		graced := a.mustCreate(login, &pb.CreateTokenRequest{}).GetToken()
		minted := exchangeScopes(t, c, graced, serviceWriteScopes).GetAccessToken()
		rotated := time.Now()
		newest := rotate(t, c, login, idOf(graced), durationpb.New(grace)).GetToken()
		answered := time.Now() // the grace period ends by answered+grace: it began before the answer
		resp := &pb.GetAccessTokenResponse{}
		err := c.call(context.Background(), pb.TokenService_GetAccessToken_FullMethodName, "",
			&pb.GetAccessTokenRequest{Token: graced, Scopes: []string{"tokens:write"}}, resp)
		if status.Code(err) != codes.InvalidArgument || reason(err) != "INVALID_SCOPE" {
			t.Errorf("the replaced secret asking for tokens:write: %s, want INVALID_SCOPE", describe(err))
		}
		during := exchangeScopes(t, c, graced, nil).GetAccessToken()
		for name, cred := range map[string]string{"the replaced secret": graced, "its access token minted before": minted, "its access token minted during the grace period": during} {
			if _, err := a.list(cred, &pb.ListTokensRequest{}); err != nil {
				t.Errorf("%s reading within the grace period: %s", name, describe(err))
			}
			if name != "the replaced secret" && (!introspect(cred) || checked(cred) != codes.OK) {
				t.Errorf("%s within the grace period: not active", name)
			}
			if cred == during { // it carries no write scope: refused for that first
				for call, err := range lastingChanges(t, s, a, login, cred) {
					wantCode(t, name+": "+call, err, codes.PermissionDenied)
				}
				continue
			}
			wantLastingRefused(t, name, lastingChanges(t, s, a, login, cred))
		}
		err = c.call(context.Background(), pb.TokenService_RotateToken_FullMethodName, graced,
			&pb.RotateTokenRequest{TokenId: idOf(graced)}, &pb.RotateTokenResponse{})
		wantCode(t, "the replaced secret rotating its own token back", err, codes.PermissionDenied)
		if time.Since(rotated) >= grace {
			t.Fatalf("the checks within the grace period took %v, past it", time.Since(rotated))
		}
		time.Sleep(time.Until(answered.Add(grace)))
		wantRefused("an access token minted before, after the grace period", minted)
		wantRefused("an access token minted during the grace period, after it", during)
		if _, err := a.create(newest, &pb.CreateTokenRequest{}); err != nil {
			t.Errorf("the newest secret: %s", describe(err))
		}
	})
}

// TestReplacedSecretCannotEndTheToken: within a rotation's grace period
// the replaced secret (which may have leaked: that is why the owner
// rotated) cannot delete the token, so the new secret lives on; nor do
// introspection and Envoy's Check grant it the service's write scopes,
// which it may not use. Revoking it (RFC 7009, by possession) ends its
// grace period, not the token.
func TestReplacedSecretCannotEndTheToken(t *testing.T) {
	forEachScopedSetup(t, func(t *testing.T, s *service, c caller) {
		user := "ned-" + c.name
		s.mustUser(t, user, "human")
		a := rpc{t: t, c: c}
		login := a.login(user)
		leaked := a.mustCreate(login, &pb.CreateTokenRequest{}).GetToken()
		fresh := rotate(t, c, login, idOf(leaked), durationpb.New(time.Hour)).GetToken()
		stillWorks := func(what string) {
			t.Helper()
			if _, err := a.get(fresh, idOf(fresh)); err != nil {
				t.Fatalf("the new secret, after %s: %s", what, describe(err))
			}
		}

		err := a.del(leaked, idOf(leaked))
		wantCode(t, "the replaced secret deleting its own token", err, codes.PermissionDenied)
		if reason(err) != "LASTING_CREDENTIAL_REQUIRED" {
			t.Errorf("the refusal's reason: %q, want LASTING_CREDENTIAL_REQUIRED", reason(err))
		}
		stillWorks("the replaced secret tried to delete the token")

		_, body := postForm(t, s, "/oauth2/introspect", "Bearer "+login, url.Values{"token": {leaked}})
		if body["active"] != true {
			t.Fatalf("the replaced secret within its grace period introspected as %v, want active", body)
		}
		scope, _ := body["scope"].(string)
		for _, w := range []string{"tokens:write", "users:write"} {
			if strings.Contains(" "+scope+" ", " "+w+" ") {
				t.Errorf("introspection grants the replaced secret %s: scope %q", w, scope)
			}
		}
		if !strings.Contains(scope, "tokens:read") {
			t.Errorf("introspection of the replaced secret: scope %q, want tokens:read kept", scope)
		}
		resp := envoyCheck(t, s, "Bearer "+leaked, "")
		if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("Envoy's Check of the replaced secret within its grace period: %v, want OK", resp.GetStatus())
		}
		checked := ""
		for _, h := range resp.GetOkResponse().GetHeaders() {
			if h.GetHeader().GetKey() == "x-tokenservice-scopes" {
				checked = " " + h.GetHeader().GetValue() + " "
			}
		}
		if !strings.Contains(checked, " tokens:read ") || strings.Contains(checked, " tokens:write ") || strings.Contains(checked, " users:write ") {
			t.Errorf("Envoy's Check passes the replaced secret's scopes as %q: want tokens:read and no write scope", checked)
		}

		minted := exchangeScopes(t, c, leaked, nil).GetAccessToken()
		if resp, _ := postForm(t, s, "/oauth2/revoke", "", url.Values{"token": {leaked}}); resp.StatusCode != 200 {
			t.Fatalf("revoking the replaced secret: %d", resp.StatusCode)
		}
		if _, err := a.get(leaked, idOf(leaked)); status.Code(err) != codes.Unauthenticated {
			t.Errorf("the replaced secret after its revocation: %s, want Unauthenticated", describe(err))
		}
		if _, err := a.get(minted, idOf(leaked)); status.Code(err) != codes.Unauthenticated {
			t.Errorf("an access token of the replaced secret after its revocation: %s, want Unauthenticated", describe(err))
		}
		stillWorks("the replaced secret was revoked")
	})
}

// TestDeleteActsOnlyOnTokensTheCallerCouldMake: a narrow or expiring token
// cannot delete a broader or longer-lived one of its user; it may delete
// itself, and a full-scope lasting token may delete any.
func TestDeleteActsOnlyOnTokensTheCallerCouldMake(t *testing.T) {
	forEachScopedSetup(t, func(t *testing.T, s *service, c caller) {
		user := "max-" + c.name
		s.mustUser(t, user, "human")
		a := rpc{t: t, c: c}
		login := a.login(user)
		broad := a.mustCreate(login, &pb.CreateTokenRequest{Note: "broad"}).GetToken()
		narrow := a.mustCreate(login, &pb.CreateTokenRequest{Scopes: []string{"tokens:write"}}).GetToken()
		expiring := a.mustCreate(login, &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(time.Hour))}).GetToken()

		err := a.del(narrow, idOf(broad))
		wantCode(t, "a tokens:write token deleting a full-scope one", err, codes.PermissionDenied)
		if reason(err) != "INSUFFICIENT_SCOPE" {
			t.Errorf("the refusal's reason: %q, want INSUFFICIENT_SCOPE", reason(err))
		}
		wantCode(t, "an expiring token deleting a lasting one", a.del(expiring, idOf(broad)), codes.PermissionDenied)
		if _, err := a.get(login, idOf(broad)); err != nil {
			t.Fatalf("the broad token after the refusals: %s", describe(err))
		}
		if err := a.del(narrow, idOf(narrow)); err != nil {
			t.Errorf("a narrow token deleting itself: %s", describe(err))
		}
		for _, tok := range []string{expiring, broad} {
			if err := a.del(login, idOf(tok)); err != nil {
				t.Errorf("the full-scope lasting token deleting another: %s", describe(err))
			}
		}

		// A password may act on any of its user's tokens, even one that
		// outlives every token the user holds (a leaked lasting token when
		// the CLI's login token expires in 30 days).
		month := a.mustCreate(login, &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(30 * 24 * time.Hour))}).GetToken()
		lasting := a.mustCreate(login, &pb.CreateTokenRequest{Note: "lasting"}).GetToken()
		wantCode(t, "a 30-day token deleting a lasting one", a.del(month, idOf(lasting)), codes.PermissionDenied)
		err = withPassword(c, user, password+"x", pb.TokenService_DeleteToken_FullMethodName, &pb.DeleteTokenRequest{TokenId: idOf(lasting)}, &pb.DeleteTokenResponse{})
		wantCode(t, "deleting with a wrong password", err, codes.Unauthenticated)
		rotated := &pb.RotateTokenResponse{}
		if err := withPassword(c, user, password, pb.TokenService_RotateToken_FullMethodName, &pb.RotateTokenRequest{TokenId: idOf(lasting)}, rotated); err != nil {
			t.Fatalf("rotating the lasting token with the password: %s", describe(err))
		}
		if err := withPassword(c, user, password, pb.TokenService_DeleteToken_FullMethodName, &pb.DeleteTokenRequest{TokenId: idOf(lasting)}, &pb.DeleteTokenResponse{}); err != nil {
			t.Fatalf("deleting the lasting token with the password: %s", describe(err))
		}
		err = withPassword(c, user, password, pb.TokenService_GetToken_FullMethodName, &pb.GetTokenRequest{TokenId: idOf(month)}, &pb.GetTokenResponse{})
		wantCode(t, "a password where only a bearer is taken", err, codes.Unauthenticated)
		if _, err := a.get(rotated.GetToken(), idOf(lasting)); status.Code(err) != codes.Unauthenticated {
			t.Errorf("the deleted token's new secret: %s, want Unauthenticated", describe(err))
		}
	})
}

// withPassword calls fullMethod with username and password as HTTP Basic
// credentials (RFC 7617).
func withPassword(c caller, username, password, fullMethod string, req, resp proto.Message) error {
	basic := base64.StdEncoding.EncodeToString([]byte(username + ":" + password))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Basic "+basic)
	return c.conn.Invoke(ctx, fullMethod, req, resp)
}
