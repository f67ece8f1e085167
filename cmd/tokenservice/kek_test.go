package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

		sqlDB := s.openDB(t)
		for _, q := range []string{"SELECT private_der FROM signing_keys", "SELECT value FROM server_secrets"} {
			rows, err := sqlDB.Query(q)
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
		if err := s.shutdown(); err != nil {
			t.Fatal(err)
		}

		// The same database without the key, or with another: no start.
		otherKEK := mustKEKFile(t)
		for name, extra := range map[string][]string{"no key": nil, "another key": {"TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE", otherKEK}} {
			env := map[string]string{"TOKENSERVICE_HTTP_ADDR": "127.0.0.1:0", "TOKENSERVICE_GRPC_ADDR": "127.0.0.1:0"}
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
