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
	FirstSeq, LastSeq int64 // the trail verified: from the anchor (or a checkpoint, for VerifyTail) to the head
	Events            int64
	Checkpoints       int // stored and exported checkpoints that matched
	// BadSeq is the first sequence number that does not verify, and
	// Problem says why; 0 and "": the trail verifies.
	BadSeq  int64
	Problem string
	// Head is the chain hash at LastSeq (the anchor's when no event is kept).
	Head []byte
}

// OK reports whether the trail verified.
func (r Report) OK() bool { return r.Problem == "" }

// BrokenError is a trail that does not verify, as an error.
type BrokenError struct{ Report Report }

func (e *BrokenError) Error() string {
	return fmt.Sprintf("the audit trail does not verify at sequence number %d: %s", e.Report.BadSeq, e.Report.Problem)
}

// Unwrap makes a BrokenError domain.ErrAuditChainBroken.
func (e *BrokenError) Unwrap() error { return domain.ErrAuditChainBroken }

// verifyAttempts bounds the walks Verify makes when retention moved the
// trail's start while it walked (every walk of a live trail may meet it).
const verifyAttempts = 3

// Verify walks the stored trail from its anchor, checking each event's
// place and chain hash, the chain's head, every stored checkpoint and
// each exported one (a JWS that `audit checkpoint` printed). It stops at
// the first problem: an event edited, removed or reordered; a checkpoint
// forged or not matching; a trail cut short before the head or an
// exported checkpoint. The error is for a trail it could not read.
//
// It verifies the trail up to the head it reads first: events that
// replicas seal meanwhile are left to the next verification, and a walk
// that retention overtook (the trail's start moved past it) is walked again.
func Verify(ctx context.Context, trail domain.AuditTrail, signer *Signer, exported []string) (Report, error) {
	for attempt := 1; ; attempt++ {
		r, chain, err := verify(ctx, trail, signer, exported, false)
		if err != nil || r.OK() || attempt == verifyAttempts {
			return r, err
		}
		after, err := trail.AuditChain(ctx)
		if err != nil {
			return Report{}, err
		}
		if after.FirstSeq == chain.FirstSeq {
			return r, nil
		}
	}
}

// VerifyTail verifies the events after the newest stored checkpoint (its
// signature checked) up to the chain's head: what is checked before a
// checkpoint is signed, so that no checkpoint vouches for a tail edited
// since the last one. With no checkpoint of a kept event, it walks the
// whole trail.
func VerifyTail(ctx context.Context, trail domain.AuditTrail, signer *Signer) (Report, error) {
	r, _, err := verify(ctx, trail, signer, nil, true)
	return r, err
}

