package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
)

func userCommand(e *env) *cobra.Command {
	cmd := group("user", "Create, list, show and delete users and machine users; change passwords", groupClient,
		userCreateMachineCommand(e), userCreateCommand(e), userListCommand(e), userGetCommand(e), userDeleteCommand(e), userSetPasswordCommand(e), userTrustCommand(e))
	cmd.Long = `Create, list, show and delete users through the API. Anyone creates machine users, which
they own; only an admin creates human users (server refusal: exit status 3).`
	return cmd
}

func userCreateMachineCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := withClient(e, &cobra.Command{
		Use:   "create-machine NAME",
		Short: "Create a machine user you own; then give it tokens with token create --user NAME",
		Args:  args("NAME"),
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := c.users.CreateUser(ctx, &pb.CreateUserRequest{Username: argv[0], Machine: true})
		if err != nil {
			return c.fail(err)
		}
		return printUser(e, asJSON, resp)
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the REST API answers")
	return cmd
}

// printUser prints the user a response holds: the response as JSON, as
// the REST API answers, or a table row.
func printUser(e *env, asJSON bool, resp interface {
	proto.Message
	GetUser() *pb.User
}) error {
	if asJSON {
		return printJSON(e.stdout, resp)
	}
	return printUsers(e.stdout, []*pb.User{resp.GetUser()})
}

func userCreateCommand(e *env) *cobra.Command {
	var admin, asJSON bool
	cmd := withClient(e, &cobra.Command{
		Use:   "create NAME [--admin]",
		Short: "Create a human user (admins only); the password comes from the terminal or stdin",
		Args:  args("NAME"),
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		notAdmin := &exitErr{code: exitCredentials, err: fmt.Errorf("only an admin may create human users; for a machine user: tokenservice user create-machine %s", safe(argv[0]))}
		// Asked before the password is: no one types a password for a
		// command bound to fail. The server checks again.
		me, err := c.user(cmd.Context(), "me")
		if err != nil {
			return err
		}
		if !me.GetAdmin() {
			return notAdmin
		}
		password, err := newPrompter(e).newPassword("Password for " + argv[0])
		if err != nil {
			return err
		}
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := c.users.CreateUser(ctx, &pb.CreateUserRequest{Username: argv[0], Password: password, Admin: admin})
		if st := status.Convert(err); st.Code() == codes.PermissionDenied && strings.HasPrefix(st.Message(), "only an admin") {
			// The server's words are the API's; say it in the CLI's.
			return notAdmin
		}
		if err != nil {
			return c.fail(err)
		}
		return printUser(e, asJSON, resp)
	})
	// Never from the environment: an exported variable must not make every new user an admin.
	cmd.Flags().BoolVar(&admin, "admin", false, "the new user is an admin (may act for any user)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the REST API answers")
	return cmd
}

func userListCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := withClient(e, &cobra.Command{
		Use:   "list",
		Short: "List yourself and your machine users (everyone, for an admin)",
		Args:  args(),
	}, func(cmd *cobra.Command, c *client, _ []string) error {
		all, err := allPages(func(page string) ([]*pb.User, string, error) {
			ctx, cancel := c.call(cmd.Context())
			defer cancel()
			resp, err := c.users.ListUsers(ctx, &pb.ListUsersRequest{PageSize: pagetoken.MaxPageSize, PageToken: page})
			return resp.GetUsers(), resp.GetNextPageToken(), c.fail(err)
		})
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(e.stdout, &pb.ListUsersResponse{Users: all})
		}
		return printUsers(e.stdout, all)
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the REST API answers (every page in one, nextPageToken empty)")
	return cmd
}

func userGetCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := withClient(e, &cobra.Command{
		Use:   "get NAME",
		Short: "Show a user you may see, by username",
		Args:  args("NAME"),
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		id, err := c.userID(cmd.Context(), argv[0])
		if err != nil {
			return err
		}
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := c.users.GetUser(ctx, &pb.GetUserRequest{UserId: id})
		if err != nil {
			return c.fail(err)
		}
		return printUser(e, asJSON, resp)
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the REST API answers")
	return cmd
}

func userDeleteCommand(e *env) *cobra.Command {
	return withClient(e, &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete one of your machine users (anyone but yourself, for an admin), its machine users and all their tokens",
		Args:  args("NAME"),
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		u, err := c.user(cmd.Context(), argv[0])
		if err != nil {
			return err
		}
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		if _, err := c.users.DeleteUser(ctx, &pb.DeleteUserRequest{UserId: u.GetId()}); err != nil {
			return c.fail(err)
		}
		if u.GetMachine() {
			fmt.Fprintf(e.stdout, "deleted machine user %s and its tokens\n", safe(u.GetUsername()))
		} else {
			fmt.Fprintf(e.stdout, "deleted user %s, its machine users and all their tokens\n", safe(u.GetUsername()))
		}
		return nil
	})
}

func userSetPasswordCommand(e *env) *cobra.Command {
	return withClient(e, &cobra.Command{
		Use:   "set-password [NAME]",
		Short: "Change your password (asks the old one), or as an admin another user's",
		Long: `Change your password: asks the current one, then the new one (twice). As an admin,
set another user's (NAME): asks only the new one. From stdin instead of a terminal,
one password a line in that order. API tokens are left as they are.`,
		Args: args("NAME?"),
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		// Whether the change may be made is checked before a password is
		// asked: only a human user has one, and only an admin sets
		// another's. The server checks again.
		me, err := c.user(cmd.Context(), "me")
		if err != nil {
			return err
		}
		target := me
		if len(argv) == 1 {
			if target, err = c.user(cmd.Context(), argv[0]); err != nil {
				return err
			}
		}
		switch {
		case target.GetMachine():
			return fmt.Errorf("%s is a machine user: machine users have no password, they authenticate with API tokens", safe(target.GetUsername()))
		case target.GetId() != me.GetId() && !me.GetAdmin():
			return &exitErr{code: exitCredentials, err: fmt.Errorf("only an admin may set another user's password")}
		}
		req := &pb.ChangePasswordRequest{UserId: target.GetId()}
		p := newPrompter(e)
		if req.UserId == me.GetId() {
			old, err := p.password("Current password")
			if err != nil {
				return err
			}
			req.OldPassword = old
		}
		password, err := p.newPassword("New password")
		if err != nil {
			return err
		}
		req.NewPassword = password
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		if _, err := c.users.ChangePassword(ctx, req); err != nil {
			return c.fail(err)
		}
		fmt.Fprintln(e.stdout, "password changed; API tokens are left as they are")
		return nil
	})
}
