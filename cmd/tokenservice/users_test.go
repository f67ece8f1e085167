package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// as returns a context carrying bearer as the call's credential.
func as(bearer string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+bearer)
}

// users is UserService over the caller's transport.
func (a rpc) users() pb.UserServiceClient { return pb.NewUserServiceClient(a.c.conn) }

func (a rpc) mustCreateUser(bearer string, req *pb.CreateUserRequest) *pb.User {
	a.t.Helper()
	resp, err := a.users().CreateUser(as(bearer), req)
	if err != nil {
		a.t.Fatalf("CreateUser %s: %s", req.GetUsername(), describe(err))
	}
	return resp.GetUser()
}

func TestCreateUserRules(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		a := rpc{t, c}
		admin := c.name + "-root"
		s.mustUser(t, admin, "admin")
		adminTok := a.login(admin)

		// An admin creates human users, admin or not; they log in with their password.
		bob := a.mustCreateUser(adminTok, &pb.CreateUserRequest{Username: c.name + "-Bob", Password: password})
		if bob.GetUsername() != c.name+"-bob" || bob.GetMachine() || bob.GetAdmin() || bob.GetOwnerId() != "" || bob.GetId() == "" || bob.GetCreateTime() == nil {
			t.Errorf("created %v: want a human non-admin named in lower case", bob)
		}
		if strings.Contains(bob.String(), password) {
			t.Error("CreateUser returned the password")
		}
		bobTok := a.login(c.name + "-BOB") // usernames ignore case at login too
		carol := a.mustCreateUser(adminTok, &pb.CreateUserRequest{Username: c.name + "-carol", Password: password, Admin: true})
		if !carol.GetAdmin() {
			t.Errorf("carol is not an admin: %v", carol)
		}

		// Any human creates machine users, which it owns.
		bot := a.mustCreateUser(bobTok, &pb.CreateUserRequest{Username: c.name + "-bob-ci", Machine: true})
		if !bot.GetMachine() || bot.GetOwnerId() != bob.GetId() || bot.GetAdmin() {
			t.Errorf("bob's machine user %v: want machine, owned by bob", bot)
		}
		// An admin may give a machine user another human owner.
		other := a.mustCreateUser(adminTok, &pb.CreateUserRequest{Username: c.name + "-bob-deploy", Machine: true, OwnerId: bob.GetId()})
		if other.GetOwnerId() != bob.GetId() {
			t.Errorf("a machine user an admin made for bob is owned by %q", other.GetOwnerId())
		}
		botTok := a.mustCreate(bobTok, &pb.CreateTokenRequest{UserId: bot.GetId()}).GetToken()

		for _, tc := range []struct {
			name   string
			bearer string
			req    *pb.CreateUserRequest
			want   codes.Code
			says   string
		}{
			{"a human user by a non-admin", bobTok, &pb.CreateUserRequest{Username: c.name + "-eve", Password: password}, codes.PermissionDenied, "admin"},
			{"a user by a machine user", botTok, &pb.CreateUserRequest{Username: c.name + "-bot2", Machine: true}, codes.PermissionDenied, "machine users cannot"},
			{"a machine user with a password", bobTok, &pb.CreateUserRequest{Username: c.name + "-bot3", Machine: true, Password: password}, codes.InvalidArgument, "no password"},
			{"an admin machine user", adminTok, &pb.CreateUserRequest{Username: c.name + "-bot4", Machine: true, Admin: true}, codes.InvalidArgument, "never an admin"},
			{"a machine user for another owner by a non-admin", bobTok, &pb.CreateUserRequest{Username: c.name + "-bot5", Machine: true, OwnerId: carol.GetId()}, codes.PermissionDenied, "another owner"},
			{"a machine user owned by a machine user", adminTok, &pb.CreateUserRequest{Username: c.name + "-bot6", Machine: true, OwnerId: bot.GetId()}, codes.InvalidArgument, "owners are human"},
			{"a human user without a password", adminTok, &pb.CreateUserRequest{Username: c.name + "-dan"}, codes.InvalidArgument, "password"},
			{"a short password", adminTok, &pb.CreateUserRequest{Username: c.name + "-dan", Password: "short"}, codes.InvalidArgument, "at least 8"},
			{"a bad username", adminTok, &pb.CreateUserRequest{Username: "no spaces", Password: password}, codes.InvalidArgument, "username"},
			{"the username that names the caller", bobTok, &pb.CreateUserRequest{Username: "Me", Machine: true}, codes.InvalidArgument, "reserved"},
			{"a taken username, in other case", adminTok, &pb.CreateUserRequest{Username: strings.ToUpper(c.name + "-bob"), Password: password}, codes.AlreadyExists, "username"},
			{"a taken username, by a machine user", bobTok, &pb.CreateUserRequest{Username: c.name + "-carol", Machine: true}, codes.AlreadyExists, "username"},
		} {
			_, err := a.users().CreateUser(as(tc.bearer), tc.req)
			wantCode(t, "CreateUser of "+tc.name, err, tc.want)
			if msg := status.Convert(err).Message(); err != nil && !strings.Contains(msg, tc.says) {
				t.Errorf("CreateUser of %s: message %q does not say %q", tc.name, msg, tc.says)
			}
		}
		_, err := a.users().CreateUser(context.Background(), &pb.CreateUserRequest{Username: c.name + "-anon", Machine: true})
		wantCode(t, "CreateUser without a bearer", err, codes.Unauthenticated)
	})
}

