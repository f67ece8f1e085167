package main

import (
	"context"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// SECURITY.md's recovery from a lost key-encryption key, followed as
// written (its SQL is read from the document): the service starts on a new
// key and works; access tokens and page tokens from before are refused; API
// tokens and passwords are not touched.
func TestLostKeyEncryptionKeyRecovery(t *testing.T) {
	statements := lostKEKStatements(t)
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		db := storetest.MustConfig(t, driver)
		s := startService(t, db, "TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE", mustKEKFile(t))
		s.mustUser(t, "alice", "human")
		a := rpc{t: t, c: s.grpcCaller()}
		apiToken := a.login("alice")
		a.login("alice")
		oldAccess, err := a.exchange("", apiToken)
		if err != nil {
			t.Fatal(describe(err))
		}
		page, err := a.list(apiToken, &pb.ListTokensRequest{PageSize: 1})
		if err != nil || page.GetNextPageToken() == "" {
			t.Fatalf("a first page of one token: %v, %s", page, describe(err))
		}
		oldKIDs := jwksKIDs(t, s)
		if err := s.shutdown(); err != nil {
			t.Fatal(err)
		}

		// The key is lost: with another, serve does not start.
		newKEK := mustKEKFile(t)
		env := map[string]string{"TOKENSERVICE_HTTP_ADDR": "127.0.0.1:0", "TOKENSERVICE_GRPC_ADDR": "127.0.0.1:0", "TOKENSERVICE_METRICS_ADDR": "127.0.0.1:0",
			"TOKENSERVICE_DB_DRIVER": db.Driver, "TOKENSERVICE_DB_DSN": db.DSN, "TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE": newKEK}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = run(ctx, []string{"tokenservice", "serve"}, func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, io.Discard)
		cancel()
		if err == nil {
			t.Fatal("serve started on keys sealed under a lost key-encryption key")
		}

		sqlDB := s.openDB(t)
		for _, q := range statements {
			if _, err := sqlDB.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}

		s = startService(t, db, "TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE", newKEK)
		a = rpc{t: t, c: s.grpcCaller()}
		kids := jwksKIDs(t, s)
		if len(kids) == 0 || slices.ContainsFunc(kids, func(k string) bool { return slices.Contains(oldKIDs, k) }) {
			t.Errorf("JWKS after the recovery %v, want only new keys (before: %v)", kids, oldKIDs)
		}
		assertAllSealed(t, s.openDB(t))
		_, err = a.list(oldAccess.GetAccessToken(), &pb.ListTokensRequest{})
		wantCode(t, "an access token from before", err, codes.Unauthenticated)
		_, err = a.list(apiToken, &pb.ListTokensRequest{PageSize: 1, PageToken: page.GetNextPageToken()})
		wantCode(t, "a page token from before", err, codes.InvalidArgument)

		access, err := a.exchange("", apiToken)
		if err != nil {
			t.Fatalf("exchanging an API token from before: %s", describe(err))
		}
		if _, err := a.list(access.GetAccessToken(), &pb.ListTokensRequest{}); err != nil {
			t.Errorf("a new access token: %s", describe(err))
		}
		a.login("alice") // the password still works
		page, err = a.list(apiToken, &pb.ListTokensRequest{PageSize: 1})
		if err != nil {
			t.Fatal(describe(err))
		}
		if _, err := a.list(apiToken, &pb.ListTokensRequest{PageSize: 1, PageToken: page.GetNextPageToken()}); err != nil {
			t.Errorf("a new page token: %s", describe(err))
		}
	})
}

// lostKEKStatements returns the SQL of SECURITY.md's "Losing the
// key-encryption key".
func lostKEKStatements(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Losing the key-encryption key\n")
	m := regexp.MustCompile("(?s)```sql\n(.*?)```").FindStringSubmatch(section)
	if !ok || m == nil {
		t.Fatal(`SECURITY.md has no "## Losing the key-encryption key" with a sql block`)
	}
	var statements []string
	for _, q := range strings.Split(m[1], ";") {
		if q = strings.TrimSpace(q); q != "" {
			statements = append(statements, q)
		}
	}
	return statements
}
