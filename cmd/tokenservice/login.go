package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/auth"
)

func loginCommand(e *env) *cobra.Command {
	var o *clientOptions
	var expiresIn, consoleFlag string
	var sso, device bool
	cmd := &cobra.Command{
		Use:   "login [USERNAME]",
		Short: "Log in with a username and password, or --sso through the identity provider; keeps an API token for the other commands",
		Long: `Log in with a username and password (asked on the terminal, or read as lines from
stdin; never a flag). The API token this creates is kept, with the server's address, in
$XDG_CONFIG_HOME/tokenservice/credentials.json (~/.config/...), mode 0600; a previous
login's token is deleted. Scripts can instead set TOKENSERVICE_TOKEN.

With --sso, sign in through the server's console instead (and so through the identity
provider it uses): the browser opens on this machine and comes back to the CLI on a
loopback address (RFC 8252); with --device, or where there is no browser to open, the CLI
prints a URL and a code to enter on any device (RFC 8628). --url is the server's HTTP
address (default: https://HOST of a TLS --addr, else http://HOST:8080).`,
		GroupID: groupClient,
		Args:    args("USERNAME?"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			lifetime, err := parseLifetime("--expires-in", expiresIn)
			if err != nil {
				return usageError(cmd, "%v", err)
			}
			c, err := o.connect(e, false)
			if err != nil {
				return err
			}
			defer c.close()
			if sso || device {
				return loginSSO(cmd, e, o, c, consoleFlag, device, lifetime)
			}
			p := newPrompter(e)
			username := ""
			if len(argv) == 1 {
				username = argv[0]
			} else if username, err = p.line("Username"); err != nil {
				return err
			}
			password, err := p.password("Password")
			if err != nil {
				return err
			}
			host, _ := os.Hostname()
			req := &pb.CreateTokenRequest{Username: username, Password: password, Note: "tokenservice login on " + host}
			if lifetime > 0 {
				req.ExpireTime = timestamppb.New(time.Now().Add(lifetime))
			}
			c.token = "" // the password authenticates: a bearer as well would be refused
			ctx, cancel := c.call(cmd.Context())
			defer cancel()
			resp, err := c.tokens.CreateToken(ctx, req)
			if status.Code(err) == codes.Unauthenticated {
				return &exitErr{code: exitCredentials, err: errors.New("wrong username or password")}
			}
			if err != nil {
				return c.fail(err)
			}
			path, err := credentialsPath(e.getenv)
			if err != nil {
				return err
			}
			if err := saveLogin(cmd, c, path, username, resp.GetToken()); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Logged in to %s as %s (token %s, expires %s)\n", c.addr, safe(username),
				safe(resp.GetMetadata().GetId()), when(resp.GetMetadata().GetExpireTime(), "never"))
			return nil
		},
	}
	o = clientFlags(cmd.Flags())
	cmd.Flags().StringVar(&expiresIn, "expires-in", "30d", "the login token's lifetime: 30d, 12h, ...; 0 for none")
	cmd.Flags().BoolVar(&sso, "sso", false, "sign in through the server's console and its identity provider, in a browser")
	cmd.Flags().BoolVar(&device, "device", false, "with --sso: sign in on another device (a URL and a code), not a browser here")
	cmd.Flags().StringVar(&consoleFlag, "url", "", "with --sso: the server's HTTP address (default: https://HOST of a TLS --addr, else http://HOST:8080)")
	fromEnv(cmd.Flags(), "url")
	return cmd
}

// saveLogin saves a login's token for the other commands, then revokes the
// previous login's (best effort: it is no longer kept anywhere).
func saveLogin(cmd *cobra.Command, c *client, path, username, token string) error {
	previous, _ := readCredentials(path) // even one others could read: its token is revoked below
	if err := saveCredentials(path, &savedCredentials{Addr: c.addr, TLS: c.tls, Username: username, Token: token}); err != nil {
		return err
	}
	if target, _, _ := parseAddr(c.addr); previous.holdsTokenFor(destination{addr: c.addr, target: target, tls: c.tls}) {
		revoke(cmd, c, previous.Token)
	}
	return nil
}

