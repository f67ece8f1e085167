package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// With --key-encryption-key-file the database holds the signing keys and
// server secrets sealed; a process without that key refuses to start on it.
func TestKeyEncryptionKey(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		kekFile := mustKEKFile(t)
		db := storetest.MustConfig(t, driver)
		s := startService(t, db, "TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE", kekFile)
		s.mustUser(t, "alice", "human")
		a := rpc{t: t, c: s.grpcCaller()}
		if _, err := a.exchange("", a.login("alice")); err != nil {
			t.Fatalf("exchange with sealed keys: %s", describe(err))
		}
		mustGet(t, s.httpURL+"/.well-known/jwks.json", "application/json")

		assertAllSealed(t, s.openDB(t))
		if err := s.shutdown(); err != nil {
			t.Fatal(err)
		}

		// The same database without the key, or with another: no start.
		otherKEK := mustKEKFile(t)
		for name, extra := range map[string][]string{"no key": nil, "another key": {"TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE", otherKEK}} {
			env := map[string]string{"TOKENSERVICE_HTTP_ADDR": "127.0.0.1:0", "TOKENSERVICE_GRPC_ADDR": "127.0.0.1:0", "TOKENSERVICE_METRICS_ADDR": "127.0.0.1:0"}
			for k, v := range s.env {
				if strings.HasPrefix(k, "TOKENSERVICE_DB_") {
					env[k] = v
				}
			}
			for i := 0; i+1 < len(extra); i += 2 {
				env[extra[i]] = extra[i+1]
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := run(ctx, []string{"tokenservice", "serve"}, func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, io.Discard)
			cancel()
			if err == nil || !strings.Contains(err.Error(), "key-encryption-key-file") {
				t.Errorf("%s: serve returned %v, want a refusal naming --key-encryption-key-file", name, err)
			}
		}
	})
}

// assertAllSealed checks every signing key and server secret in db is sealed.
func assertAllSealed(t *testing.T, db *sql.DB) {
	t.Helper()
	for _, q := range []string{"SELECT private_der FROM signing_keys", "SELECT value FROM server_secrets"} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var v []byte
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			if !auth.IsSealed(v) {
				t.Errorf("%s: a value in the clear", q)
			}
			n++
		}
		rows.Close()
		if n == 0 {
			t.Errorf("%s: no rows", q)
		}
	}
}

// Values stored in the clear are sealed by keys reseal; the key-encryption
// key is changed without downtime: replicas read both keys, keys reseal
// moves every value to the new one, and then the old one is not needed.
// A reseal with a key that opens nothing changes nothing.
func TestReseal(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		db := storetest.MustConfig(t, driver)
		s := startService(t, db)
		s.mustUser(t, "alice", "human")
		a := rpc{t: t, c: s.grpcCaller()}
		apiToken := a.login("alice")
		before, err := a.exchange("", apiToken)
		if err != nil {
			t.Fatal(describe(err))
		}
		kids := jwksKIDs(t, s)
		if err := s.shutdown(); err != nil {
			t.Fatal(err)
		}
		op := &shell{t: t, env: map[string]string{"TOKENSERVICE_DB_DRIVER": db.Driver, "TOKENSERVICE_DB_DSN": db.DSN}}
		k1, k2, stranger := mustKEKFile(t), mustKEKFile(t), mustKEKFile(t)

		op.want(2, "--key-encryption-key-file is required", "", "keys", "reseal")
		if out := op.must("", "keys", "reseal", "--key-encryption-key-file", k1); !strings.HasPrefix(out, "sealed ") {
			t.Errorf("keys reseal: %q", out)
		}
		assertAllSealed(t, s.openDB(t))

		// The same keys, now sealed: the access token from before still
		// verifies, the API token still exchanges. Then the rolling
		// restart: the new key, with the old one to read.
		for _, kek := range [][]string{
			{"TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE", k1},
			{"TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE", k2, "TOKENSERVICE_OLD_KEY_ENCRYPTION_KEY_FILE", k1},
		} {
			s := startService(t, db, kek...)
			if got := jwksKIDs(t, s); !slices.Equal(got, kids) {
				t.Errorf("%v: JWKS %v, want the keys from before, %v", kek, got, kids)
			}
			r := rpc{t: t, c: s.grpcCaller()}
			if _, err := r.list(before.GetAccessToken(), &pb.ListTokensRequest{}); err != nil {
				t.Errorf("%v: an access token from before: %s", kek, describe(err))
			}
			if _, err := r.exchange("", apiToken); err != nil {
				t.Errorf("%v: exchange: %s", kek, describe(err))
			}
			if err := s.shutdown(); err != nil {
				t.Fatal(err)
			}
		}

		op.want(1, "key-encryption key", "", "keys", "reseal", "--key-encryption-key-file", k2, "--old-key-encryption-key-file", stranger)
		op.must("", "keys", "reseal", "--key-encryption-key-file", k1) // all still under k1: nothing moved
		op.must("", "keys", "reseal", "--key-encryption-key-file", k2, "--old-key-encryption-key-file", k1)
		assertAllSealed(t, s.openDB(t))

		env := map[string]string{"TOKENSERVICE_HTTP_ADDR": "127.0.0.1:0", "TOKENSERVICE_GRPC_ADDR": "127.0.0.1:0", "TOKENSERVICE_METRICS_ADDR": "127.0.0.1:0",
			"TOKENSERVICE_DB_DRIVER": db.Driver, "TOKENSERVICE_DB_DSN": db.DSN, "TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE": k1}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = run(ctx, []string{"tokenservice", "serve"}, func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "key-encryption-key-file") {
			t.Errorf("serve with the replaced key alone: %v, want a refusal", err)
		}
		s2 := startService(t, db, "TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE", k2)
		if got := jwksKIDs(t, s2); !slices.Equal(got, kids) {
			t.Errorf("after the change of key-encryption key: JWKS %v, want %v", got, kids)
		}
	})
}

