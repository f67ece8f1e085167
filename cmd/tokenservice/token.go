package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
)

func tokenCommand(e *env) *cobra.Command {
	cmd := group("token", "Create, list, show, delete, rotate and exchange API tokens", groupClient,
		tokenCreateCommand(e), tokenListCommand(e), tokenGetCommand(e), tokenDeleteCommand(e), tokenRotateCommand(e), tokenExchangeCommand(e))
	cmd.Long = "Create, list, show, delete, rotate and exchange API tokens: yours, your machine users' (--user), or anyone's as an admin."
	return cmd
}

// withClient adds the client flags to cmd and gives run a connected client.
func withClient(e *env, cmd *cobra.Command, run func(cmd *cobra.Command, c *client, args []string) error) *cobra.Command {
	o := clientFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		byPassword, _ := cmd.Flags().GetBool("password") // only where passwordFlag added it
		c, err := o.connect(e, !byPassword)
		if err != nil {
			return err
		}
		defer c.close()
		if byPassword {
			p := newPrompter(e)
			username := c.username // the login's, if it is to this server
			if username == "" {
				if username, err = p.line("Username"); err != nil {
					return err
				}
			}
			password, err := p.password("Password for " + safe(username))
			if err != nil {
				return err
			}
			c.usePassword(username, password)
		}
		return run(cmd, c, args)
	}
	return cmd
}

// passwordFlag lets a command authenticate with the user's password (asked
// for, or read from stdin: the username, unless logged in to this server,
// then the password) instead of a token.
func passwordFlag(cmd *cobra.Command) *cobra.Command {
	cmd.Flags().Bool("password", false, "authenticate with your password (asked for; the username too, unless logged in) instead of your token: for a token that outlives, or has scopes beyond, the one you are logged in with")
	return cmd
}

func tokenCreateCommand(e *env) *cobra.Command {
	var note, expiresIn, user string
	var scopes []string
	var asJSON bool
	cmd := withClient(e, &cobra.Command{
		Use:   "create",
		Short: "Create an API token and print it, once, on stdout",
		Example: `  tokenservice token create --note "laptop" --expires-in 30d
  CI_TOKEN=$(tokenservice token create --user ci-bot --note "CI pipeline" --scope orders:read)`,
		Args: args(),
	}, func(cmd *cobra.Command, c *client, _ []string) error {
		lifetime, err := parseLifetime("--expires-in", expiresIn)
		if err != nil {
			return usageError(cmd, "%v", err)
		}
		scopes, err := scopeFlag(cmd, scopes)
		if err != nil {
			return err
		}
		userID, err := c.userID(cmd.Context(), user)
		if err != nil {
			return err
		}
		req := &pb.CreateTokenRequest{Note: note, UserId: userID, Scopes: scopes}
		if lifetime > 0 {
			req.ExpireTime = timestamppb.New(time.Now().Add(lifetime))
		}
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := c.tokens.CreateToken(ctx, req)
		if err != nil {
			return c.fail(err)
		}
		if asJSON {
			return printJSON(e.stdout, resp)
		}
		md := resp.GetMetadata()
		fmt.Fprintf(e.stderr, "Created token %s for user %s, scopes %s, expires %s. It is shown this once:\n", safe(md.GetId()), safe(md.GetUserId()),
			safeAll(md.GetScopes(), " "), when(md.GetExpireTime(), "never"))
		_, err = fmt.Fprintln(e.stdout, resp.GetToken())
		return err
	})
	cmd.Flags().StringVar(&note, "note", "", "a note to tell the token by, at most 256 characters")
	cmd.Flags().StringVar(&expiresIn, "expires-in", "0", "lifetime: 30d, 12h, 90m, ...; 0 for none (or the server's maximum, or the expiry of the token you use)")
	cmd.Flags().StringSliceVar(&scopes, "scope", nil, "a scope the token gets (repeat, or separate with commas); default: all of the token you use")
	cmd.Flags().StringVar(&user, "user", "", "the token's user, by username: one of your machine users (anyone, for an admin); default you")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the token and its metadata as JSON, as the REST API answers")
	return cmd
}