// loginSSO is login --sso: the token comes from the server's console.
func loginSSO(cmd *cobra.Command, e *env, o *clientOptions, c *client, consoleFlag string, device bool, lifetime time.Duration) error {
	base, err := consoleURL(consoleFlag, c.addr, c.tls)
	if err != nil {
		return usageError(cmd, "%v", err)
	}
	if u, _ := url.Parse(base); u.Scheme != "https" && !isLoopback(net.JoinHostPort(u.Hostname(), "0")) && !o.insecure {
		return usageError(cmd, "--url %s is plaintext to another machine: use https://, or --insecure on a network you trust", base)
	}
	hc, err := httpClient(o.caFile)
	if err != nil {
		return err
	}
	hc.Timeout = 0 // the sign-in's own deadline bounds it; each request the context's
	token, username, err := ssoLogin(cmd.Context(), e, hc, base, device || noBrowser(e), lifetime)
	if err != nil {
		return err
	}
	path, err := credentialsPath(e.getenv)
	if err != nil {
		return err
	}
	if err := saveLogin(cmd, c, path, username, token); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Logged in to %s as %s\n", c.addr, safe(username))
	return nil
}

// revoke deletes an API token with itself as the bearer; failures are
// ignored by login, reported to logout. The expiry of a token being
// deleted is not worth a warning.
func revoke(cmd *cobra.Command, c *client, token string) error {
	parsed, ok := auth.ParseAPIToken(token)
	if !ok {
		return status.Error(codes.Unauthenticated, "not an API token")
	}
	c.warned = true
	old := *c
	old.token = token
	ctx, cancel := old.call(cmd.Context())
	defer cancel()
	_, err := c.tokens.DeleteToken(ctx, &pb.DeleteTokenRequest{TokenId: parsed.ID})
	return err
}

func logoutCommand(e *env) *cobra.Command {
	var o *clientOptions
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Delete the login's API token on the server, then the local copy",
		Long: `Delete the login's API token on the server, then the credentials file. The token goes
only where every command would send it: the address it was saved for (the file's, unless
--addr or $TOKENSERVICE_ADDR names the same server), over TLS if the login was. If they
name another server, or the file is readable or writable by others and no --addr says where the
login is, nothing is sent and the file is kept: run logout again with the login's --addr.`,
		GroupID: groupClient,
		Args:    args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := credentialsPath(e.getenv)
			if err != nil {
				return err
			}
			// Read even a file others could read: all the more reason to
			// revoke its token, but at an address the user names.
			saved, err := readCredentials(path)
			if errors.Is(err, os.ErrNotExist) {
				fmt.Fprintln(e.stdout, "Not logged in.")
				return nil
			}
			if err != nil {
				return err
			}
			if saved.Token == "" {
				return os.Remove(path)
			}
			trusted := saved
			if _, err := loadCredentials(path); err != nil {
				if o.addr == "" {
					return fmt.Errorf("%v; nor is the address in it trusted, so its token was not sent and the file is kept: "+
						"run tokenservice logout --addr ADDR, naming the server you logged in to", err)
				}
				trusted = nil
			}
			d, err := o.resolve(trusted)
			if err != nil {
				return err
			}
			if !saved.holdsTokenFor(d) {
				why := "the login is to " + safe(saved.Addr) + ", not " + d.addr
				if target, _, _ := parseAddr(saved.Addr); target == d.target {
					why = "the login to " + safe(saved.Addr) + " went over TLS"
				}
				hint := "--addr " + safe(saved.Addr)
				if saved.TLS {
					hint += " --tls"
				}
				return usageError(cmd, "%s; its token was not sent and the credentials file is kept: run tokenservice logout %s", why, hint)
			}
			c := &client{addr: d.addr, tls: d.tls, stderr: e.stderr}
			if err := o.dial(c, d.target); err != nil {
				return err
			}
			defer c.close()
			// A token the server no longer accepts is gone already; any other
			// failure keeps the file, so that logout can be tried again.
			if err := revoke(cmd, c, saved.Token); err != nil && status.Code(err) != codes.Unauthenticated {
				return c.fail(err)
			}
			if err := os.Remove(path); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Logged out of %s.\n", safe(saved.Addr))
			return nil
		},
	}
	o = clientFlags(cmd.Flags())
	return cmd
}

func whoamiCommand(e *env) *cobra.Command {
	var o *clientOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "whoami",
		Short:   "Show the user your credentials belong to",
		GroupID: groupClient,
		Args:    args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect(e, true)
			if err != nil {
				return err
			}
			defer c.close()
			ctx, cancel := c.call(cmd.Context())
			defer cancel()
			resp, err := c.users.GetUser(ctx, &pb.GetUserRequest{UserId: "me"})
			if err != nil {
				return c.fail(err)
			}
			return printUser(e, asJSON, resp)
		},
	}
	o = clientFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the REST API answers")
	return cmd
}
