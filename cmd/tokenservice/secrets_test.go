package main

import (
	"strings"
	"testing"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/auth"
)

// The whole flow, failures included, with debug logging: no plaintext token,
// secret, password or access token appears in the logs, in an error message
// or in any database row.
func TestSecretsStaySecret(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		a := rpc{t, c}
		user := c.name + "-leo"
		s.mustUser(t, user, "human")
		created := a.mustCreate("", &pb.CreateTokenRequest{Username: user, Password: password})
		tok := created.GetToken()
		parsed, _ := auth.ParseAPIToken(tok)
		access, err := a.exchange("", tok)
		if err != nil {
			t.Fatal(describe(err))
		}
		var messages []string
		record := func(err error) {
			if err != nil {
				messages = append(messages, err.Error())
			}
		}
		_, err = a.list(access.GetAccessToken(), &pb.ListTokensRequest{})
		record(err)
		_, err = a.create("", &pb.CreateTokenRequest{Username: user, Password: password + "x"})
		record(err)
		_, err = a.list(tok+"x", &pb.ListTokensRequest{})
		record(err)
		_, err = a.list(access.GetAccessToken()+"x", &pb.ListTokensRequest{})
		record(err)
		_, err = a.exchange("", tok[:len(tok)-1])
		record(err)
		record(a.del(tok, parsed.ID))
		_, err = a.list(tok, &pb.ListTokensRequest{})
		record(err)

		// Passwords sent to UserService: a new user's, a changed one, wrong old ones.
		admin := c.name + "-root"
		s.mustUser(t, admin, "admin")
		adminTok := a.login(admin)
		const newUserPassword, changedPassword = "the new user's password", "the changed password"
		newUser := a.mustCreateUser(adminTok, &pb.CreateUserRequest{Username: c.name + "-mia", Password: newUserPassword})
		_, err = a.users().CreateUser(as(adminTok), &pb.CreateUserRequest{Username: c.name + "-mia", Password: newUserPassword})
		record(err)
		_, err = a.users().ChangePassword(as(adminTok), &pb.ChangePasswordRequest{UserId: "me", OldPassword: newUserPassword, NewPassword: changedPassword})
		record(err)
		_, err = a.users().ChangePassword(as(adminTok), &pb.ChangePasswordRequest{UserId: newUser.GetId(), NewPassword: "short"})
		record(err)
		if _, err := a.users().ChangePassword(as(adminTok), &pb.ChangePasswordRequest{UserId: "me", OldPassword: password, NewPassword: changedPassword}); err != nil {
			t.Fatal(describe(err))
		}
		if len(messages) < 8 {
			t.Fatalf("only %d failures recorded", len(messages))
		}

		secrets := map[string]string{
			"plaintext token": tok, "secret": parsed.Secret, "password": password,
			"new user's password": newUserPassword, "changed password": changedPassword,
			"access token": access.GetAccessToken(), "access token signature": access.GetAccessToken()[strings.LastIndexByte(access.GetAccessToken(), '.')+1:],
		}
		logs := s.logs.String()
		if !strings.Contains(logs, `"level":"DEBUG"`) && !strings.Contains(logs, `"grpc.code"`) {
			t.Fatalf("the logs hold no request lines; the check would prove nothing:\n%.500s", logs)
		}
		for name, secret := range secrets {
			if strings.Contains(logs, secret) {
				t.Errorf("the logs hold the %s", name)
			}
			for _, m := range messages {
				if strings.Contains(m, secret) {
					t.Errorf("an error message holds the %s: %s", name, m)
				}
			}
		}
		s.assertNotInDatabase(t, s.openDB(t), tok, parsed.Secret, password, newUserPassword, changedPassword, access.GetAccessToken())
	})
}
