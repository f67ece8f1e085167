package audit_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// benchEvents is the trail the benchmarks write: large enough that the
// tables' fixed costs (a page, an extent) do not count per event.
const benchEvents = 100_000

// typical returns the i-th of a trail made of what a busy service writes
// most: access tokens minted, with their jti, audience and scopes, by a
// client with a user agent, a request id and a trace.
func typical(i int, at time.Time) *domain.AuditEvent {
	tok := fmt.Sprintf("%016x", i%5000)
	return (&domain.AuditEvent{Time: at, Action: domain.ActionAccessTokenMint, Outcome: domain.OutcomeSuccess,
		Actor:   domain.AuditParty{Kind: domain.ActorUser, UserID: fmt.Sprintf("u%015x", i%500), Username: fmt.Sprintf("ci-deployer-%d", i%500), OwnerID: "o000000000000001", TokenID: tok},
		Subject: domain.AuditParty{UserID: fmt.Sprintf("u%015x", i%500), Username: fmt.Sprintf("ci-deployer-%d", i%500), OwnerID: "o000000000000001", TokenID: tok},
		Origin: domain.Origin{ClientAddress: "10.1.2.3", UserAgent: "tokenservice-cli/1.4 grpc-go/1.85.0",
			RequestID: fmt.Sprintf("01JF%022d", i), TraceID: fmt.Sprintf("%032x", i)}}).
		With("jti", fmt.Sprintf("%022d", i)).With("aud", "https://api.example.com").With("scope", "orders:read orders:write").With("generation", "0")
}

// writeTrail writes and seals n typical events.
func writeTrail(b *testing.B, st *store.Store, n int) {
	b.Helper()
	ctx := context.Background()
	rec := audit.NewRecorder(st, slog.New(slog.DiscardHandler), nil)
	sealer := audit.NewSealer(st, nil, slog.New(slog.DiscardHandler), nil)
	start := time.Now().Add(-time.Hour)
	for i := range n {
		rec.Record(typical(i, start.Add(time.Duration(i)*time.Millisecond)))
		if (i+1)%5000 == 0 || i == n-1 {
			if err := rec.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			if err := sealer.Seal(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// storedBytes returns the bytes audit_events takes, rows and indexes.
func storedBytes(b *testing.B, st *store.Store, driver string) int64 {
	b.Helper()
	var n int64
	switch driver {
	case store.DriverMySQL:
		if _, err := st.DB().Exec("ANALYZE TABLE audit_events"); err != nil {
			b.Fatal(err)
		}
		var data, index int64
		err := st.DB().QueryRow("SELECT data_length, index_length FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'audit_events'").Scan(&data, &index)
		b.Logf("data %d, indexes %d", data, index)
		n = data + index
		if err != nil {
			b.Fatal(err)
		}
	default:
		// The whole file, after a VACUUM: every other table is near empty.
		var pages, size int64
		if _, err := st.DB().Exec("VACUUM"); err != nil {
			b.Fatal(err)
		}
		if err := st.DB().QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
			b.Fatal(err)
		}
		if err := st.DB().QueryRow("PRAGMA page_size").Scan(&size); err != nil {
			b.Fatal(err)
		}
		n = pages * size
	}
	return n
}

// BenchmarkAuditTrail reports the bytes a typical event takes stored,
// with its indexes (B/event), and how long audit verify takes per million
// events (s/Mevent). Each iteration verifies the whole trail.
func BenchmarkAuditTrail(b *testing.B) {
	for _, driver := range []string{store.DriverSQLite, store.DriverMySQL} {
		b.Run(driver, func(b *testing.B) {
			st := storetest.MustOpen(b, driver)
			empty := storedBytes(b, st, driver)
			writeTrail(b, st, benchEvents)
			perEvent := float64(storedBytes(b, st, driver)-empty) / benchEvents
			signer, err := audit.NewSigner(make([]byte, 32))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				r, err := audit.Verify(ctx, st, signer, nil)
				if err != nil || !r.OK() || r.Events != benchEvents {
					b.Fatalf("Verify = %+v, %v", r, err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e6/benchEvents, "s/Mevent")
			b.ReportMetric(perEvent, "B/event")
		})
	}
}
