package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenservice/tokenservice/internal/testlog"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// scrape returns the value of a metric without labels.
func scrape(t *testing.T, addr, name string) float64 {
	t.Helper()
	for _, m := range scrapeFamilies(t, addr)[name].GetMetric() {
		return m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return 0
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}

// A replica signs no checkpoint over events edited since the last one: it
// counts the refusal (the alert's metric) and logs where the trail broke.
func TestAppRefusesToCheckpointAnEditedTrail(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		cfg := apptest.Config(t, driver)
		cfg.Server.MetricsAddr = "127.0.0.1:0"
		cfg.Audit.FlushInterval = 20 * time.Millisecond
		// Long enough that the edit below lands between two checkpoints:
		// an edit at or before the newest is the full verification's.
		cfg.Audit.CheckpointInterval = time.Second
		var logs *testlog.Buffer
		cfg.Logger, logs = testlog.NewJSON(slog.LevelInfo)
		a := apptest.MustStart(t, cfg)
		st, err := store.Open(cfg.Store)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		write := func(n int) {
			events := make([]*domain.AuditEvent, n)
			for i := range events {
				events[i] = &domain.AuditEvent{Time: time.Now(), Action: domain.ActionRequestDeny, Outcome: domain.OutcomeDenied, Actor: domain.AuditParty{Kind: domain.ActorAnonymous}}
			}
			if err := st.AppendAuditEvents(ctx, events); err != nil {
				t.Fatal(err)
			}
		}
		checkpointOf := func(seq int64) func() bool {
			return func() bool {
				cps, err := st.AuditCheckpoints(ctx)
				return err == nil && len(cps) > 0 && cps[len(cps)-1].Seq == seq
			}
		}
		// The service's own events first (the migrations, the first key).
		a.FlushAudit(ctx)
		chain, err := st.AuditChain(ctx)
		if err != nil {
			t.Fatal(err)
		}
		base := chain.LastSeq
		write(3)
		eventually(t, "a checkpoint of the third event", checkpointOf(base+3))
		// The gauge is set after the checkpoint's write commits: wait for it.
		eventually(t, "the checkpoint gauge to follow the checkpoint", func() bool {
			return scrape(t, a.MetricsAddr(), "tokenservice_audit_checkpoint_timestamp_seconds") >= float64(time.Now().Add(-time.Minute).Unix())
		})
		write(2)
		eventually(t, "two more sealed", func() bool {
			c, err := st.AuditChain(ctx)
			return err == nil && c.LastSeq == base+5
		})
		// Edited in the database before the next checkpoint.
		if _, err := st.DB().Exec("UPDATE audit_events SET outcome = 'success' WHERE seq = ?", base+5); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the refusal counted", func() bool {
			return scrape(t, a.MetricsAddr(), "tokenservice_audit_verification_failures_total") >= 1
		})
		found := false
		for _, l := range logs.JSONLines() {
			if l["level"] == "ERROR" && l["seq"] == float64(base+5) {
				found = true
			}
		}
		if !found {
			t.Errorf("no error logged naming sequence number %d:\n%s", base+5, logs)
		}
		if checkpointOf(base + 5)() {
			t.Error("a checkpoint of the edited trail was signed")
		}
	})
}

// A server's start on a fresh database records what it did on its own, as
// the service: the migrations it applied, the first signing key it made.
func TestServeRecordsItsOwnStart(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		cfg := apptest.Config(t, driver)
		a := apptest.MustStart(t, cfg)
		a.FlushAudit(ctx)
		st := storetest.MustOpenConfig(t, cfg.Store)
		events, err := st.AuditEventsFrom(ctx, 1, 10)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := st.SigningKeys(ctx)
		if err != nil || len(keys) != 1 {
			t.Fatalf("%d keys, %v", len(keys), err)
		}
		ids := store.MigrationIDs()
		want := []string{
			fmt.Sprintf(`database.migrate by service {"count":"%d","from":"none","to":"%s"}`, len(ids), ids[len(ids)-1]),
			fmt.Sprintf(`signing_key.add by service {"activate_time":"%s","kid":"%s"}`, keys[0].CreateTime.Format(time.RFC3339), keys[0].ID),
		}
		var got []string
		for _, e := range events {
			b, _ := json.Marshal(e.Details)
			got = append(got, fmt.Sprintf("%s by %s %s", e.Action, e.Actor.Kind, b))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("events of a start (-want +got):\n%s", diff)
		}
	})
}