func TestGetAndListUsers(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		a := rpc{t, c}
		p := c.name + "-"
		s.mustUser(t, p+"admin", "admin")
		ownerID := s.mustUser(t, p+"owner", "human")
		otherID := s.mustUser(t, p+"other", "human")
		var botIDs []string
		for _, n := range []string{"b1", "b2", "b3", "b4", "b5"} {
			botIDs = append(botIDs, s.mustUser(t, p+n, "machine:"+p+"owner"))
		}
		otherBot := s.mustUser(t, p+"otherbot", "machine:"+p+"other")
		adminTok, ownerTok := a.login(p+"admin"), a.login(p+"owner")
		botTok := a.mustCreate(ownerTok, &pb.CreateTokenRequest{UserId: botIDs[0]}).GetToken()
		access, err := a.exchange("", ownerTok)
		if err != nil {
			t.Fatal(describe(err))
		}

		// Who am I: "me", with either kind of bearer, for humans and machine users.
		for name, tc := range map[string]struct{ bearer, want string }{
			"api token": {ownerTok, ownerID}, "access token": {access.GetAccessToken(), ownerID}, "machine user": {botTok, botIDs[0]},
		} {
			got, err := a.users().GetUser(as(tc.bearer), &pb.GetUserRequest{UserId: "me"})
			if err != nil || got.GetUser().GetId() != tc.want {
				t.Errorf("GetUser(me) with a %s: %v, %s; want %s", name, got.GetUser(), describe(err), tc.want)
			}
		}
		// An owner sees its machine users; someone else's user is not found; an admin sees anyone.
		if got, err := a.users().GetUser(as(ownerTok), &pb.GetUserRequest{UserId: botIDs[1]}); err != nil || got.GetUser().GetOwnerId() != ownerID {
			t.Errorf("owner getting its machine user: %v, %s", got.GetUser(), describe(err))
		}
		for _, id := range []string{otherID, otherBot, "nosuchuser000000"} {
			_, err := a.users().GetUser(as(ownerTok), &pb.GetUserRequest{UserId: id})
			wantCode(t, "owner getting "+id, err, codes.NotFound)
		}
		_, err = a.users().GetUser(as(botTok), &pb.GetUserRequest{UserId: ownerID})
		wantCode(t, "a machine user getting its owner", err, codes.NotFound)
		if _, err := a.users().GetUser(as(adminTok), &pb.GetUserRequest{UserId: otherBot}); err != nil {
			t.Errorf("admin getting another's machine user: %s", describe(err))
		}

		listAll := func(bearer string, req *pb.ListUsersRequest) []string {
			t.Helper()
			var ids []string
			for {
				page, err := a.users().ListUsers(as(bearer), req)
				if err != nil {
					t.Fatalf("ListUsers: %s", describe(err))
				}
				if req.PageSize != 0 && len(page.GetUsers()) > int(req.PageSize) {
					t.Errorf("a page of %d for page size %d", len(page.GetUsers()), req.PageSize)
				}
				for _, u := range page.GetUsers() {
					ids = append(ids, u.GetId())
				}
				if page.GetNextPageToken() == "" {
					return ids
				}
				req.PageToken = page.GetNextPageToken()
			}
		}
		// A non-admin lists itself and its machine users, oldest first, in pages.
		if got, want := listAll(ownerTok, &pb.ListUsersRequest{PageSize: 2}), append([]string{ownerID}, botIDs...); !slices.Equal(got, want) {
			t.Errorf("owner's listing in pages of 2: %v, want %v", got, want)
		}
		if got := listAll(botTok, &pb.ListUsersRequest{}); !slices.Equal(got, botIDs[:1]) {
			t.Errorf("a machine user's listing: %v, want only itself", got)
		}
		// An admin lists everyone; the username filter finds one, ignoring case.
		all := listAll(adminTok, &pb.ListUsersRequest{PageSize: 3})
		for _, id := range append([]string{ownerID, otherID, otherBot}, botIDs...) {
			if !slices.Contains(all, id) {
				t.Errorf("admin's listing lacks %s", id)
			}
		}
		if len(all) != len(slices.Compact(slices.Sorted(slices.Values(all)))) {
			t.Errorf("admin's listing repeats users: %v", all)
		}
		if got := listAll(adminTok, &pb.ListUsersRequest{Username: strings.ToUpper(p + "otherbot")}); !slices.Equal(got, []string{otherBot}) {
			t.Errorf("admin's listing by username: %v, want %s", got, otherBot)
		}
		if got := listAll(ownerTok, &pb.ListUsersRequest{Username: p + "otherbot"}); len(got) != 0 {
			t.Errorf("another's machine user by username: %v, want none", got)
		}
		// Page tokens are bound to their query.
		first, err := a.users().ListUsers(as(ownerTok), &pb.ListUsersRequest{PageSize: 2})
		if err != nil {
			t.Fatal(describe(err))
		}
		for name, req := range map[string]*pb.ListUsersRequest{
			"with another username filter": {PageToken: first.GetNextPageToken(), Username: p + "b1"},
			"forged":                       {PageToken: "forged"},
		} {
			_, err := a.users().ListUsers(as(ownerTok), req)
			wantCode(t, "a page token "+name, err, codes.InvalidArgument)
		}
		_, err = a.users().ListUsers(as(adminTok), &pb.ListUsersRequest{PageToken: first.GetNextPageToken()})
		wantCode(t, "a page token used by another caller", err, codes.InvalidArgument)
	})
}