func tokenListCommand(e *env) *cobra.Command {
	var user, expiring string
	var asJSON bool
	cmd := withClient(e, &cobra.Command{
		Use:   "list",
		Short: "List active API tokens (not deleted, not expired), oldest first",
		Args:  args(),
	}, func(cmd *cobra.Command, c *client, _ []string) error {
		var before *timestamppb.Timestamp
		if expiring != "" {
			within, err := parseLifetime("--expiring-within", expiring)
			if err != nil || within <= 0 {
				return usageError(cmd, "--expiring-within %q: give a duration such as 7d or 12h", expiring)
			}
			before = timestamppb.New(time.Now().Add(within))
		}
		userID, err := c.userID(cmd.Context(), user)
		if err != nil {
			return err
		}
		all, err := allPages(func(page string) ([]*pb.Token, string, error) {
			ctx, cancel := c.call(cmd.Context())
			defer cancel()
			resp, err := c.tokens.ListTokens(ctx, &pb.ListTokensRequest{UserId: userID, PageSize: pagetoken.MaxPageSize, PageToken: page,
				ExpireBefore: before})
			return resp.GetTokens(), resp.GetNextPageToken(), c.fail(err)
		})
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(e.stdout, &pb.ListTokensResponse{Tokens: all})
		}
		return printTokens(e.stdout, all)
	})
	cmd.Flags().StringVar(&user, "user", "", "whose tokens, by username: yours by default, or one of your machine users'")
	cmd.Flags().StringVar(&expiring, "expiring-within", "", "only tokens that expire within this time: 7d, 12h, ...")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the REST API answers (every page in one, nextPageToken empty)")
	return cmd
}

func tokenGetCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := withClient(e, &cobra.Command{
		Use:   "get ID",
		Short: "Show an API token's metadata (never its secret)",
		Args:  tokenIDArg,
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := c.tokens.GetToken(ctx, &pb.GetTokenRequest{TokenId: argv[0]})
		if err != nil {
			return c.fail(err)
		}
		if asJSON {
			return printJSON(e.stdout, resp)
		}
		return printTokens(e.stdout, []*pb.Token{resp.GetToken()})
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the REST API answers")
	return cmd
}

func tokenDeleteCommand(e *env) *cobra.Command {
	return passwordFlag(withClient(e, &cobra.Command{
		Use:   "delete ID",
		Short: "Delete an API token: it, and access tokens minted from it, stop working here at once",
		Args:  tokenIDArg,
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		if _, err := c.tokens.DeleteToken(ctx, &pb.DeleteTokenRequest{TokenId: argv[0]}); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(e.stdout, "deleted token %s\n", argv[0])
		return nil
	}))
}

func tokenRotateCommand(e *env) *cobra.Command {
	var grace string
	var asJSON bool
	cmd := withClient(e, &cobra.Command{
		Use:   "rotate ID",
		Short: "Give an API token a new secret, printed once on stdout; the old one stops working",
		Long: `Give an API token a new secret: the same ID, note, scopes, owner and expiry. The new
plaintext is printed this once on stdout. The old secret is refused at once, or after
--grace-period (at most the server's --max-rotation-grace-period, 24h at most), so the
places that use it can be updated first.`,
		Example: `  NEW=$(tokenservice token rotate 1VZZqwNuxHhj6QE7 --grace-period 1h)`,
		Args:    tokenIDArg,
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		period, err := parseLifetime("--grace-period", grace)
		if err != nil {
			return usageError(cmd, "%v", err)
		}
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := c.tokens.RotateToken(ctx, &pb.RotateTokenRequest{TokenId: argv[0], GracePeriod: durationpb.New(period)})
		if err != nil {
			return c.fail(err)
		}
		if asJSON {
			return printJSON(e.stdout, resp)
		}
		old := "is refused from now on"
		if period > 0 {
			old = "works until " + time.Now().Add(period).Local().Format(time.RFC3339)
		}
		fmt.Fprintf(e.stderr, "Rotated token %s: the old secret %s. The new one is shown this once:\n", argv[0], old)
		if _, err = fmt.Fprintln(e.stdout, resp.GetToken()); err != nil {
			return err
		}
		return keepLogin(e, c, argv[0], resp.GetToken())
	})
	passwordFlag(cmd)
	cmd.Flags().StringVar(&grace, "grace-period", "0", "how long the old secret keeps working: 1h, 30m, ...; 0: refused at once")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the new token and its metadata as JSON, as the REST API answers")
	return cmd
}

func tokenExchangeCommand(e *env) *cobra.Command {
	var scopes []string
	cmd := withClient(e, &cobra.Command{
		Use:   "exchange",
		Short: "Exchange your API token, or a CI job's or pod's OIDC token, for a short-lived access token, printed alone on stdout",
		Long: `Exchange your API token (TOKENSERVICE_TOKEN, else your login's) for a short-lived
signed access token, printed alone on stdout, for

  curl -H "Authorization: Bearer $(tokenservice token exchange)" https://api.example.com/

A machine without an API token exchanges its platform's OIDC token instead (RFC 8693
token exchange at <issuer>/oauth2/token, over HTTP(S)), for the machine user that
trusts it (tokenservice user trust add): --github-actions asks GitHub for the job's
token, --subject-token-env reads it from a variable (GitLab CI's id_tokens:),
--subject-token-file from a file (a Kubernetes projected service account token).
Give one of them, and the server's issuer URL (--issuer or TOKENSERVICE_ISSUER).`,
		Example: `  tokenservice token exchange --github-actions --issuer https://tokens.example.com
  tokenservice token exchange --subject-token-env ID_TOKEN --issuer https://tokens.example.com
  tokenservice token exchange --subject-token-file /var/run/secrets/tokens/tokenservice --issuer https://tokens.example.com`,
		Args: args(),
	}, func(cmd *cobra.Command, c *client, _ []string) error {
		scopes, err := scopeFlag(cmd, scopes)
		if err != nil {
			return err
		}
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := c.tokens.GetAccessToken(ctx, &pb.GetAccessTokenRequest{Token: c.token, Scopes: scopes})
		if err != nil {
			return c.fail(err)
		}
		_, err = fmt.Fprintln(e.stdout, resp.GetAccessToken())
		return err
	})
	cmd.Flags().StringSliceVar(&scopes, "scope", nil, "a scope the access token gets (repeat, or separate with commas); default: all of the API token's but tokens:write and users:write, which it gets only when named "+
		"(with a platform's token: those of the machine user's trust)")
	// With a platform's token the command neither needs an API token nor
	// dials gRPC: it posts to the token endpoint instead.
	fed := subjectExchangeFlags(cmd.Flags())
	exchangeAPIToken := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, argv []string) error {
		n, err := fed.given(cmd)
		if err != nil {
			return err
		}
		if n == 0 {
			if err := fed.unused(cmd); err != nil {
				return err
			}
			return exchangeAPIToken(cmd, argv)
		}
		scopes, err := scopeFlag(cmd, scopes)
		if err != nil {
			return err
		}
		return fed.exchange(cmd, e, scopes)
	}
	return cmd
}

