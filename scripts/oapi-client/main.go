// Command oapi-client calls every operation of the REST API through a
// client that oapi-codegen generates from the OpenAPI 3 document at test time
// (into client/, not committed), to prove the document is consumable by a
// standard generator. scripts/readme-session.sh runs it against a real server.
//
// Usage: go run . HOST:PORT USERNAME PASSWORD
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"oapiclienttest/client"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: oapi-client HOST:PORT USERNAME PASSWORD")
		os.Exit(2)
	}
	host, username, password := os.Args[1], os.Args[2], os.Args[3]
	ctx := context.Background()
	passed, failed := 0, 0
	check := func(name string, ok bool, detail any) {
		if !ok {
			failed++
			fmt.Fprintf(os.Stderr, "FAIL: %s: %v\n", name, detail)
			return
		}
		passed++
	}
	defer func() {
		fmt.Printf("oapi-client: %d passed, %d failed\n", passed, failed)
		if failed > 0 {
			os.Exit(1)
		}
	}()

	anon, err := client.NewClientWithResponses("http://" + host)
	if err != nil {
		check("NewClientWithResponses", false, err)
		return
	}
	note := "oapi-codegen client"
	created, err := anon.TokenServiceCreateTokenWithResponse(ctx, client.CreateTokenRequest{Username: &username, Password: &password, Note: &note})
	if check("CreateToken with username and password", err == nil && created.JSON200 != nil, describe(created, err)); failed > 0 {
		return
	}
	token, id := *created.JSON200.Token, *created.JSON200.Metadata.Id
	bearer := client.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	})
	c, _ := client.NewClientWithResponses("http://"+host, bearer)

	access, err := c.TokenServiceGetAccessTokenWithResponse(ctx, client.GetAccessTokenRequest{})
	check("GetAccessToken (the bearer's)", err == nil && access.JSON200 != nil && *access.JSON200.TokenType == "Bearer", describe(access, err))
	size := int64(5)
	list, err := c.TokenServiceListTokensWithResponse(ctx, &client.TokenServiceListTokensParams{PageSize: &size})
	check("ListTokens", err == nil && list.JSON200 != nil && len(*list.JSON200.Tokens) > 0, describe(list, err))
	got, err := c.TokenServiceGetTokenWithResponse(ctx, id)
	check("GetToken", err == nil && got.JSON200 != nil && *got.JSON200.Token.Note == note, describe(got, err))

	me, err := c.UserServiceGetUserWithResponse(ctx, "me")
	check("GetUser(me)", err == nil && me.JSON200 != nil && *me.JSON200.User.Username == username, describe(me, err))
	botName, machine := "oapi-client-bot", true
	bot, err := c.UserServiceCreateUserWithResponse(ctx, client.CreateUserRequest{Username: botName, Machine: &machine})
	check("CreateUser (a machine user)", err == nil && bot.JSON200 != nil, describe(bot, err))
	users, err := c.UserServiceListUsersWithResponse(ctx, &client.UserServiceListUsersParams{Username: &botName})
	check("ListUsers", err == nil && users.JSON200 != nil && len(*users.JSON200.Users) == 1, describe(users, err))
	if bot != nil && bot.JSON200 != nil {
		del, err := c.UserServiceDeleteUserWithResponse(ctx, *bot.JSON200.User.Id)
		check("DeleteUser", err == nil && del.JSON200 != nil, describe(del, err))
	}
	changed, err := c.UserServiceChangePasswordWithResponse(ctx, "me", client.ChangePasswordBody{OldPassword: &password, NewPassword: password})
	check("ChangePassword (to the same one)", err == nil && changed.JSON200 != nil, describe(changed, err))

	events, err := c.AuditServiceListAuditEventsWithResponse(ctx, &client.AuditServiceListAuditEventsParams{PageSize: &size})
	check("ListAuditEvents", err == nil && events.JSON200 != nil && events.JSON200.AuditEvents != nil && len(*events.JSON200.AuditEvents) <= int(size), describe(events, err))
	action := "token.created"
	bad, err := c.AuditServiceListAuditEventsWithResponse(ctx, &client.AuditServiceListAuditEventsParams{Action: &action})
	check("ListAuditEvents of an unknown action is a 400 Status", err == nil && bad.JSON400 != nil && *bad.JSON400.Code == 3, describe(bad, err))

	// The OAuth 2 endpoints, from the document's hand-written part.
	meta, err := anon.OAuth2MetadataWithResponse(ctx)
	check("OAuth2 metadata", err == nil && meta.JSON200 != nil && meta.JSON200.TokenEndpoint != "", describe(meta, err))
	granted, err := anon.OAuth2TokenWithFormdataBodyWithResponse(ctx, client.OAuth2TokenFormdataRequestBody{
		GrantType: client.ClientCredentials, ClientId: &id, ClientSecret: &token})
	check("OAuth2 token (client credentials)", err == nil && granted.JSON200 != nil && granted.JSON200.TokenType == client.OAuth2AccessTokenTokenTypeBearer, describe(granted, err))
	intro, err := c.OAuth2IntrospectWithFormdataBodyWithResponse(ctx, client.OAuth2IntrospectFormdataRequestBody{Token: token})
	check("OAuth2 introspect", err == nil && intro.JSON200 != nil && intro.JSON200.Active, describe(intro, err))
	junk := "not a token"
	revoked, err := anon.OAuth2RevokeWithFormdataBodyWithResponse(ctx, client.OAuth2RevokeFormdataRequestBody{Token: junk})
	check("OAuth2 revoke (of nothing: 200 all the same)", err == nil && revoked.StatusCode() == 200, describe(revoked, err))

	grace := "60s" // the bearer itself keeps working
	rotated, err := c.TokenServiceRotateTokenWithResponse(ctx, id, client.RotateTokenBody{GracePeriod: &grace})
	check("RotateToken", err == nil && rotated.JSON200 != nil && *rotated.JSON200.Metadata.Id == id && *rotated.JSON200.Token != token, describe(rotated, err))

	// The token deletes itself with its new secret (the replaced one may
	// only read until its grace period ends).
	if rotated != nil && rotated.JSON200 != nil {
		token = *rotated.JSON200.Token
	}
	deleted, err := c.TokenServiceDeleteTokenWithResponse(ctx, id)
	check("DeleteToken", err == nil && deleted.JSON200 != nil, describe(deleted, err))
	// Errors arrive as the document's Status, under their documented status.
	gone, err := c.TokenServiceGetTokenWithResponse(ctx, id)
	check("GetToken with the deleted token is a 401 Status", err == nil && gone.JSON401 != nil && *gone.JSON401.Code == 16, describe(gone, err))
}

// describe says what came back, for a failure's line.
func describe(resp interface{ StatusCode() int }, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("HTTP %d", resp.StatusCode())
}
