// Command generated-client calls every operation of the REST API through a
// client that go-swagger generates from openapi/ at test time (into client/
// and models/, not committed), to prove the published spec is consumable.
// scripts/readme-session.sh runs it against a real server.
//
// Usage: go run . HOST:PORT USERNAME PASSWORD
package main

import (
	"errors"
	"fmt"
	"os"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"

	"clienttest/client"
	as "clienttest/client/audit_service"
	ts "clienttest/client/token_service"
	us "clienttest/client/user_service"
	"clienttest/models"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: generated-client HOST:PORT USERNAME PASSWORD")
		os.Exit(2)
	}
	host, username, password := os.Args[1], os.Args[2], os.Args[3]
	api := client.NewHTTPClientWithConfig(strfmt.Default, client.DefaultTransportConfig().WithHost(host))
	c, uc := api.TokenService, api.UserService

	passed, failed := 0, 0
	check := func(name string, err error) {
		if err != nil {
			failed++
			fmt.Fprintf(os.Stderr, "FAIL: %s: %v\n", name, err)
			return
		}
		passed++
	}
	defer func() {
		fmt.Printf("generated-client: %d passed, %d failed\n", passed, failed)
		if failed > 0 {
			os.Exit(1)
		}
	}()

	created, err := c.TokenServiceCreateToken(ts.NewTokenServiceCreateTokenParams().WithBody(
		&models.CreateTokenRequest{Username: username, Password: password, Note: "generated client"}), nil)
	check("CreateToken with username and password", err)
	if err != nil {
		return
	}
	token, id := created.Payload.Token, created.Payload.Metadata.ID
	bearer := httptransport.APIKeyAuth("Authorization", "header", "Bearer "+token)

	access, err := c.TokenServiceGetAccessToken(ts.NewTokenServiceGetAccessTokenParams().WithBody(
		&models.GetAccessTokenRequest{Token: token}), nil)
	check("GetAccessToken", err)
	if err == nil && (access.Payload.AccessToken == "" || access.Payload.TokenType != "Bearer") {
		check("GetAccessToken's answer", fmt.Errorf("%+v", access.Payload))
	}

	size := int64(5)
	list, err := c.TokenServiceListTokens(ts.NewTokenServiceListTokensParams().WithPageSize(&size), bearer)
	check("ListTokens", err)
	if err == nil && !contains(list.Payload.Tokens, id) {
		check("ListTokens lists the new token", errors.New("it does not"))
	}

	got, err := c.TokenServiceGetToken(ts.NewTokenServiceGetTokenParams().WithTokenID(id), bearer)
	check("GetToken", err)
	if err == nil && got.Payload.Token.Note != "generated client" {
		check("GetToken's note", fmt.Errorf("%q", got.Payload.Token.Note))
	}

	// UserService: who am I, a machine user made, listed and deleted, a password changed.
	me, err := uc.UserServiceGetUser(us.NewUserServiceGetUserParams().WithUserID("me"), bearer)
	check("GetUser(me)", err)
	if err == nil && me.Payload.User.Username != username {
		check("GetUser(me)'s username", fmt.Errorf("%q", me.Payload.User.Username))
	}
	botName := "generated-client-bot"
	bot, err := uc.UserServiceCreateUser(us.NewUserServiceCreateUserParams().WithBody(
		&models.CreateUserRequest{Username: &botName, Machine: true}), bearer)
	check("CreateUser (a machine user)", err)
	if err == nil {
		users, err := uc.UserServiceListUsers(us.NewUserServiceListUsersParams().WithUsername(&botName), bearer)
		check("ListUsers", err)
		if err == nil && (len(users.Payload.Users) != 1 || users.Payload.Users[0].ID != bot.Payload.User.ID) {
			check("ListUsers finds the machine user", fmt.Errorf("%+v", users.Payload.Users))
		}
		_, err = uc.UserServiceDeleteUser(us.NewUserServiceDeleteUserParams().WithUserID(bot.Payload.User.ID), bearer)
		check("DeleteUser", err)
	}
	_, err = uc.UserServiceChangePassword(us.NewUserServiceChangePasswordParams().WithUserID("me").WithBody(
		&models.ChangePasswordBody{OldPassword: password, NewPassword: &password}), bearer)
	check("ChangePassword (to the same one)", err)

	// AuditService: the trail, as the caller may see it.
	events, err := api.AuditService.AuditServiceListAuditEvents(as.NewAuditServiceListAuditEventsParams().WithPageSize(&size), bearer)
	check("ListAuditEvents", err)
	if err == nil && len(events.Payload.AuditEvents) > int(size) {
		check("ListAuditEvents's page size", fmt.Errorf("%d events", len(events.Payload.AuditEvents)))
	}

	// RotateToken on the bearer itself, with a grace period so it keeps working.
	rotated, err := c.TokenServiceRotateToken(ts.NewTokenServiceRotateTokenParams().WithTokenID(id).WithBody(
		&models.RotateTokenBody{GracePeriod: "60s"}), bearer)
	check("RotateToken", err)
	if err == nil && (rotated.Payload.Metadata.ID != id || rotated.Payload.Token == "") {
		check("RotateToken's new plaintext", fmt.Errorf("%+v", rotated.Payload))
	}

	// The token deletes itself with its new secret (the replaced one may
	// only read until its grace period ends).
	if err == nil {
		bearer = httptransport.APIKeyAuth("Authorization", "header", "Bearer "+rotated.Payload.Token)
	}
	_, err = c.TokenServiceDeleteToken(ts.NewTokenServiceDeleteTokenParams().WithTokenID(id), bearer)
	check("DeleteToken", err)

	// Errors arrive as the spec's Status model.
	_, err = c.TokenServiceGetToken(ts.NewTokenServiceGetTokenParams().WithTokenID(id), bearer)
	var unauthorized *ts.TokenServiceGetTokenUnauthorized
	if !errors.As(err, &unauthorized) || unauthorized.Code() != 401 || unauthorized.Payload.Code != 16 {
		check("GetToken with the deleted token is a 401 Status", fmt.Errorf("got %v", err))
	} else {
		check("GetToken with the deleted token is a 401 Status", nil)
	}
}

func contains(tokens []*models.Token, id string) bool {
	for _, t := range tokens {
		if t.ID == id {
			return true
		}
	}
	return false
}
