package main

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// trustedIssuer is the issuer the trust tests' server trusts: a loopback
// URL, accepted over plain HTTP, that nothing fetches at creation.
const trustedIssuer = "http://127.0.0.1:1"

// startTrustService starts a server trusting trustedIssuer, with a person
// alice logged in (the returned shell) who owns the machine user deploy-bot
// (its ID returned).
func startTrustService(t *testing.T, driver string) (*service, *shell, string) {
	t.Helper()
	s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_TRUSTED_ISSUERS", trustedIssuer, "TOKENSERVICE_SCOPES", "deploy")
	s.mustUser(t, "alice", "human")
	botID := s.mustUser(t, "deploy-bot", "machine:alice")
	sh := s.newShell(t)
	sh.must(password+"\n", "login", "alice")
	return s, sh, botID
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// A person trusts a CI job's tokens as their machine user: adds two
// credentials, by username and by ID, lists them, shows one, removes one.
func TestTrustCLI(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s, sh, botID := startTrustService(t, driver)

		// Every field, in the human table.
		out := sh.must("", "user", "trust", "add", "deploy-bot", "--issuer", trustedIssuer, "--subject", "repo:acme/deploy:ref:refs/heads/main",
			"--audience", "https://tokens.example.com", "--audience", "tokenservice", "--condition", `claims.repository_owner == "acme"`,
			"--scope", "deploy", "--max-lifetime", "10m", "--description", "acme deploy")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !regexp.MustCompile(`^ID +DESCRIPTION +ISSUER +SUBJECT +AUDIENCES +SCOPES +LIFETIME +CREATED +CONDITION$`).MatchString(lines[0]) {
			t.Fatalf("trust add printed\n%s\nwant a header and one row", out)
		}
		row := regexp.MustCompile(`^(fc_\w+) +acme deploy +` + regexp.QuoteMeta(trustedIssuer) + ` +repo:acme/deploy:ref:refs/heads/main +https://tokens\.example\.com,tokenservice +deploy +10m +\S+ +claims\.repository_owner == "acme"$`).FindStringSubmatch(lines[1])
		if row == nil {
			t.Fatalf("trust add printed the row\n%s", lines[1])
		}
		first := row[1]

		// --json: the API's message, by the machine user's ID this time.
		var created pb.CreateFederatedCredentialResponse
		out = sh.must("", "user", "trust", "add", botID, "--issuer", trustedIssuer, "--subject", "system:serviceaccount:batch:reporter", "--audience", "k8s", "--json")
		if err := protojson.Unmarshal([]byte(out), &created); err != nil {
			t.Fatalf("trust add --json: %v\n%s", err, out)
		}
		second := created.GetFederatedCredential()
		if second.GetUserId() != botID || second.GetSubject() != "system:serviceaccount:batch:reporter" || second.GetMaxAccessTokenLifetime() != nil || second.GetCondition() != "" {
			t.Errorf("trust add --json: %v", second)
		}

		// get --json is what the REST API answers for the same credential.
		path := "/v1alpha1/users/" + botID + "/federatedCredentials/" + second.GetId()
		got := decodeJSON(t, []byte(sh.must("", "user", "trust", "get", "deploy-bot", second.GetId(), "--json")))
		if diff := cmp.Diff(restGet(t, s, sh.loginToken(), path), got); diff != "" {
			t.Errorf("trust get --json differs from GET %s (-REST +CLI):\n%s", path, diff)
		}
		if out := sh.must("", "user", "trust", "get", "deploy-bot", first); !strings.Contains(out, `claims.repository_owner == "acme"`) || !strings.Contains(out, first) {
			t.Errorf("trust get printed\n%s", out)
		}

		// list, oldest first; --json as the REST API answers.
		out = sh.must("", "user", "trust", "list", botID)
		if i, j := strings.Index(out, first), strings.Index(out, second.GetId()); i < 0 || j < i || strings.Count(out, "\n") != 3 {
			t.Errorf("trust list printed\n%s\nwant %s then %s", out, first, second.GetId())
		}
		got = decodeJSON(t, []byte(sh.must("", "user", "trust", "list", "deploy-bot", "--json")))
		if diff := cmp.Diff(restGet(t, s, sh.loginToken(), "/v1alpha1/users/"+botID+"/federatedCredentials"), got); diff != "" {
			t.Errorf("trust list --json differs from the REST API's (-REST +CLI):\n%s", diff)
		}

		// remove: gone from get and list.
		if out := sh.must("", "user", "trust", "remove", "deploy-bot", first); out != "deleted federated credential "+first+" of machine user deploy-bot\n" {
			t.Errorf("trust remove printed %q", out)
		}
		sh.want(exitError, "federated credential not found", "", "user", "trust", "get", "deploy-bot", first)
		sh.want(exitError, "federated credential not found", "", "user", "trust", "remove", "deploy-bot", first)
		if out := sh.must("", "user", "trust", "list", "deploy-bot"); strings.Contains(out, first) || !strings.Contains(out, second.GetId()) {
			t.Errorf("trust list after removing %s:\n%s", first, out)
		}
	})
}

