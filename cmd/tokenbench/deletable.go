package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"strings"
	"time"

	_ "github.com/glebarez/go-sqlite" // the "sqlite" driver, the server's own
)

// deletableBatch is the rows fillDeletable writes in one INSERT.
const deletableBatch = 500

// deletableRate is the deletes a second fillDeletable provides for: more
// than one MySQL served on the bench's machine.
const deletableRate = 4000

// deletableFor is how many tokens delete may delete over each transport in
// a run of d (and its warm-up of a fifth of it).
func deletableFor(d time.Duration) int {
	return max(deletableBatch, int(deletableRate*1.2*d.Seconds()))
}

// fillDeletable writes n tokens of the fixture's user (alice) for delete to
// delete over each transport, straight into the database before the
// measured server starts: creating them through the service would take
// longer than the bench (CreateToken serves a few hundred a second), and
// the measured server has then cached none of them, as a replica would not
// have cached a token another replica created.
func fillDeletable(ctx context.Context, dbEnv []string, f *fixture, n int) error {
	db, err := sql.Open(envValue(dbEnv, "TOKENSERVICE_DB_DRIVER"), envValue(dbEnv, "TOKENSERVICE_DB_DSN"))
	if err != nil {
		return err
	}
	defer db.Close()
	var userID, scopes string
	var hash []byte
	var generation int
	err = db.QueryRowContext(ctx, "SELECT user_id, secret_hash, scopes, secret_generation FROM tokens WHERE id = ?", f.apiTokenID).
		Scan(&userID, &hash, &scopes, &generation)
	if err != nil {
		return fmt.Errorf("reading alice's token: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, transport := range []string{"rest", "grpc"} {
		for done := 0; done < n; done += deletableBatch {
			rows := min(deletableBatch, n-done)
			args := make([]any, 0, rows*7)
			ids := make([]string, rows)
			for i := range ids {
				ids[i] = "del" + strings.ToLower(rand.Text()[:13]) // 16 characters, as the service's IDs
				args = append(args, ids[i], userID, hash, "bench delete", now, scopes, generation)
			}
			q := "INSERT INTO tokens (id, user_id, secret_hash, note, create_time, scopes, secret_generation) VALUES " +
				strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?), ", rows), ", ")
			if _, err := db.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("writing tokens to delete: %w", err)
			}
			for _, id := range ids {
				f.pool(transport).put(id)
			}
		}
	}
	return nil
}

// envValue returns the value of key in an environment list; "" if absent.
func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}