func TestDeleteUser(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		a := rpc{t, c}
		p := c.name + "-"
		s.mustUser(t, p+"admin", "admin")
		ownerID := s.mustUser(t, p+"owner", "human")
		s.mustUser(t, p+"other", "human")
		botID := s.mustUser(t, p+"bot", "machine:"+p+"owner")
		adminTok, ownerTok, otherTok := a.login(p+"admin"), a.login(p+"owner"), a.login(p+"other")
		botTok := a.mustCreate(ownerTok, &pb.CreateTokenRequest{UserId: botID}).GetToken()
		botAccess, err := a.exchange("", botTok)
		if err != nil {
			t.Fatal(describe(err))
		}

		// Nobody deletes what it may not see, nor itself.
		wantCode(t, "a human deleting another human", deleteUser(a, otherTok, ownerID), codes.NotFound)
		wantCode(t, "a human deleting another's machine user", deleteUser(a, otherTok, botID), codes.NotFound)
		wantCode(t, "a machine user deleting its owner", deleteUser(a, botTok, ownerID), codes.NotFound)
		wantCode(t, "deleting yourself", deleteUser(a, ownerTok, "me"), codes.InvalidArgument)

		// The owner deletes its machine user: at once, its tokens and their
		// access tokens stop working.
		if err := deleteUser(a, ownerTok, botID); err != nil {
			t.Fatalf("owner deleting its machine user: %s", describe(err))
		}
		_, err = a.list(botTok, &pb.ListTokensRequest{})
		wantCode(t, "the deleted machine user's API token", err, codes.Unauthenticated)
		_, err = a.list(botAccess.GetAccessToken(), &pb.ListTokensRequest{})
		wantCode(t, "the deleted machine user's access token", err, codes.Unauthenticated)
		_, err = a.exchange("", botTok)
		wantCode(t, "exchanging the deleted machine user's token", err, codes.Unauthenticated)
		wantCode(t, "deleting it again", deleteUser(a, ownerTok, botID), codes.NotFound)

		// An admin deletes a human: its machine users and all their tokens go too.
		bot2 := a.mustCreateUser(ownerTok, &pb.CreateUserRequest{Username: p + "bot2", Machine: true})
		bot2Tok := a.mustCreate(ownerTok, &pb.CreateTokenRequest{UserId: bot2.GetId()}).GetToken()
		if err := deleteUser(a, adminTok, ownerID); err != nil {
			t.Fatalf("admin deleting a human: %s", describe(err))
		}
		for name, tok := range map[string]string{"the deleted human's": ownerTok, "its machine user's": bot2Tok} {
			_, err := a.list(tok, &pb.ListTokensRequest{})
			wantCode(t, name+" token", err, codes.Unauthenticated)
		}
		_, err = a.users().GetUser(as(adminTok), &pb.GetUserRequest{UserId: bot2.GetId()})
		wantCode(t, "the deleted human's machine user", err, codes.NotFound)
		if _, err := a.list(otherTok, &pb.ListTokensRequest{}); err != nil {
			t.Errorf("an unrelated user after the deletes: %s", describe(err))
		}
	})
}