// Refusals: the server's words, each named by the flag it is about, with
// the CLI's exit statuses; a mistake on the command line sends nothing.
func TestTrustCLIRefusals(t *testing.T) {
	s, sh, _ := startTrustService(t, "sqlite")
	add := func(extra ...string) []string {
		return append([]string{"user", "trust", "add", "deploy-bot", "--issuer", trustedIssuer, "--subject", "sub", "--audience", "aud"}, extra...)
	}
	// The server's refusals, their fields said as the flags.
	sh.want(exitError, `--issuer: "https://evil.example" is not a trusted issuer: the server trusts `+trustedIssuer+" (its --trusted-issuers)", "",
		"user", "trust", "add", "deploy-bot", "--issuer", "https://evil.example", "--subject", "sub", "--audience", "aud")
	sh.want(exitError, "--condition: the condition is not valid CEL: at column", "", add("--condition", "claims.repository_owner ==")...)
	sh.want(exitError, "--condition: the condition gives a value of type int, not true or false", "", add("--condition", "1 + 2")...)
	sh.want(exitError, "--max-lifetime: must be", "", add("--max-lifetime", "30s")...)

	// Only machine users, and only one's own (an admin: anyone's).
	sh.want(exitError, "alice is a person, not a machine user", "", "user", "trust", "list", "alice")
	sh.want(exitError, "alice is a person, not a machine user", "", "user", "trust", "add", "me", "--issuer", trustedIssuer, "--subject", "sub", "--audience", "aud")
	s.mustUser(t, "bob", "human")
	bobBotID := s.mustUser(t, "bob-bot", "machine:bob")
	bob := s.newShell(t)
	bob.must(password+"\n", "login", "bob")
	var bobs pb.CreateFederatedCredentialResponse
	if err := protojson.Unmarshal([]byte(bob.must("", "user", "trust", "add", "bob-bot", "--issuer", trustedIssuer, "--subject", "sub", "--audience", "aud", "--json")), &bobs); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bob-bot", bobBotID} {
		sh.want(exitError, "that you may see", "", "user", "trust", "add", name, "--issuer", trustedIssuer, "--subject", "sub", "--audience", "aud")
		sh.want(exitError, "that you may see", "", "user", "trust", "list", name)
		sh.want(exitError, "that you may see", "", "user", "trust", "remove", name, bobs.GetFederatedCredential().GetId())
	}
	// bob's credential is not found under alice's machine user either.
	sh.want(exitError, "federated credential not found", "", "user", "trust", "remove", "deploy-bot", bobs.GetFederatedCredential().GetId())
	bob.must("", "user", "trust", "get", "bob-bot", bobs.GetFederatedCredential().GetId())

	// Command-line mistakes: exit 2.
	sh.want(exitUsage, "missing MACHINE_USER", "", "user", "trust", "add")
	sh.want(exitUsage, "missing ID", "", "user", "trust", "get", "deploy-bot")
	sh.want(exitUsage, "--issuer is required", "", "user", "trust", "add", "deploy-bot", "--subject", "sub", "--audience", "aud")
	sh.want(exitUsage, "--subject is required", "", "user", "trust", "add", "deploy-bot", "--issuer", trustedIssuer, "--audience", "aud")
	sh.want(exitUsage, "--audience is required", "", "user", "trust", "add", "deploy-bot", "--issuer", trustedIssuer, "--subject", "sub")
	sh.want(exitUsage, `--max-lifetime "soon"`, "", add("--max-lifetime", "soon")...)
	sh.want(exitUsage, "--scope is empty", "", add("--scope", " ")...)
	// None of those made a credential.
	if out := sh.must("", "user", "trust", "list", "deploy-bot"); strings.Count(out, "\n") != 1 {
		t.Errorf("refused adds left credentials:\n%s", out)
	}

	// Not logged in: exit 3.
	s.newShell(t).want(exitCredentials, "not logged in", "", "user", "trust", "list", "deploy-bot")
}

