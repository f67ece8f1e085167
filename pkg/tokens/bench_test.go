package tokens_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite" // the "sqlite" database/sql driver, for the bulk insert

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

// bulkTokens inserts n tokens for userID straight into the database, in
// batches of 1,000 rows: the API would take minutes for 100,000.
func bulkTokens(b *testing.B, cfg store.Config, userID string, n int, base time.Time) {
	b.Helper()
	driver := cfg.Driver
	db, err := sql.Open(driver, cfg.DSN)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const batch = 1000
	for i := 0; i < n; i += batch {
		var sb strings.Builder
		args := make([]any, 0, batch*4)
		sb.WriteString("INSERT INTO tokens (id, user_id, secret_hash, note, create_time) VALUES ")
		for j := i; j < min(i+batch, n); j++ {
			if j > i {
				sb.WriteString(",")
			}
			sb.WriteString("(?, ?, ?, '', ?)")
			args = append(args, fmt.Sprintf("t%015d", j), userID, make([]byte, 32), base.Add(time.Duration(j)*time.Microsecond))
		}
		if _, err := db.Exec(sb.String(), args...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListTokensDeepPage: with 100,000 tokens for one user, page 1,000
// (of 100 tokens, reached by following page tokens) costs what page 1 does:
// keyset pagination on the tokens_list index, no OFFSET.
func BenchmarkListTokensDeepPage(b *testing.B) {
	const (
		total    = 100_000
		pageSize = 100
		deepPage = 1000
	)
	for _, driver := range storetest.Drivers {
		b.Run(driver, func(b *testing.B) {
			cfg := storetest.MustConfig(b, driver)
			st := storetest.MustOpenConfig(b, cfg)
			ctx := context.Background()
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			u := &domain.User{ID: "uuuuuuuuuuuuuuuu", Username: "lister", CreateTime: base}
			if err := st.CreateUser(ctx, u); err != nil {
				b.Fatal(err)
			}
			bulkTokens(b, cfg, u.ID, total, base)
			svc := tokens.New(tokens.Config{}, st, st, nil, nil, tokens.NewPageTokens([]byte("bench page token key, 32 bytes..")), nil,
				func() time.Time { return base.Add(time.Hour) }, rand.Reader)
			caller := &domain.Principal{User: u}

			// Follow the page tokens to page 1,000 once.
			tokensOf := map[int]string{1: ""}
			next := ""
			for page := 1; page < deepPage; page++ {
				toks, nt, err := svc.ListTokens(ctx, caller, tokens.ListInput{PageSize: pageSize, PageToken: next})
				if err != nil || len(toks) != pageSize || nt == "" {
					b.Fatalf("page %d: %d tokens, next %q, %v", page, len(toks), nt, err)
				}
				next = nt
			}
			tokensOf[deepPage] = next

			for _, page := range []int{1, deepPage} {
				b.Run(fmt.Sprintf("page=%d", page), func(b *testing.B) {
					for b.Loop() {
						toks, _, err := svc.ListTokens(ctx, caller, tokens.ListInput{PageSize: pageSize, PageToken: tokensOf[page]})
						if err != nil || len(toks) != pageSize {
							b.Fatalf("%d tokens, %v", len(toks), err)
						}
					}
				})
			}
		})
	}
}
