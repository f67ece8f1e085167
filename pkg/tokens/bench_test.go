package tokens_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite" // the "sqlite" database/sql driver, for the bulk insert

	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"
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
// keyset pagination on the tokens_list index, no OFFSET. The service is the
// one serve builds (app), cache and all.
func BenchmarkListTokensDeepPage(b *testing.B) {
	const (
		total    = 100_000
		pageSize = 100
		deepPage = 1000
	)
	for _, driver := range storetest.Drivers {
		b.Run(driver, func(b *testing.B) {
			cfg := apptest.Config(b, driver)
			a := apptest.MustStart(b, cfg)
			ctx := context.Background()
			u, err := a.Users().Create(ctx, users.Operator(), users.CreateInput{Username: "lister", Password: "bench password"})
			if err != nil {
				b.Fatal(err)
			}
			bulkTokens(b, cfg.Store, u.ID, total, time.Now().Add(-time.Hour))
			svc := a.Tokens()
			caller := &domain.Principal{User: u}

			// Follow the page tokens to page 1,000 once.
			tokensOf := map[int]string{1: ""}
			next := ""
			for page := 1; page < deepPage; page++ {
				toks, nt, err := svc.List(ctx, caller, tokens.ListInput{PageSize: pageSize, PageToken: next})
				if err != nil || len(toks) != pageSize || nt == "" {
					b.Fatalf("page %d: %d tokens, next %q, %v", page, len(toks), nt, err)
				}
				next = nt
			}
			tokensOf[deepPage] = next

			for _, page := range []int{1, deepPage} {
				b.Run(fmt.Sprintf("page=%d", page), func(b *testing.B) {
					for b.Loop() {
						toks, _, err := svc.List(ctx, caller, tokens.ListInput{PageSize: pageSize, PageToken: tokensOf[page]})
						if err != nil || len(toks) != pageSize {
							b.Fatalf("%d tokens, %v", len(toks), err)
						}
					}
				})
			}
		})
	}
}