func deleteUser(a rpc, bearer, id string) error {
	_, err := a.users().DeleteUser(as(bearer), &pb.DeleteUserRequest{UserId: id})
	return err
}

func TestChangePassword(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		a := rpc{t, c}
		p := c.name + "-"
		s.mustUser(t, p+"admin", "admin")
		s.mustUser(t, p+"owner", "human")
		otherID := s.mustUser(t, p+"other", "human")
		botID := s.mustUser(t, p+"bot", "machine:"+p+"owner")
		adminTok, ownerTok, otherTok := a.login(p+"admin"), a.login(p+"owner"), a.login(p+"other")
		change := func(bearer string, req *pb.ChangePasswordRequest) error {
			_, err := a.users().ChangePassword(as(bearer), req)
			return err
		}
		const newPassword = "a new and longer password"

		wantCode(t, "your own without the old password", change(ownerTok, &pb.ChangePasswordRequest{UserId: "me", NewPassword: newPassword}), codes.InvalidArgument)
		wantCode(t, "your own with a wrong old password", change(ownerTok, &pb.ChangePasswordRequest{UserId: "me", OldPassword: "not it at all", NewPassword: newPassword}), codes.PermissionDenied)
		wantCode(t, "a short new password", change(ownerTok, &pb.ChangePasswordRequest{UserId: "me", OldPassword: password, NewPassword: "short"}), codes.InvalidArgument)
		wantCode(t, "another human's, not as an admin", change(ownerTok, &pb.ChangePasswordRequest{UserId: otherID, NewPassword: newPassword}), codes.NotFound)
		wantCode(t, "a machine user's", change(ownerTok, &pb.ChangePasswordRequest{UserId: botID, NewPassword: newPassword}), codes.InvalidArgument)

		if err := change(ownerTok, &pb.ChangePasswordRequest{UserId: "me", OldPassword: password, NewPassword: newPassword}); err != nil {
			t.Fatalf("changing your own: %s", describe(err))
		}
		_, err := a.create("", &pb.CreateTokenRequest{Username: p + "owner", Password: password})
		wantCode(t, "the old password after the change", err, codes.Unauthenticated)
		if _, err := a.create("", &pb.CreateTokenRequest{Username: p + "owner", Password: newPassword}); err != nil {
			t.Errorf("the new password: %s", describe(err))
		}
		if _, err := a.list(ownerTok, &pb.ListTokensRequest{}); err != nil {
			t.Errorf("an API token made before the change: %s (tokens are left as they are)", describe(err))
		}

		// An admin sets anyone's, without the old one.
		if err := change(adminTok, &pb.ChangePasswordRequest{UserId: otherID, NewPassword: newPassword}); err != nil {
			t.Fatalf("an admin setting another's: %s", describe(err))
		}
		if _, err := a.create("", &pb.CreateTokenRequest{Username: p + "other", Password: newPassword}); err != nil {
			t.Errorf("the password an admin set: %s", describe(err))
		}
		if _, err := a.list(otherTok, &pb.ListTokensRequest{}); err != nil {
			t.Errorf("the user's API token after an admin's change: %s", describe(err))
		}
	})
}

