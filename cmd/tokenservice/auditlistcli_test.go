package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/internal/testlog"
	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// sinkLines returns the JSON lines serve's audit sink writes for the
// sealed events of actor, newest first: audit.LineOf of each, as stored.
func sinkLines(t *testing.T, st *store.Store, actorID string) []string {
	t.Helper()
	events, err := st.AuditEventsFrom(context.Background(), 1, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range slices.Backward(events) {
		if e.Actor.UserID != actorID {
			continue
		}
		b, err := json.Marshal(audit.LineOf(e))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	return lines
}

func lines(out string) []string { return strings.Split(strings.TrimSuffix(out, "\n"), "\n") }

// TestAuditListCLI: audit list prints a table, newest first, or with
// --json the lines serve's audit sink writes; its flags are the API's
// filters; a mistake is a usage error or the server's words in flags.
func TestAuditListCLI(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		s.mustUser(t, "root", "admin")
		sh := s.newShell(t)
		sh.must("root\n"+password+"\n", "login")
		st := s.auditTrail(t)
		f := userParty("CLIActorFFFFFFF1", "f", "")
		t0 := time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC)
		mustAppend(t, st,
			testEvent("c1", t0, domain.ActionTokenCreate, f, domain.AuditParty{UserID: "CLISubject000001", Username: "sam", TokenID: "CLIToken00000001"}),
			testEvent("c2", t0.Add(time.Minute), domain.ActionTokenDelete, f, domain.AuditParty{UserID: "CLISubject000001", Username: "sam", TokenID: "CLIToken00000001"}),
			testEvent("c3", t0.Add(2*time.Minute), domain.ActionUserLogin, f, domain.AuditParty{}),
		)

		table := lines(sh.must("", "audit", "list", "--actor-id", f.UserID))
		if len(table) != 4 || !strings.HasPrefix(table[0], "SEQ") || !strings.Contains(table[0], "ACTION") {
			t.Fatalf("the table:\n%s", strings.Join(table, "\n"))
		}
		for i, want := range []string{"user.login", "token.delete", "token.create"} {
			if row := table[i+1]; !strings.Contains(row, want) || !strings.Contains(row, "test=c"+string(rune('3'-i))) {
				t.Errorf("row %d: %q, want %s (newest first)", i+1, row, want)
			}
		}
		if !strings.Contains(table[2], "sam") || !strings.Contains(table[2], "CLIToken00000001") || !strings.Contains(table[2], " f ") {
			t.Errorf("the deletion's row names no actor, subject or token: %q", table[2])
		}

		// --json: the sink's lines, byte for byte.
		want := sinkLines(t, st, f.UserID)
		if diff := cmp.Diff(want, lines(sh.must("", "audit", "list", "--actor-id", f.UserID, "--json"))); diff != "" {
			t.Errorf("audit list --json against the sink's lines (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want[:2], lines(sh.must("", "audit", "list", "--actor-id", f.UserID, "--json", "--limit", "2"))); diff != "" {
			t.Errorf("--limit 2 (-want +got):\n%s", diff)
		}
		for name, tc := range map[string]struct {
			args []string
			want []string
		}{
			"--action":          {[]string{"--action", "token.create"}, want[2:]},
			"--subject-user-id": {[]string{"--subject-user-id", "CLISubject000001"}, want[1:]},
			"--token-id":        {[]string{"--token-id", "CLIToken00000001", "--action", "token.delete"}, want[1:2]},
			"--since, --until":  {[]string{"--since", t0.Add(time.Minute).Format(time.RFC3339), "--until", t0.Add(2 * time.Minute).Format(time.RFC3339)}, want[1:2]},
			"--since ago":       {[]string{"--since", "1h"}, nil},
		} {
			out := sh.must("", append([]string{"audit", "list", "--actor-id", f.UserID, "--json"}, tc.args...)...)
			if got := lines(out); (len(tc.want) == 0 && out != "") || (len(tc.want) > 0 && !slices.Equal(got, tc.want)) {
				t.Errorf("%s: %q, want %q", name, out, tc.want)
			}
		}

		sh.want(exitUsage, "--limit -1", "", "audit", "list", "--limit", "-1")
		sh.want(exitUsage, `--since "yesterday"`, "", "audit", "list", "--since", "yesterday")
		sh.want(exitError, `--action: unknown action "token.created": the actions are`, "", "audit", "list", "--action", "token.created")
		sh.want(exitError, "--actor-id: must be an ID", "", "audit", "list", "--actor-id", "root")
		sh.want(exitError, "--until: must be after the start time", "", "audit", "list", "--since", "1h", "--until", "2h")

		// A token without audit:read is refused, saying so.
		narrow := rpc{t, s.grpcCaller()}.mustCreate("", &pb.CreateTokenRequest{Username: "root", Password: password, Scopes: []string{"tokens:read"}}).GetToken()
		script := &shell{t: t, env: map[string]string{"TOKENSERVICE_ADDR": s.grpcAddr, "TOKENSERVICE_TOKEN": narrow, "HOME": t.TempDir()}}
		script.want(exitCredentials, `"audit:read"`, "", "audit", "list")
	})
}

