package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenservice/tokenservice/pkg/audit"
)

// auditCommand holds the audit trail's commands: list is a client
// command (it asks a server); verify and checkpoint are server-side: they
// open the database (with serve's database flags) and the checkpoints'
// key, which is sealed under the key-encryption key when serve has one.
func auditCommand(e *env) *cobra.Command {
	cmd := group("audit", "Read the audit trail; verify it and sign checkpoints of it, in the database", groupServer)
	cmd.Long = `Read the audit trail through a server (list), or verify it and sign checkpoints of it
in the database (verify, checkpoint: with serve's database flags and, if serve has one,
its key-encryption key, which the checkpoints' key is sealed under).

Every replica signs a checkpoint of the trail every --audit-checkpoint-interval, once
the events since the last one verify. Keep checkpoints where whoever can write the
database cannot (tokenservice audit checkpoint prints one): given them, verify also
finds a trail cut short after them.`
	cmd.AddCommand(
		auditListCommand(e),
		// Only these two have the database flags: list talks to a server.
		withAuditDatabase(auditVerifyCommand(e)),
		withAuditDatabase(auditCheckpointCommand(e)),
	)
	return cmd
}

// auditKEKKey carries the key-encryption key flags to an audit subcommand.
type auditKEKKey struct{}

// withAuditDatabase gives a server-side audit command serve's database
// and key-encryption key flags, and opens the database around it.
func withAuditDatabase(cmd *cobra.Command) *cobra.Command {
	cfg := dbFlags(cmd.Flags())
	kek := kekFlags(cmd.Flags(), "serve's key-encryption key, if it has one: the checkpoints' key is sealed under it")
	fromEnv(cmd.Flags(), "key-encryption-key-file", "old-key-encryption-key-file")
	run := withDatabase(cfg, cmd.RunE)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cmd.SetContext(context.WithValue(cmd.Context(), auditKEKKey{}, kek))
		return run(cmd, args)
	}
	return cmd
}

// auditSigner loads the checkpoints' key from the database, opened with
// the key-encryption key flags.
func auditSigner(cmd *cobra.Command) (*audit.Signer, error) {
	current, old, err := cmd.Context().Value(auditKEKKey{}).(*kekFiles).load()
	if err != nil {
		return nil, err
	}
	s, err := databaseOf(cmd).AuditSigner(cmd.Context(), current, old)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func auditVerifyCommand(e *env) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "verify [--checkpoint FILE]...",
		Short: "Walk the stored audit trail and exit non-zero at the first event or checkpoint that does not verify",
		Long: `Walk the stored audit trail from its first kept event to its head: each event's place
and chain hash, every checkpoint the replicas stored, and each --checkpoint given.
It exits 0 and says what it verified, or exits 1 naming the first sequence number
that does not verify and why: an event edited, removed or reordered, a checkpoint
forged or not matching, a trail cut short.

A trail cut short and its head moved back with it (by someone who can write the
database) verifies on its own: --checkpoint FILE, a checkpoint printed by
tokenservice audit checkpoint and kept elsewhere, finds it. A file holds one
checkpoint or several, one a line; give the newest you kept. Events older than
serve's --audit-retention are deleted: the trail verifies from the first kept.

Events that replicas seal while it runs are left to the next run. Run it on a
schedule (a Kubernetes CronJob, a systemd timer): a non-zero exit is the alert.`,
		Example: `  tokenservice audit verify --checkpoint /mnt/worm/audit-checkpoints.jws`,
		Args:    args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var exported []string
			for _, f := range files {
				jws, err := readCheckpoints(f)
				if err != nil {
					return err
				}
				exported = append(exported, jws...)
			}
			signer, err := auditSigner(cmd)
			if err != nil {
				return err
			}
			start := time.Now()
			r, err := audit.Verify(cmd.Context(), databaseOf(cmd).AuditTrail(), signer, exported)
			if err != nil {
				return fmt.Errorf("reading the audit trail: %w", err)
			}
			if !r.OK() {
				if r.BadSeq == 0 {
					return fmt.Errorf("the audit trail does not verify: %s", r.Problem)
				}
				return fmt.Errorf("the audit trail does not verify at sequence number %d: %s", r.BadSeq, r.Problem)
			}
			took := time.Since(start).Round(time.Millisecond)
			switch {
			case r.LastSeq == 0:
				fmt.Fprintf(e.stdout, "the audit trail is empty: no event sealed yet (%d checkpoints given)\n", len(exported))
			case r.Events == 0:
				fmt.Fprintf(e.stdout, "the audit trail verifies: no event kept (all %d were past retention), the head matches; %d checkpoints matched\n", r.LastSeq, r.Checkpoints)
			default:
				fmt.Fprintf(e.stdout, "the audit trail verifies: %d events, sequence numbers %d to %d; %d checkpoints matched (%d given on the command line); %s\n",
					r.Events, r.FirstSeq, r.LastSeq, r.Checkpoints, len(exported), took)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&files, "checkpoint", nil, "a file of checkpoints printed by tokenservice audit checkpoint, one a line (repeatable)")
	return cmd
}

// maxCheckpointFile bounds a --checkpoint file: a checkpoint is about 300 bytes.
const maxCheckpointFile = 16 << 20

// readCheckpoints reads a --checkpoint file: compact JWSs, one a line;
// blank lines and lines starting with # are skipped.
func readCheckpoints(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--checkpoint: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCheckpointFile+1))
	if err != nil {
		return nil, fmt.Errorf("--checkpoint: %w", err)
	}
	if len(b) > maxCheckpointFile {
		return nil, fmt.Errorf("--checkpoint %s: a file of checkpoints is at most 16 MiB", path)
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Count(line, ".") != 2 {
			return nil, fmt.Errorf("--checkpoint %s, line %d: not a checkpoint (tokenservice audit checkpoint prints one a line)", path, i+1)
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--checkpoint %s: no checkpoint in it", path)
	}
	return out, nil
}

func auditCheckpointCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Sign a checkpoint of the audit trail's head now, store it, and print it to keep elsewhere",
		Long: `Verify the events since the last checkpoint, then sign a checkpoint of the trail's head
(its sequence number, chain hash and the time), store it as the replicas do, and print
it on stdout: one line, a compact JWS signed by the trail's key.

Keep what it prints where whoever can write the database cannot: WORM storage (an
S3 bucket with Object Lock, say), a ticket, another system's log. Appending each to
one file makes a file for tokenservice audit verify --checkpoint. With it, verify
finds a trail cut short after the checkpoint even if its head and stored checkpoints
were moved back with it.

If the events since the last checkpoint do not verify, it signs nothing and exits 1
naming the first bad sequence number.`,
		Example: `  tokenservice audit checkpoint >> /mnt/worm/audit-checkpoints.jws`,
		Args:    args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			signer, err := auditSigner(cmd)
			if err != nil {
				return err
			}
			c, err := audit.Checkpoint(cmd.Context(), databaseOf(cmd).AuditTrail(), signer, time.Now())
			var broken *audit.BrokenError
			if errors.As(err, &broken) {
				return fmt.Errorf("nothing signed: %w", err)
			}
			if err != nil {
				return err
			}
			if c.Seq == 0 {
				return errors.New("nothing to sign: no audit event has been sealed yet")
			}
			fmt.Fprintln(e.stdout, c.JWS)
			fmt.Fprintf(e.stderr, "signed a checkpoint of sequence number %d at %s\n", c.Seq, c.Time.Format(time.RFC3339))
			return nil
		},
	}
}