// mustKEKFile writes a fresh key-encryption key file, as openssl rand -base64 32 would.
func mustKEKFile(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	path := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A replica that can no longer read the signing keys (here: sealed under a
// key it was not given) keeps serving with the keys it has, counts the
// failed reloads, and stops being ready once that has lasted the
// propagation delay less the JWKS max-age: it would otherwise serve a JWKS
// without a key the others are about to sign with.
func TestUnreadableKeysMakeTheReplicaUnready(t *testing.T) {
	db := storetest.MustConfig(t, "sqlite")
	s := startService(t, db, "TOKENSERVICE_JWKS_MAX_AGE", "1s", "TOKENSERVICE_KEY_RELOAD_INTERVAL", "100ms",
		"TOKENSERVICE_KEY_PROPAGATION_DELAY", "2s")
	op := &shell{t: t, env: map[string]string{"TOKENSERVICE_DB_DRIVER": db.Driver, "TOKENSERVICE_DB_DSN": db.DSN}}
	op.must("", "keys", "reseal", "--key-encryption-key-file", mustKEKFile(t))
	sealedAt := time.Now()
	took := s.waitReady(t, false, 5*time.Second)
	if since := time.Since(sealedAt); since < 900*time.Millisecond {
		t.Errorf("not ready %v after the keys became unreadable: before the propagation delay less the max-age (1s)", since)
	}
	t.Logf("not ready %v after the keys became unreadable", took.Round(10*time.Millisecond))
	if got := scrape(t, "http://"+s.app.MetricsAddr()+"/metrics")[series("tokenservice_signing_key_reload_failures_total")]; got < 1 {
		t.Errorf("tokenservice_signing_key_reload_failures_total = %v", got)
	}
}

// A key-encryption key file other users may read is refused by every
// command that reads one, naming the file and the fix; its owner alone
// may read it, or, for a root-owned file, its group too (a Kubernetes
// Secret volume with defaultMode 0440 and fsGroup).
func TestKeyEncryptionKeyFileMustBePrivate(t *testing.T) {
	db := storetest.MustConfig(t, "sqlite")
	op := &shell{t: t, env: map[string]string{"TOKENSERVICE_DB_DRIVER": db.Driver, "TOKENSERVICE_DB_DSN": db.DSN}}
	op.must("", "db", "migrate")
	root := os.Getuid() == 0
	for _, c := range []struct {
		mode fs.FileMode
		uid  int // -1: the test's own user
		ok   bool
	}{
		{0o600, -1, true},
		{0o400, -1, true},
		{0o644, -1, false},
		{0o604, -1, false},
		{0o640, 65532, false}, // group-readable, not root's
		{0o640, -1, root},     // group-readable: only root's file may be
		{0o440, 0, true},
		{0o444, 0, false},
		{0o660, 0, false}, // group-writable: the group could replace the key
		{0o460, 0, false},
	} {
		t.Run(fmt.Sprintf("%04o uid %d", c.mode, c.uid), func(t *testing.T) {
			kek := mustKEKFile(t)
			if c.uid >= 0 && c.uid != os.Getuid() {
				if !root {
					t.Skip("needs root to give the file another owner")
				}
				if err := os.Chown(kek, c.uid, -1); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(kek, c.mode); err != nil {
				t.Fatal(err)
			}
			if c.ok {
				op.must("", "keys", "reseal", "--key-encryption-key-file", kek)
				return
			}
			op.want(exitError, "--key-encryption-key-file: "+kek+" may be read by other users", "", "keys", "reseal", "--key-encryption-key-file", kek)
			op.want(exitError, "run chmod 600 "+kek, "", "keys", "reseal", "--key-encryption-key-file", mustKEKFile(t), "--old-key-encryption-key-file", kek)
			env := map[string]string{"TOKENSERVICE_HTTP_ADDR": "127.0.0.1:0", "TOKENSERVICE_GRPC_ADDR": "127.0.0.1:0", "TOKENSERVICE_METRICS_ADDR": "127.0.0.1:0",
				"TOKENSERVICE_DB_DRIVER": db.Driver, "TOKENSERVICE_DB_DSN": db.DSN, "TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE": kek}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, []string{"tokenservice", "serve"}, func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "chmod 600 "+kek) {
				t.Errorf("serve with a key file of mode %04o: %v, want a refusal saying chmod 600", c.mode, err)
			}
		})
	}
}
