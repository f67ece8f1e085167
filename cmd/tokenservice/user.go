package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
)

func userCommand(e *env) *cobra.Command {
	cmd := group("user", "Create, list, show and delete users and machine users; change passwords", groupClient,
		userCreateMachineCommand(e), userCreateCommand(e), userListCommand(e), userGetCommand(e), userDeleteCommand(e), userSetPasswordCommand(e))
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
		return printUser(e, asJSON, resp.GetUser())
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the REST API answers")
	return cmd
}

func printUser(e *env, asJSON bool, u *pb.User) error {
	if asJSON {
		return printJSON(e.stdout, false, u)
	}
	return printUsers(e.stdout, []*pb.User{u})
}

func userCreateCommand(e *env) *cobra.Command {
	var admin, asJSON bool
	cmd := withClient(e, &cobra.Command{
		Use:   "create NAME [--admin]",
		Short: "Create a human user (admins only); the password comes from the terminal or stdin",
		Args:  args("NAME"),
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		password, err := newPrompter(e).newPassword("Password for " + argv[0])
		if err != nil {
			return err
		}
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := c.users.CreateUser(ctx, &pb.CreateUserRequest{Username: argv[0], Password: password, Admin: admin})
		if st := status.Convert(err); st.Code() == codes.PermissionDenied && strings.HasPrefix(st.Message(), "only an admin") {
			// The server's words are the API's; say it in the CLI's.
			return &exitErr{code: exitCredentials, err: fmt.Errorf("only an admin may create human users; for a machine user: tokenservice user create-machine %s", argv[0])}
		}
		if err != nil {
			return c.fail(err)
		}
		return printUser(e, asJSON, resp.GetUser())
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
			return printJSON(e.stdout, true, all...)
		}
		return printUsers(e.stdout, all)
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, as the REST API answers")
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
		return printUser(e, asJSON, resp.GetUser())
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
		me, err := c.userID(cmd.Context(), "me")
		if err != nil {
			return err
		}
		req := &pb.ChangePasswordRequest{UserId: me}
		if len(argv) == 1 {
			if req.UserId, err = c.userID(cmd.Context(), argv[0]); err != nil {
				return err
			}
		}
		p := newPrompter(e)
		if req.UserId == me {
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