// TestAuditListFollows: --follow prints the last --limit events oldest
// first, then each new one as it is sealed, once, until interrupted; and
// from an empty listing too.
func TestAuditListFollows(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		s.mustUser(t, "root", "admin")
		sh := s.newShell(t)
		sh.must("root\n"+password+"\n", "login")
		st := s.auditTrail(t)
		f, e := userParty("FollowActorFFFF1", "f", ""), userParty("FollowActorEEEE1", "e", "")
		at := time.Now().UTC()
		mustAppend(t, st, testEvent("old1", at, domain.ActionTokenCreate, f, domain.AuditParty{}),
			testEvent("old2", at, domain.ActionTokenCreate, f, domain.AuditParty{}),
			testEvent("old3", at, domain.ActionTokenCreate, f, domain.AuditParty{}))

		follow := func(args ...string) (out *testlog.Buffer, stop func() int) {
			out = &testlog.Buffer{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, append([]string{"tokenservice", "audit", "list", "--follow", "--json", "--interval", "100ms"}, args...),
					func(k string) string { return sh.env[k] }, strings.NewReader(""), out, &testlog.Buffer{})
			}()
			return out, func() int {
				cancel()
				select {
				case err := <-done:
					return exitCode(err)
				case <-time.After(10 * time.Second):
					t.Fatal("audit list --follow did not end within 10s of its interrupt")
					return -1
				}
			}
		}
		names := func(out *testlog.Buffer) []string {
			var got []string
			for _, l := range out.JSONLines() {
				d, _ := l["details"].(map[string]any)
				got = append(got, d["test"].(string))
			}
			return got
		}
		waitLines := func(what string, out *testlog.Buffer, n int) {
			waitFor(t, what, 10*time.Second, time.Now(), func() bool { return len(out.JSONLines()) >= n })
		}

		fOut, stopF := follow("--actor-id", f.UserID, "--limit", "2")
		eOut, stopE := follow("--actor-id", e.UserID) // nothing yet
		waitLines("the last two of f's", fOut, 2)
		mustAppend(t, st, testEvent("new1", at, domain.ActionTokenDelete, f, domain.AuditParty{}),
			testEvent("e1", at, domain.ActionTokenDelete, e, domain.AuditParty{}))
		waitLines("f's new event", fOut, 3)
		waitLines("e's first event", eOut, 1)
		mustAppend(t, st, testEvent("new2", at, domain.ActionTokenDelete, f, domain.AuditParty{}),
			testEvent("e2", at, domain.ActionTokenDelete, e, domain.AuditParty{}))
		waitLines("f's second new event", fOut, 4)
		waitLines("e's second event", eOut, 2)
		if code := stopF(); code != exitOK {
			t.Errorf("--follow interrupted: exit %d, want 0", code)
		}
		if code := stopE(); code != exitOK {
			t.Errorf("--follow interrupted: exit %d, want 0", code)
		}
		if diff := cmp.Diff([]string{"old2", "old3", "new1", "new2"}, names(fOut)); diff != "" {
			t.Errorf("following f (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"e1", "e2"}, names(eOut)); diff != "" {
			t.Errorf("following e from nothing (-want +got):\n%s", diff)
		}
	})
}