// Every trust command and flag says what it is for, and --condition shows
// an expression to start from.
func TestTrustHelp(t *testing.T) {
	root := rootCommand(&env{getenv: func(string) string { return "" }})
	trust, _, err := root.Find([]string{"user", "trust"})
	if err != nil || trust.Name() != "trust" {
		t.Fatalf("user trust: %v, %v", trust, err)
	}
	var names []string
	for _, cmd := range trust.Commands() {
		names = append(names, cmd.Name())
		if cmd.Short == "" {
			t.Errorf("user trust %s: no Short", cmd.Name())
		}
		cmd.InitDefaultHelpFlag()
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("user trust %s --%s: no help", cmd.Name(), f.Name)
			}
		})
	}
	if diff := cmp.Diff([]string{"add", "get", "list", "remove"}, names); diff != "" {
		t.Errorf("user trust's commands (-want +got):\n%s", diff)
	}
	add, _, _ := root.Find([]string{"user", "trust", "add"})
	if f := add.Flags().Lookup("condition"); f == nil || !strings.Contains(f.Usage, `claims.repository_owner == "acme"`) {
		t.Errorf("--condition's help has no example: %v", f)
	}
}

// A refusal's fields are said as the trust commands' flags, protovalidate's
// paths included; one naming a field they do not know is left as it is.
func TestTrustRefusalWords(t *testing.T) {
	refusal := func(msg string, fields ...string) error {
		br := &errdetails.BadRequest{}
		for _, f := range fields {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f, Description: "is wrong"})
		}
		st, _ := status.New(codes.InvalidArgument, msg).WithDetails(br)
		return st.Err()
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{refusal("issuer: is wrong", "issuer"), "--issuer: is wrong"},
		{refusal("x", "federated_credential.audiences[1]", "federated_credential.max_access_token_lifetime"), "--audience: is wrong; --max-lifetime: is wrong"},
		{refusal("user_id: is wrong", "user_id"), "MACHINE_USER: is wrong"},
		{refusal("as the server says", "issuer", "something_else"), "as the server says"},
		{status.Error(codes.NotFound, "federated credential not found"), "federated credential not found"},
		{errors.New("not a status"), "not a status"},
	} {
		got := inTrustWords(tc.err)
		if st := status.Convert(got); st.Message() != tc.want || st.Code() != status.Code(tc.err) {
			t.Errorf("inTrustWords(%v) = %v, want %q with code %v", tc.err, got, tc.want, status.Code(tc.err))
		}
	}
}

// What a credential stored some other way than the API holds is printed
// escaped: it can neither drive the terminal nor fake a row.
func TestTrustListCannotDriveTheTerminal(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_TRUSTED_ISSUERS", trustedIssuer, "TOKENSERVICE_CACHE_TTL", "0")
	s.mustUser(t, "alice", "human")
	s.mustUser(t, "deploy-bot", "machine:alice")
	sh := s.newShell(t)
	sh.must(password+"\n", "login", "alice")
	sh.must("", "user", "trust", "add", "deploy-bot", "--issuer", trustedIssuer, "--subject", "sub", "--audience", "aud", "--condition", "true", "--description", "plain")
	const text = "\x1b[2J\a\r\nfake-id  fake"
	if _, err := s.openDB(t).Exec(`UPDATE federated_credentials SET description = ?, subject = ?, cel_condition = ? WHERE description = 'plain'`, text, text, text); err != nil {
		t.Fatal(err)
	}
	out := sh.must("", "user", "trust", "list", "deploy-bot")
	if strings.ContainsAny(out, "\x1b\a\r") || strings.Contains(out, "\nfake-id") || strings.Count(out, `\x1b[2J\a\r\nfake-id`) != 3 {
		t.Errorf("trust list printed the stored text unescaped:\n%q", out)
	}
}