func verify(ctx context.Context, trail domain.AuditTrail, signer *Signer, exported []string, tail bool) (Report, domain.AuditChain, error) {
	var stored []domain.AuditCheckpoint
	var chain domain.AuditChain
	var err error
	if tail {
		// The newest checkpoint at or before the head: the walk starts
		// after it (every checkpoint is checked by the full verification).
		if chain, err = trail.AuditChain(ctx); err != nil {
			return Report{}, chain, err
		}
		last, err := trail.LastAuditCheckpoint(ctx, chain.LastSeq)
		if err != nil {
			return Report{}, chain, err
		}
		if last.Seq > 0 {
			stored = []domain.AuditCheckpoint{last}
		}
	} else {
		// The checkpoints before the chain: each is of an event sealed
		// before it was stored, so all are at or before the head read next.
		if stored, err = trail.AuditCheckpoints(ctx); err != nil {
			return Report{}, chain, err
		}
		if chain, err = trail.AuditChain(ctx); err != nil {
			return Report{}, chain, err
		}
	}
	r := Report{FirstSeq: chain.FirstSeq}
	if bad := checkAnchor(chain, signer); bad != "" {
		return r.fail(chain.FirstSeq, "%s", bad), chain, nil
	}
	// Every checkpoint to check, by the seq it is of.
	checks := map[int64][]domain.AuditCheckpoint{}
	prev, next := chain.AnchorHash, chain.FirstSeq
	for _, c := range stored {
		signed, err := signer.Open(c.JWS)
		if err != nil {
			return r.fail(c.Seq, "the stored checkpoint of sequence number %d is forged: %v", c.Seq, err), chain, nil
		}
		if !sameCheckpoint(c, signed) {
			return r.fail(c.Seq, "the stored checkpoint of sequence number %d was edited: its columns say other than its signed statement", c.Seq), chain, nil
		}
		if c.Seq < chain.FirstSeq {
			if c.Seq == chain.FirstSeq-1 && !bytes.Equal(signed.ChainHash, chain.AnchorHash) {
				return r.fail(chain.FirstSeq, "the checkpoint of sequence number %d does not match the trail's anchor", c.Seq), chain, nil
			}
			continue
		}
		checks[c.Seq] = append(checks[c.Seq], signed)
		if tail {
			// Start after it: the head, or the first event walked, is
			// checked against the hash it signed.
			prev, next = signed.ChainHash, c.Seq+1
		}
	}
	r.FirstSeq = next
	for i, jws := range exported {
		signed, err := signer.Open(jws)
		if err != nil {
			return r.fail(0, "exported checkpoint %d: %v", i+1, err), chain, nil
		}
		if signed.Seq < chain.FirstSeq {
			// Its events are past retention (the anchor, signed, says
			// so): nothing left to compare but the one just before it.
			if signed.Seq == chain.FirstSeq-1 && !bytes.Equal(signed.ChainHash, chain.AnchorHash) {
				return r.fail(chain.FirstSeq, "exported checkpoint %d (of sequence number %d) does not match the trail's anchor", i+1, signed.Seq), chain, nil
			}
			continue
		}
		checks[signed.Seq] = append(checks[signed.Seq], signed)
	}

walk:
	for next <= chain.LastSeq {
		events, err := trail.AuditEventsFrom(ctx, next, min(verifyBatch, int(chain.LastSeq-next+1)))
		if err != nil {
			return Report{}, chain, err
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			if e.Seq > chain.LastSeq {
				break walk // sealed after the head was read: the next verification's
			}
			if e.Seq != next {
				return r.fail(next, "event %d is missing: the trail goes from %d to %d (removed, or renumbered)", next, next-1, e.Seq), chain, nil
			}
			want := domain.ChainHash(prev, e.Seq, e.ContentHash())
			if !bytes.Equal(want, e.ChainHash) {
				return r.fail(e.Seq, "event %d does not match its chain hash: it was edited, or moved from another place", e.Seq), chain, nil
			}
			for _, c := range checks[e.Seq] {
				if !bytes.Equal(c.ChainHash, e.ChainHash) {
					return r.fail(e.Seq, "the checkpoint of sequence number %d (signed %s) does not match the trail: an event at or before it was changed and the chain recomputed",
						e.Seq, c.Time.Format(time.RFC3339)), chain, nil
				}
				r.Checkpoints++
			}
			prev, next = e.ChainHash, e.Seq+1
			r.Events++
		}
	}
	r.LastSeq, r.Head = next-1, prev
	for seq, cs := range checks {
		if seq > r.LastSeq {
			return r.fail(r.LastSeq+1, "the trail was cut short: it ends at %d, but a checkpoint signed %s covers events up to %d",
				r.LastSeq, cs[0].Time.Format(time.RFC3339), seq), chain, nil
		}
	}
	if !tail {
		// Nothing may lie past the head: events sealed since it was read
		// follow it without a gap, up to the head as it is now.
		now, err := trail.AuditChain(ctx)
		if err != nil {
			return Report{}, chain, err
		}
		stray, err := trail.AuditEventsFrom(ctx, max(now.LastSeq, r.LastSeq)+1, 1)
		if err != nil {
			return Report{}, chain, err
		}
		if len(stray) > 0 {
			return r.fail(stray[0].Seq, "event %d lies past the chain's head (%d): it was not sealed into the chain", stray[0].Seq, now.LastSeq), chain, nil
		}
	}
	switch {
	case chain.LastSeq > r.LastSeq:
		return r.fail(r.LastSeq+1, "the trail was cut short: it ends at %d, but the chain's head is %d", r.LastSeq, chain.LastSeq), chain, nil
	case !bytes.Equal(chain.LastHash, prev):
		return r.fail(chain.LastSeq, "the chain's head does not match its last event %d", chain.LastSeq), chain, nil
	}
	return r, chain, nil
}

// checkAnchor says what is wrong with where the chain starts, "" if
// nothing: a start moved (from 1) must be retention's, which signs it.
func checkAnchor(chain domain.AuditChain, signer *Signer) string {
	if chain.FirstSeq == 1 && chain.AnchorJWS == "" && len(chain.AnchorHash) == 0 {
		return ""
	}
	first, hash, err := signer.OpenAnchor(chain.AnchorJWS)
	if err != nil {
		return fmt.Sprintf("the trail starts at %d, but retention did not move its start there: %v", chain.FirstSeq, err)
	}
	if first != chain.FirstSeq || !bytes.Equal(hash, chain.AnchorHash) {
		return fmt.Sprintf("the trail starts at %d, but retention's signed anchor says %d", chain.FirstSeq, first)
	}
	return ""
}

func (r Report) fail(seq int64, format string, args ...any) Report {
	r.BadSeq = seq
	r.Problem = fmt.Sprintf(format, args...)
	return r
}

// Checkpoint verifies the events since the last checkpoint (VerifyTail),
// then signs the head it verified and stores the checkpoint. A tail that
// does not verify is a *BrokenError, and nothing is signed. With no event
// sealed yet it writes none and returns a zero checkpoint.
func Checkpoint(ctx context.Context, trail domain.AuditTrail, signer *Signer, now time.Time) (domain.AuditCheckpoint, error) {
	r, err := VerifyTail(ctx, trail, signer)
	if err != nil {
		return domain.AuditCheckpoint{}, err
	}
	if !r.OK() {
		return domain.AuditCheckpoint{}, &BrokenError{Report: r}
	}
	if r.LastSeq == 0 {
		return domain.AuditCheckpoint{}, nil
	}
	c, err := signer.Sign(r.LastSeq, r.Head, now)
	if err != nil {
		return domain.AuditCheckpoint{}, err
	}
	return c, trail.AddAuditCheckpoint(ctx, c)
}

// trimBatch bounds the events one retention transaction deletes.
const trimBatch = 1000

// Trim deletes the events older than retention, oldest first, and
// returns how many it deleted.
func Trim(ctx context.Context, trail domain.AuditTrail, signer *Signer, retention time.Duration, now time.Time) (int, error) {
	total := 0
	sign := func(firstSeq int64, hash []byte) (string, error) { return signer.SignAnchor(firstSeq, hash, now) }
	for {
		n, err := trail.TrimAuditEvents(ctx, now.Add(-retention), trimBatch, sign)
		total += n
		if err != nil || n < trimBatch {
			return total, err
		}
	}
}
