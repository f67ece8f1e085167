package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// auditTrail is a database with a sealed audit trail, the store to tamper
// with it, and an operator's shell pointed at it.
type auditTrail struct {
	st *store.Store
	op *shell
}

// newAuditTrail writes n events, one a second from start, on a fresh
// database of driver, and seals them.
func newAuditTrail(t *testing.T, driver string, n int, start time.Time) auditTrail {
	t.Helper()
	cfg := storetest.MustConfig(t, driver)
	st := storetest.MustOpenConfig(t, cfg)
	tr := auditTrail{st: st, op: &shell{t: t, env: map[string]string{"TOKENSERVICE_DB_DRIVER": cfg.Driver, "TOKENSERVICE_DB_DSN": cfg.DSN}}}
	tr.write(t, n, start)
	return tr
}

// write writes n events and seals them.
func (tr auditTrail) write(t *testing.T, n int, start time.Time) {
	t.Helper()
	tr.record(t, n, start)
	if err := audit.NewSealer(tr.st, nil, slog.New(slog.DiscardHandler), nil).Seal(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// record writes n events, as a replica's recorder does, leaving them to
// be sealed.
func (tr auditTrail) record(t *testing.T, n int, start time.Time) {
	t.Helper()
	ctx := context.Background()
	rec := audit.NewRecorder(tr.st, slog.New(slog.DiscardHandler), nil)
	for i := range n {
		rec.Record((&domain.AuditEvent{Time: start.Add(time.Duration(i) * time.Second), Action: domain.ActionAccessTokenMint, Outcome: domain.OutcomeSuccess,
			Actor:  domain.AuditParty{Kind: domain.ActorUser, UserID: "u1", Username: "alice", TokenID: fmt.Sprintf("tok%03d", i)},
			Origin: domain.Origin{ClientAddress: "192.0.2.1", UserAgent: "test"}}).With("jti", fmt.Sprint(i)))
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// signer returns the trail's checkpoint key, as a replica loads it (made
// if the database has none yet).
func (tr auditTrail) signer(t *testing.T) *audit.Signer {
	t.Helper()
	seed, err := tr.st.Secret(context.Background(), audit.KeySecretName, []byte(rand.Text()+rand.Text()))
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (tr auditTrail) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := tr.st.DB().Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// cutAfter deletes the events after seq, the stored checkpoints, and moves
// the chain's head back to seq: a cut that verifies on its own.
func (tr auditTrail) cutAfter(t *testing.T, seq int64) {
	t.Helper()
	tr.exec(t, "DELETE FROM audit_events WHERE seq > ?", seq)
	tr.exec(t, "DELETE FROM audit_checkpoints")
	var hash []byte
	if err := tr.st.DB().QueryRow("SELECT chain_hash FROM audit_events WHERE seq = ?", seq).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	tr.exec(t, "UPDATE audit_chain SET last_seq = ?, last_hash = ?", seq, hash)
}

func TestAuditVerifyCommand(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		start := time.Now().Add(-time.Hour).UTC()
		for _, tc := range []struct {
			name   string
			tamper func(t *testing.T, tr auditTrail)
			says   string // on stderr, exit 1; "": verifies
		}{
			{name: "intact", tamper: func(*testing.T, auditTrail) {}},
			{name: "edited", says: "does not verify at sequence number 4: event 4 does not match its chain hash",
				tamper: func(t *testing.T, tr auditTrail) {
					tr.exec(t, "UPDATE audit_events SET actor_username = 'mallory' WHERE seq = 4")
				}},
			{name: "removed", says: "does not verify at sequence number 5: event 5 is missing",
				tamper: func(t *testing.T, tr auditTrail) { tr.exec(t, "DELETE FROM audit_events WHERE seq = 5") }},
			{name: "reordered", says: "does not verify at sequence number 3: event 3 does not match its chain hash",
				tamper: func(t *testing.T, tr auditTrail) {
					tr.exec(t, "UPDATE audit_events SET seq = -1 WHERE seq = 3")
					tr.exec(t, "UPDATE audit_events SET seq = 3 WHERE seq = 6")
					tr.exec(t, "UPDATE audit_events SET seq = 6 WHERE seq = -1")
				}},
			{name: "forged checkpoint", says: "does not verify at sequence number 7: the stored checkpoint of sequence number 7 is forged",
				tamper: func(t *testing.T, tr auditTrail) {
					other, err := audit.NewSigner([]byte(rand.Text() + rand.Text()))
					if err != nil {
						t.Fatal(err)
					}
					var hash []byte
					if err := tr.st.DB().QueryRow("SELECT chain_hash FROM audit_events WHERE seq = 7").Scan(&hash); err != nil {
						t.Fatal(err)
					}
					forged, err := other.Sign(7, hash, time.Now())
					if err != nil {
						t.Fatal(err)
					}
					if err := tr.st.AddAuditCheckpoint(context.Background(), forged); err != nil {
						t.Fatal(err)
					}
				}},
			{name: "cut short", says: "does not verify at sequence number 9: the trail was cut short: it ends at 8, but the chain's head is 10",
				tamper: func(t *testing.T, tr auditTrail) { tr.exec(t, "DELETE FROM audit_events WHERE seq > 8") }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tr := newAuditTrail(t, driver, 10, start)
				tc.tamper(t, tr)
				if tc.says == "" {
					out := tr.op.must("", "audit", "verify")
					if want := "the audit trail verifies: 10 events, sequence numbers 1 to 10; 0 checkpoints matched"; !strings.Contains(out, want) {
						t.Errorf("audit verify said %q, want %q", out, want)
					}
					return
				}
				tr.op.want(exitError, tc.says, "", "audit", "verify")
			})
		}
	})
}

// A checkpoint printed by audit checkpoint, kept elsewhere, finds a trail
// cut after it even when the head and the stored checkpoints moved back.
func TestAuditVerifyWithAnExportedCheckpoint(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		tr := newAuditTrail(t, driver, 6, time.Now().UTC())
		jws := strings.TrimSpace(tr.op.must("", "audit", "checkpoint"))
		if strings.Count(jws, ".") != 2 || strings.Contains(jws, "\n") {
			t.Fatalf("audit checkpoint printed %q, want one compact JWS", jws)
		}
		file := filepath.Join(t.TempDir(), "checkpoints.jws")
		if err := os.WriteFile(file, []byte("# kept on WORM storage\n"+jws+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out := tr.op.must("", "audit", "verify", "--checkpoint", file)
		if want := "6 events, sequence numbers 1 to 6; 2 checkpoints matched (1 given on the command line)"; !strings.Contains(out, want) {
			t.Errorf("audit verify --checkpoint said %q, want %q", out, want)
		}
		tr.cutAfter(t, 4)
		tr.op.must("", "audit", "verify") // by design: nothing left in the database tells
		tr.op.want(exitError, "does not verify at sequence number 5: the trail was cut short: it ends at 4, but a checkpoint signed", "", "audit", "verify", "--checkpoint", file)

		// Bad input: each a clear error, nothing verified.
		junk := filepath.Join(t.TempDir(), "junk")
		if err := os.WriteFile(junk, []byte("not a checkpoint\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tr.op.want(exitError, "--checkpoint "+junk+", line 1: not a checkpoint", "", "audit", "verify", "--checkpoint", junk)
		tr.op.want(exitError, "--checkpoint: open /nonexistent/cp.jws: no such file or directory", "", "audit", "verify", "--checkpoint", "/nonexistent/cp.jws")
		other, _ := audit.NewSigner([]byte(rand.Text() + rand.Text()))
		forged, _ := other.Sign(4, make([]byte, 32), time.Now())
		if err := os.WriteFile(junk, []byte(forged.JWS+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tr.op.want(exitError, "the audit trail does not verify: exported checkpoint 1: the checkpoint's signature does not verify with this trail's key", "", "audit", "verify", "--checkpoint", junk)
	})
}

// After retention deleted the oldest events, the trail verifies from the
// first kept, against the checkpoints of kept events.
func TestAuditVerifyAfterRetention(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		now := time.Now().UTC()
		tr := newAuditTrail(t, driver, 10, now.Add(-10*time.Second))
		tr.op.must("", "audit", "checkpoint")
		if n, err := audit.Trim(context.Background(), tr.st, tr.signer(t), 5*time.Second+500*time.Millisecond, now); err != nil || n != 5 {
			t.Fatalf("Trim = %d, %v; want the 5 oldest", n, err)
		}
		out := tr.op.must("", "audit", "verify")
		if want := "5 events, sequence numbers 6 to 10; 1 checkpoints matched"; !strings.Contains(out, want) {
			t.Errorf("audit verify after retention said %q, want %q", out, want)
		}
	})
}

// audit checkpoint signs only a tail that verifies, and an empty trail has
// nothing to sign.
func TestAuditCheckpointCommand(t *testing.T) {
	tr := newAuditTrail(t, "sqlite", 0, time.Now())
	tr.op.want(exitError, "nothing to sign: no audit event has been sealed yet", "", "audit", "checkpoint")
	tr.write(t, 3, time.Now())
	tr.op.must("", "audit", "checkpoint")
	tr.write(t, 3, time.Now())
	tr.exec(t, "UPDATE audit_events SET action = 'user.delete' WHERE seq = 5")
	tr.op.want(exitError, "nothing signed: the audit trail does not verify at sequence number 5", "", "audit", "checkpoint")
}

// The checkpoints' key is sealed under serve's key-encryption key: the
// commands need it, and say so when it is missing.
func TestAuditCommandsNeedTheKeyEncryptionKey(t *testing.T) {
	tr := newAuditTrail(t, "sqlite", 3, time.Now())
	kek := mustKEKFile(t)
	tr.op.must("", "audit", "checkpoint", "--key-encryption-key-file", kek) // makes the key, sealed
	tr.op.want(exitError, "--key-encryption-key-file", "", "audit", "verify")
	withVar := &shell{t: t, env: map[string]string{"TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE": kek}}
	for k, v := range tr.op.env {
		withVar.env[k] = v
	}
	withVar.must("", "audit", "verify")
}

// A replica's --audit-log receives every event it seals as a JSON line, in
// a file it creates mode 0600 and appends to; the trail it wrote verifies.
func TestAuditLogReceivesSealedEvents(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		db := storetest.MustConfig(t, driver)
		file := filepath.Join(t.TempDir(), "audit.jsonl")
		if err := os.WriteFile(file, []byte("{\"seq\":0}\n"), 0o600); err != nil { // a line of an earlier run
			t.Fatal(err)
		}
		s := startService(t, db, "TOKENSERVICE_AUDIT_LOG", file)
		st := storetest.MustOpenConfig(t, db)
		tr := auditTrail{st: st}
		tr.record(t, 5, time.Now())
		s.app.FlushAudit(context.Background())
		if err := s.shutdown(); err != nil {
			t.Fatal(err)
		}
		chain, err := st.AuditChain(context.Background())
		if err != nil || chain.LastSeq < 5 {
			t.Fatalf("chain %+v, %v; want 5 events sealed at least", chain, err)
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		info, _ := f.Stat()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("--audit-log mode %04o, want 0600", info.Mode().Perm())
		}
		var lines []audit.Line
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var l audit.Line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
			}
			lines = append(lines, l)
		}
		if len(lines) != int(chain.LastSeq)+1 || lines[0].Seq != 0 {
			t.Fatalf("%d lines, want the earlier run's and one per event sealed (%d)", len(lines), chain.LastSeq)
		}
		mints := 0
		for i, l := range lines[1:] {
			if l.Seq != int64(i+1) || l.ChainHash == "" || l.Time == "" || l.Action == "" {
				t.Errorf("line %d: %+v", i+2, l)
			}
			if l.Action == string(domain.ActionAccessTokenMint) && l.Actor.Username == "alice" && l.Details["jti"] != "" && l.ClientAddress == "192.0.2.1" {
				mints++
			}
		}
		if mints != 5 {
			t.Errorf("%d lines of the 5 events written", mints)
		}
		op := &shell{t: t, env: s.env}
		op.must("", "audit", "verify")
	})
}

