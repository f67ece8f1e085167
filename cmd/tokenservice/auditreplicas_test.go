package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// The audit trail is one chain however many replicas write and seal it:
// the tests here run replicas sealing at once while events are written
// through each, then check the chain on the database (sequence numbers 1
// to N, no gap, no duplicate, every event written in it exactly once), the
// replicas' --audit-log files (each event shipped by exactly one replica)
// and audit verify.

// auditLogEnv gives each of n replicas an --audit-log file of its own, and
// a checkpoint (with the tail's verification) every 100ms: checkpoints
// are signed while the others seal.
func auditLogEnv(t *testing.T, n int) (files []string, env func(i int) []string) {
	dir := t.TempDir()
	for i := range n {
		files = append(files, filepath.Join(dir, fmt.Sprintf("audit-%d.jsonl", i)))
	}
	return files, func(i int) []string {
		return []string{"TOKENSERVICE_AUDIT_LOG", files[i], "TOKENSERVICE_AUDIT_CHECKPOINT_INTERVAL", "100ms"}
	}
}

// checkNoBrokenTrail fails the test if a replica found the trail broken
// (a false alarm: nobody edited it) or dropped events. (A checkpoint or a
// seal that lost a conflict is a warning, retried at the next interval.)
func checkNoBrokenTrail(t *testing.T, rs []*service) {
	t.Helper()
	for i, s := range rs {
		for _, l := range s.logs.JSONLines() {
			if msg, _ := l["msg"].(string); strings.Contains(msg, "audit") && l["level"] == "ERROR" {
				t.Errorf("replica %d logged: %v", i, l)
			}
		}
	}
}

// writeWhileSealing writes per events through each replica's database
// (dbs[i] for rs[i], as its recorder does: batches of 10, tagged with the
// writer and its count) while every replica seals without pause; then each
// seals what is left. It returns the tags written.
func writeWhileSealing(t *testing.T, rs []*service, dbs []store.Config, per int) map[string]bool {
	t.Helper()
	ctx := context.Background()
	stop := make(chan struct{})
	var sealers sync.WaitGroup
	for _, s := range rs {
		sealers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					s.app.FlushAudit(ctx)
				}
			}
		})
	}
	written := map[string]bool{}
	var mu sync.Mutex
	errs := atOnce(len(rs), func(i int) error {
		st, err := store.Open(dbs[i])
		if err != nil {
			return err
		}
		defer st.Close()
		for b := 0; b < per; b += 10 {
			var batch []*domain.AuditEvent
			for n := b; n < min(b+10, per); n++ {
				tag := fmt.Sprintf("%d-%d", i, n)
				batch = append(batch, (&domain.AuditEvent{Time: time.Now(), Action: domain.ActionRequestDeny, Outcome: domain.OutcomeDenied,
					Actor: domain.AuditParty{Kind: domain.ActorAnonymous}}).With("tag", tag))
				mu.Lock()
				written[tag] = true
				mu.Unlock()
			}
			if err := st.AppendAuditEvents(ctx, batch); err != nil {
				return fmt.Errorf("writer %d: %w", i, err)
			}
		}
		return nil
	})
	close(stop)
	sealers.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writing through replica %d: %v", i, err)
		}
	}
	// Then turns by design (sealing at once, one replica may win every
	// round): each replica seals a batch written through its node just
	// before, so every replica seals some of the chain.
	for i, s := range rs {
		st, err := store.Open(dbs[i])
		if err != nil {
			t.Fatal(err)
		}
		var batch []*domain.AuditEvent
		for n := range 5 {
			tag := fmt.Sprintf("turn-%d-%d", i, n)
			batch = append(batch, (&domain.AuditEvent{Time: time.Now(), Action: domain.ActionRequestDeny, Outcome: domain.OutcomeDenied,
				Actor: domain.AuditParty{Kind: domain.ActorAnonymous}}).With("tag", tag))
			written[tag] = true
		}
		err = st.AppendAuditEvents(ctx, batch)
		st.Close()
		if err != nil {
			t.Fatalf("writing replica %d's turn: %v", i, err)
		}
		s.app.FlushAudit(ctx)
		s.app.FlushAudit(ctx) // again, should the first have lost a conflict (it logs and counts that)
	}
	return written
}

// checkOneChain checks the sealed trail on db: sequence numbers 1 to N
// with no gap or duplicate, nothing left unsealed, every tag written there
// exactly once. It returns N.
func checkOneChain(t *testing.T, db store.Config, written map[string]bool) int64 {
	t.Helper()
	ctx := context.Background()
	st := storetest.MustOpenConfig(t, db)
	var unsealed int
	if err := st.DB().QueryRow("SELECT COUNT(*) FROM audit_events WHERE seq = 0").Scan(&unsealed); err != nil {
		t.Fatal(err)
	}
	if unsealed != 0 {
		t.Errorf("%d events left unsealed", unsealed)
	}
	events, err := st.AuditEventsFrom(ctx, 1, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d of the trail has sequence number %d: a gap or a duplicate", i+1, e.Seq)
		}
		if tag := e.Details["tag"]; tag != "" {
			seen[tag]++
		}
	}
	for tag := range written {
		if seen[tag] != 1 {
			t.Errorf("event %s is in the chain %d times, want once", tag, seen[tag])
		}
	}
	if len(seen) != len(written) {
		t.Errorf("%d tagged events in the chain, %d written", len(seen), len(written))
	}
	chain, err := st.AuditChain(ctx)
	if err != nil || chain.LastSeq != int64(len(events)) {
		t.Errorf("the chain's head %d (%v), want the last event %d", chain.LastSeq, err, len(events))
	}
	return int64(len(events))
}

// checkShipped checks that the replicas' --audit-log files hold each of
// the n events of the trail exactly once between them.
func checkShipped(t *testing.T, files []string, n int64) {
	t.Helper()
	count := map[int64]int{}
	sealers := 0
	for _, name := range files {
		before := len(count)
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var l audit.Line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("%s: %q: %v", name, sc.Text(), err)
			}
			count[l.Seq]++
		}
		f.Close()
		if len(count) > before {
			sealers++
		}
		t.Logf("%s: %d events", filepath.Base(name), len(count)-before)
	}
	if sealers < 2 {
		t.Errorf("%d replica sealed every event: the test did not make them take turns", sealers)
	}
	for seq := int64(1); seq <= n; seq++ {
		if count[seq] != 1 {
			t.Errorf("event %d shipped %d times by the replicas, want once", seq, count[seq])
		}
	}
	if int64(len(count)) != n {
		t.Errorf("the replicas shipped %d sequence numbers, the trail has %d", len(count), n)
	}
}

func TestOneAuditChainFromTwoReplicasOnMySQL(t *testing.T) {
	db := storetest.MustConfig(t, "mysql")
	files, env := auditLogEnv(t, 2)
	rs := []*service{startService(t, db, env(0)...), startService(t, db, env(1)...)}
	written := writeWhileSealing(t, rs, []store.Config{db, db}, 300)
	n := checkOneChain(t, db, written)
	checkShipped(t, files, n)
	checkNoBrokenTrail(t, rs)
	out := (&shell{t: t, env: rs[0].env}).must("", "audit", "verify")
	t.Logf("%d events sealed by two replicas; %s", n, out)
}