// tokenIDArg takes one token ID, refusing a whole API token: the plaintext
// is a secret, which a command line keeps in shell history and shows in ps,
// and which the server would be sent as a path (and perhaps logged). It is
// not echoed back either.
func tokenIDArg(cmd *cobra.Command, argv []string) error {
	if err := args("ID")(cmd, argv); err != nil {
		return err
	}
	if !strings.HasPrefix(argv[0], auth.TokenPrefix) {
		return nil
	}
	id := "characters 5-20 of the token"
	if t, ok := auth.ParseAPIToken(argv[0]); ok {
		id += ": " + t.ID
	}
	return usageError(cmd, "that is a whole API token, a secret, not its ID: give the ID (%s); nothing was sent, "+
		"and if the token was typed where others can see it (shell history, a shared screen), rotate it", id)
}

// scopeFlag returns the --scope values, each split on spaces too (as OAuth
// writes scope lists); a --scope given with nothing in it is a usage error,
// not "every scope".
func scopeFlag(cmd *cobra.Command, values []string) ([]string, error) {
	var scopes []string
	for _, v := range values {
		scopes = append(scopes, strings.Fields(v)...)
	}
	if cmd.Flags().Changed("scope") && len(scopes) == 0 {
		return nil, usageError(cmd, "--scope is empty: name at least one scope, or leave the flag out for all of the token you use")
	}
	return scopes, nil
}

// keepLogin saves the new plaintext of a rotated token when it is the
// login's own, so the next command still works.
func keepLogin(e *env, c *client, id, plaintext string) error {
	used, ok := auth.ParseAPIToken(c.token)
	if !ok || used.ID != id || e.getenv(tokenVariable) != "" {
		return nil
	}
	path, err := credentialsPath(e.getenv)
	if err != nil {
		return err
	}
	saved, err := loadCredentials(path)
	if err != nil || saved.Token != c.token {
		return nil // not the login's token
	}
	saved.Token = plaintext
	if err := saveCredentials(path, saved); err != nil {
		return fmt.Errorf("saving the login's new secret: %w", err)
	}
	fmt.Fprintln(e.stderr, "That is your login's token: the login now uses the new secret.")
	return nil
}