// eventLine is what TestServerSideCommandsAreRecorded asserts of an event.
func eventLine(e *domain.AuditEvent) string {
	b, _ := json.Marshal(e.Details)
	return fmt.Sprintf("%s %s by %s %s", e.Action, e.Outcome, e.Actor.Kind, b)
}

// The server-side commands record what they change, as the operator, with
// no origin (no client, request or trace: a command line); the service's
// own changes (the first signing key) as the service.
func TestServerSideCommandsAreRecorded(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		db := storetest.MustConfig(t, driver)
		op := &shell{t: t, env: map[string]string{"TOKENSERVICE_DB_DRIVER": db.Driver, "TOKENSERVICE_DB_DSN": db.DSN}}
		op.must("", "db", "migrate")
		op.must("", "db", "migrate") // nothing applied: nothing recorded
		s := startService(t, db)     // makes the first signing key
		kid1 := jwksKIDs(t, s)[0]
		op.must("", "keys", "rotate")
		if err := s.shutdown(); err != nil {
			t.Fatal(err)
		}
		st := storetest.MustOpenConfig(t, db)
		keys, err := st.SigningKeys(ctx)
		if err != nil || len(keys) != 2 {
			t.Fatalf("%d signing keys, %v; want 2", len(keys), err)
		}
		kid2 := keys[1].ID
		op.must("", "keys", "delete", kid2)
		kek := mustKEKFile(t)
		op.must("", "keys", "reseal", "--key-encryption-key-file", kek)
		// The user commands go through pkg/users as users.Operator(), which
		// records their events (their details are asserted there); here:
		// each is there, as the operator, with no origin, like every
		// operator's event below.
		op.must(password+"\n", "db", "create-user", "--admin", "olga")
		op.must(password+"2\n", "db", "set-password", "olga")
		op.must("", "db", "delete-user", "olga")
		tr := auditTrail{st: st}
		tr.write(t, 0, time.Now()) // seal what is written

		events, err := st.AuditEventsFrom(ctx, 1, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got, userActions []string
		for _, e := range events {
			if e.Action == domain.ActionSigningKeyAdd || e.Action == domain.ActionSigningKeyRet {
				delete(e.Details, "activate_time") // times: checked in pkg/auth
				delete(e.Details, "retire_time")
			}
			if strings.HasPrefix(string(e.Action), "user.") {
				userActions = append(userActions, string(e.Action)+" by "+e.Actor.Kind)
			} else {
				got = append(got, eventLine(e))
			}
			if e.Actor.Kind == domain.ActorOperator && (e.Origin != domain.Origin{} || e.Actor.UserID != "") {
				t.Errorf("%s: an operator's event with origin %+v, actor %+v", e.Action, e.Origin, e.Actor)
			}
		}
		secrets := 0
		if err := st.DB().QueryRow("SELECT COUNT(*) FROM server_secrets").Scan(&secrets); err != nil {
			t.Fatal(err)
		}
		migrations := store.MigrationIDs()
		want := []string{
			fmt.Sprintf(`database.migrate success by operator {"count":"%d","from":"none","to":"%s"}`, len(migrations), migrations[len(migrations)-1]),
			`signing_key.add success by service {"kid":"` + kid1 + `"}`,
			`signing_key.add success by operator {"kid":"` + kid2 + `"}`,
			`signing_key.retire success by operator {"kid":"` + kid1 + `","replaced_by":"` + kid2 + `"}`,
			`signing_key.delete success by operator {"forced":"false","kid":"` + kid2 + `","state":"pending"}`,
			fmt.Sprintf(`keys.reseal success by operator {"values":"%d"}`, 1+secrets),
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"user.create by operator", "user.change_password by operator", "user.delete by operator"}, userActions); diff != "" {
			t.Errorf("the user commands' events (-want +got):\n%s", diff)
		}
		op.must("", "audit", "verify", "--key-encryption-key-file", kek)
	})
}
