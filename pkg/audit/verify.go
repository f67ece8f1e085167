package audit

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// verifyBatch is how many events Verify reads at a time.
const verifyBatch = 5000

// Report is what Verify found.
type Report struct {
	FirstSeq, LastSeq int64 // the trail verified: from the anchor to the head
	Events            int64
	Checkpoints       int // stored and exported checkpoints that matched
	// BadSeq is the first sequence number that does not verify, and
	// Problem says why; 0 and "": the trail verifies.
	BadSeq  int64
	Problem string
}

// OK reports whether the trail verified.
func (r Report) OK() bool { return r.Problem == "" }

// Verify walks the stored trail from its anchor, checking each event's
// place and chain hash, the chain's head, every stored checkpoint and
// each exported one (a JWS that `audit checkpoint` printed). It stops at
// the first problem: an event edited, removed or reordered; a checkpoint
// forged or not matching; a trail cut short before the head or an
// exported checkpoint. The error is for a trail it could not read.
func Verify(ctx context.Context, trail domain.AuditTrail, signer *Signer, exported []string) (Report, error) {
	chain, err := trail.AuditChain(ctx)
	if err != nil {
		return Report{}, err
	}
	r := Report{FirstSeq: chain.FirstSeq}
	stored, err := trail.AuditCheckpoints(ctx)
	if err != nil {
		return Report{}, err
	}
	// Every checkpoint to check, by the seq it is of.
	checks := map[int64][]domain.AuditCheckpoint{}
	for _, c := range stored {
		signed, err := signer.Open(c.JWS)
		if err != nil {
			return r.fail(c.Seq, "the stored checkpoint of sequence number %d is forged: %v", c.Seq, err), nil
		}
		if !sameCheckpoint(c, signed) {
			return r.fail(c.Seq, "the stored checkpoint of sequence number %d was edited: its columns say other than its signed statement", c.Seq), nil
		}
		if c.Seq >= chain.FirstSeq {
			checks[c.Seq] = append(checks[c.Seq], signed)
		}
	}
	for i, jws := range exported {
		signed, err := signer.Open(jws)
		if err != nil {
			return r.fail(0, "exported checkpoint %d: %v", i+1, err), nil
		}
		if signed.Seq < chain.FirstSeq {
			continue // its events are past retention: nothing left to compare
		}
		checks[signed.Seq] = append(checks[signed.Seq], signed)
	}

	prev, next := chain.AnchorHash, chain.FirstSeq
	for {
		events, err := trail.AuditEventsFrom(ctx, next, verifyBatch)
		if err != nil {
			return Report{}, err
		}
		for _, e := range events {
			if e.Seq != next {
				return r.fail(next, "event %d is missing: the trail goes from %d to %d (removed, or renumbered)", next, next-1, e.Seq), nil
			}
			want := domain.ChainHash(prev, e.Seq, e.ContentHash())
			if !bytes.Equal(want, e.ChainHash) {
				return r.fail(e.Seq, "event %d does not match its chain hash: it was edited, or moved from another place", e.Seq), nil
			}
			for _, c := range checks[e.Seq] {
				if !bytes.Equal(c.ChainHash, e.ChainHash) {
					return r.fail(e.Seq, "the checkpoint of sequence number %d (signed %s) does not match the trail: an event at or before it was changed and the chain recomputed",
						e.Seq, c.Time.Format(time.RFC3339)), nil
				}
				r.Checkpoints++
			}
			prev, next = e.ChainHash, e.Seq+1
			r.Events++
		}
		if len(events) < verifyBatch {
			break
		}
	}
	r.LastSeq = next - 1
	for seq, cs := range checks {
		if seq > r.LastSeq {
			return r.fail(r.LastSeq+1, "the trail was cut short: it ends at %d, but a checkpoint signed %s covers events up to %d",
				r.LastSeq, cs[0].Time.Format(time.RFC3339), seq), nil
		}
	}
	switch {
	case chain.LastSeq > r.LastSeq:
		return r.fail(r.LastSeq+1, "the trail was cut short: it ends at %d, but the chain's head is %d", r.LastSeq, chain.LastSeq), nil
	case chain.LastSeq < r.LastSeq:
		return r.fail(chain.LastSeq+1, "events after the chain's head (%d) were added: the trail goes on to %d", chain.LastSeq, r.LastSeq), nil
	case !bytes.Equal(chain.LastHash, prev):
		return r.fail(chain.LastSeq, "the chain's head does not match its last event %d", chain.LastSeq), nil
	}
	return r, nil
}

func (r Report) fail(seq int64, format string, args ...any) Report {
	r.BadSeq = seq
	r.Problem = fmt.Sprintf(format, args...)
	return r
}

// Checkpoint signs the chain's head and stores the checkpoint; with no
// event sealed yet it writes none and returns a zero checkpoint.
func Checkpoint(ctx context.Context, trail domain.AuditTrail, signer *Signer, now time.Time) (domain.AuditCheckpoint, error) {
	chain, err := trail.AuditChain(ctx)
	if err != nil || chain.LastSeq == 0 {
		return domain.AuditCheckpoint{}, err
	}
	c, err := signer.Sign(chain.LastSeq, chain.LastHash, now)
	if err != nil {
		return domain.AuditCheckpoint{}, err
	}
	return c, trail.AddAuditCheckpoint(ctx, c)
}

// trimBatch bounds the events one retention transaction deletes.
const trimBatch = 1000

// Trim deletes the events older than retention, oldest first, and
// returns how many it deleted.
func Trim(ctx context.Context, trail domain.AuditTrail, retention time.Duration, now time.Time) (int, error) {
	total := 0
	for {
		n, err := trail.TrimAuditEvents(ctx, now.Add(-retention), trimBatch)
		total += n
		if err != nil || n < trimBatch {
			return total, err
		}
	}
}
