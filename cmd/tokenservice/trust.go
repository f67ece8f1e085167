package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// The trust commands manage a machine user's federated credentials
// (FederatedCredentialService): which tokens of which trusted OIDC issuer
// may be exchanged for the machine user's access tokens.

func userTrustCommand(e *env) *cobra.Command {
	cmd := group("trust", "Let a CI job or a pod act as a machine user with its platform's OIDC token, no secret stored (federated credentials)", "",
		trustAddCommand(e), trustListCommand(e), trustGetCommand(e), trustRemoveCommand(e))
	cmd.Long = `Manage a machine user's federated credentials: which OIDC tokens of a trusted issuer
(GitHub Actions, GitLab CI, a Kubernetes cluster) may be exchanged at the token
endpoint (RFC 8693) for the machine user's access tokens, so that no API token is
stored in the CI or the cluster. MACHINE_USER is one of your machine users (anyone's,
for an admin), by username or ID.`
	return cmd
}

func trustAddCommand(e *env) *cobra.Command {
	var issuer, subject, condition, maxLifetime, description string
	var audiences, scopes []string
	var asJSON bool
	cmd := withClient(e, &cobra.Command{
		Use:   "add MACHINE_USER --issuer URL --subject SUB --audience AUD",
		Short: "Accept an issuer's tokens with this subject and audience as the machine user",
		Long: `Accept the OIDC tokens of a trusted issuer as the machine user: those whose iss is
--issuer (one of the server's --trusted-issuers), whose sub is exactly --subject,
whose aud holds one of the --audience values and, if --condition is given, for whose
claims that CEL expression is true. The server checks the issuer and compiles the
condition now, and says what is wrong with either.`,
		Example: `  # GitHub Actions: the main branch of acme/deploy
  tokenservice user trust add deploy-bot \
    --issuer https://token.actions.githubusercontent.com \
    --subject repo:acme/deploy:ref:refs/heads/main \
    --audience https://tokens.example.com \
    --condition 'claims.repository_owner == "acme"' \
    --scope deploy --max-lifetime 10m --description "acme/deploy main"

  # A Kubernetes service account
  tokenservice user trust add batch-bot --issuer https://kubernetes.default.svc \
    --subject system:serviceaccount:batch:reporter --audience https://tokens.example.com`,
		Args: args("MACHINE_USER"),
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		for _, required := range []struct{ flag, value, what string }{
			{"--issuer", issuer, "the issuer URL of the tokens to accept, one of the server's --trusted-issuers"},
			{"--subject", subject, "the exact sub of the tokens to accept"},
		} {
			if strings.TrimSpace(required.value) == "" {
				return usageError(cmd, "%s is required: %s", required.flag, required.what)
			}
		}
		if len(audiences) == 0 {
			return usageError(cmd, "--audience is required: a token's aud must hold one of them (usually this server's URL)")
		}
		var lifetime time.Duration
		if maxLifetime != "" {
			var err error
			if lifetime, err = parseLifetime("--max-lifetime", maxLifetime); err != nil {
				return usageError(cmd, "%v", err)
			}
		}
		scopes, err := scopeFlag(cmd, scopes)
		if err != nil {
			return err
		}
		u, err := machineUser(cmd.Context(), c, argv[0])
		if err != nil {
			return err
		}
		fc := &pb.FederatedCredential{Issuer: issuer, Subject: subject, Audiences: audiences, Condition: condition, Scopes: scopes, Description: description}
		if lifetime > 0 {
			fc.MaxAccessTokenLifetime = durationpb.New(lifetime)
		}
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := federatedCredentials(c).CreateFederatedCredential(ctx, &pb.CreateFederatedCredentialRequest{UserId: u.GetId(), FederatedCredential: fc})
		if err != nil {
			return c.fail(inTrustWords(err))
		}
		if asJSON {
			return printJSON(e.stdout, resp)
		}
		return printFederatedCredentials(e.stdout, []*pb.FederatedCredential{resp.GetFederatedCredential()})
	})
	f := cmd.Flags()
	f.StringVar(&issuer, "issuer", "", "the issuer URL, exactly as its tokens' iss: one of the server's --trusted-issuers (https://token.actions.githubusercontent.com, https://gitlab.com, ...)")
	f.StringVar(&subject, "subject", "", "the exact sub of the tokens to accept: repo:OWNER/REPO:ref:refs/heads/main (GitHub Actions), system:serviceaccount:NAMESPACE:NAME (Kubernetes)")
	f.StringArrayVar(&audiences, "audience", nil, "an audience a token's aud must hold, usually this server's URL (repeat for several, up to 8)")
	f.StringVar(&condition, "condition", "", `a CEL expression over the token's claims, as claims, that must be true: claims.repository_owner == "acme" && claims.ref == "refs/heads/main" (default: none)`)
	f.StringSliceVar(&scopes, "scope", nil, "a scope an exchange through it may grant, at most: one of your APIs' (serve's --scopes) or the service's own (repeat, or separate with commas); default: all of the token you use")
	f.StringVar(&maxLifetime, "max-lifetime", "", "the longest an access token it gives may live: 10m, 1h, ... (1m to the server's access-token lifetime); default: the server's")
	f.StringVar(&description, "description", "", "a description to tell it by, at most 256 characters")
	f.BoolVar(&asJSON, "json", false, "print JSON, as the REST API answers")
	return cmd
}

func trustListCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := withClient(e, &cobra.Command{
		Use:   "list MACHINE_USER",
		Short: "List the machine user's federated credentials, oldest first",
		Args:  args("MACHINE_USER"),
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		u, err := machineUser(cmd.Context(), c, argv[0])
		if err != nil {
			return err
		}
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := federatedCredentials(c).ListFederatedCredentials(ctx, &pb.ListFederatedCredentialsRequest{UserId: u.GetId()})
		if err != nil {
			return c.fail(inTrustWords(err))
		}
		if asJSON {
			return printJSON(e.stdout, resp)
		}
		return printFederatedCredentials(e.stdout, resp.GetFederatedCredentials())
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the REST API answers")
	return cmd
}

func trustGetCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := withClient(e, &cobra.Command{
		Use:   "get MACHINE_USER ID",
		Short: "Show one of the machine user's federated credentials",
		Args:  args("MACHINE_USER", "ID"),
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		u, err := machineUser(cmd.Context(), c, argv[0])
		if err != nil {
			return err
		}
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		resp, err := federatedCredentials(c).GetFederatedCredential(ctx, &pb.GetFederatedCredentialRequest{UserId: u.GetId(), FederatedCredentialId: argv[1]})
		if err != nil {
			return c.fail(inTrustWords(err))
		}
		if asJSON {
			return printJSON(e.stdout, resp)
		}
		return printFederatedCredentials(e.stdout, []*pb.FederatedCredential{resp.GetFederatedCredential()})
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the REST API answers")
	return cmd
}

func trustRemoveCommand(e *env) *cobra.Command {
	return withClient(e, &cobra.Command{
		Use:   "remove MACHINE_USER ID",
		Short: "Delete a federated credential: exchanges through it are refused from then on",
		Long: `Delete one of the machine user's federated credentials. Exchanges through it are
refused at once on the server that answers (within the cache TTL on other replicas),
and so are the access tokens it gave, here; gateways that verify access tokens offline
accept those until they expire.`,
		Args: args("MACHINE_USER", "ID"),
	}, func(cmd *cobra.Command, c *client, argv []string) error {
		u, err := machineUser(cmd.Context(), c, argv[0])
		if err != nil {
			return err
		}
		ctx, cancel := c.call(cmd.Context())
		defer cancel()
		if _, err := federatedCredentials(c).DeleteFederatedCredential(ctx, &pb.DeleteFederatedCredentialRequest{UserId: u.GetId(), FederatedCredentialId: argv[1]}); err != nil {
			return c.fail(inTrustWords(err))
		}
		fmt.Fprintf(e.stdout, "deleted federated credential %s of machine user %s\n", safe(argv[1]), safe(u.GetUsername()))
		return nil
	})
}

// federatedCredentials is the client's FederatedCredentialService (a stub on the
// client's connection: making one costs nothing).
func federatedCredentials(c *client) pb.FederatedCredentialServiceClient {
	return pb.NewFederatedCredentialServiceClient(c.conn)
}

// machineUser returns the machine user named: by username (or "me"), as
// the other commands name users, else by ID. Federated credentials belong
// only to machine users; a person is refused here, in the CLI's words,
// before anything is sent.
func machineUser(ctx context.Context, c *client, name string) (*pb.User, error) {
	u, err := c.user(ctx, name)
	var refused *exitErr // credentials refused, server unreachable: no use asking again
	if err != nil && !errors.As(err, &refused) {
		call, cancel := c.call(ctx)
		defer cancel()
		resp, idErr := c.users.GetUser(call, &pb.GetUserRequest{UserId: name})
		switch status.Code(idErr) {
		case codes.OK:
			u, err = resp.GetUser(), nil
		case codes.NotFound, codes.InvalidArgument, codes.PermissionDenied:
			err = fmt.Errorf("no user %q that you may see (by username or ID)", name)
		default:
			err = c.fail(idErr)
		}
	}
	if err != nil {
		return nil, err
	}
	if !u.GetMachine() {
		return nil, fmt.Errorf("%s is a person, not a machine user: federated credentials belong to machine users (make one for the workload: tokenservice user create-machine NAME)", safe(u.GetUsername()))
	}
	return u, nil
}

// trustFlagOf names the fields of FederatedCredentialService's requests as
// the trust commands' user knows them (client.go's flagOf is the token
// commands': there user_id is --user, here the MACHINE_USER argument).
var trustFlagOf = map[string]string{
	"user_id":                   "MACHINE_USER",
	"federated_credential_id":   "the credential ID",
	"issuer":                    "--issuer",
	"subject":                   "--subject",
	"audiences":                 "--audience",
	"condition":                 "--condition",
	"scopes":                    "--scope",
	"max_access_token_lifetime": "--max-lifetime",
	"description":               "--description",
}

// fieldIndex is a field path's list index ("audiences[1]").
var fieldIndex = regexp.MustCompile(`\[\d+\]$`)

// inTrustWords returns a refusal whose fields (its google.rpc.BadRequest)
// are all the trust commands' flags or arguments with its message said in
// those ("--issuer: ... is not a trusted issuer: the server trusts ..."),
// the server's descriptions as they are; any other error as it is, for
// c.fail.
func inTrustWords(err error) error {
	st := status.Convert(err)
	var parts []string
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			// The request's own fields, or its credential's as protovalidate names them.
			field := fieldIndex.ReplaceAllString(strings.TrimPrefix(v.GetField(), "federated_credential."), "")
			name, ok := trustFlagOf[field]
			if !ok {
				return err
			}
			parts = append(parts, name+": "+v.GetDescription())
		}
	}
	if len(parts) == 0 {
		return err
	}
	return status.Error(st.Code(), strings.Join(parts, "; "))
}

func printFederatedCredentials(w io.Writer, creds []*pb.FederatedCredential) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDESCRIPTION\tISSUER\tSUBJECT\tAUDIENCES\tSCOPES\tLIFETIME\tCREATED\tCONDITION")
	for _, fc := range creds {
		lifetime := "server's"
		if d := fc.GetMaxAccessTokenLifetime(); d != nil {
			lifetime = shortDuration(d.AsDuration())
		}
		condition := "none"
		if fc.GetCondition() != "" {
			condition = safe(fc.GetCondition())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", safe(fc.GetId()), safe(fc.GetDescription()), safe(fc.GetIssuer()), safe(fc.GetSubject()),
			safeAll(fc.GetAudiences(), ","), safeAll(fc.GetScopes(), ","), lifetime, when(fc.GetCreateTime(), ""), condition)
	}
	return tw.Flush()
}

// shortDuration writes d as --max-lifetime takes it: 10m, 1h30m, 90s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