// Quotas: machine users per owner and live tokens per user, RESOURCE_EXHAUSTED
// (HTTP 429) naming the limit; deleting frees the place.
func TestQuotas(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver),
			"TOKENSERVICE_MAX_MACHINE_USERS_PER_OWNER", "2", "TOKENSERVICE_MAX_TOKENS_PER_USER", "3")
		for _, c := range s.callers(t) {
			t.Run(c.name, func(t *testing.T) {
				a := rpc{t, c}
				p := c.name + "-"
				s.mustUser(t, p+"owner", "human")
				tok := a.login(p + "owner") // live token 1 of 3
				var bots []*pb.User
				for _, n := range []string{"b1", "b2"} {
					bots = append(bots, a.mustCreateUser(tok, &pb.CreateUserRequest{Username: p + n, Machine: true}))
				}
				_, err := a.users().CreateUser(as(tok), &pb.CreateUserRequest{Username: p + "b3", Machine: true})
				wantCode(t, "a third machine user", err, codes.ResourceExhausted)
				if _, reason := errorDetails(err); reason != "QUOTA_EXCEEDED" {
					t.Errorf("a third machine user: reason %q, want QUOTA_EXCEEDED", reason)
				}
				if msg := status.Convert(err).Message(); !strings.Contains(msg, "--max-machine-users-per-owner") || !strings.Contains(msg, "2") {
					t.Errorf("the refusal %q does not name the limit", msg)
				}
				if err := deleteUser(a, tok, bots[0].GetId()); err != nil {
					t.Fatal(describe(err))
				}
				a.mustCreateUser(tok, &pb.CreateUserRequest{Username: p + "b3", Machine: true})

				second := a.mustCreate(tok, &pb.CreateTokenRequest{}).GetToken()
				a.mustCreate(tok, &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(1500 * time.Millisecond))}).GetToken()
				_, err = a.create(tok, &pb.CreateTokenRequest{})
				wantCode(t, "a fourth live token", err, codes.ResourceExhausted)
				if msg := status.Convert(err).Message(); !strings.Contains(msg, "--max-tokens-per-user") || !strings.Contains(msg, "3") {
					t.Errorf("the refusal %q does not name the limit", msg)
				}
				// Machine users have a quota of their own.
				for range 3 {
					a.mustCreate(tok, &pb.CreateTokenRequest{UserId: bots[1].GetId()})
				}
				// A deleted token frees its place, and so does an expired one.
				if err := a.del(tok, idOf(second)); err != nil {
					t.Fatal(describe(err))
				}
				a.mustCreate(tok, &pb.CreateTokenRequest{})
				time.Sleep(1600 * time.Millisecond)
				a.mustCreate(tok, &pb.CreateTokenRequest{})
			})
		}
	})
}
