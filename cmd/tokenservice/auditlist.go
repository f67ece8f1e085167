package main

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
)

// auditListOptions are audit list's flags.
type auditListOptions struct {
	actorID, subjectUserID, tokenID, action string
	since, until                            string
	limit                                   int
	asJSON, follow                          bool
	interval                                time.Duration
}

// auditListCommand is the client side of the audit trail: it reads it
// through the API (ListAuditEvents), as the caller may see it.
func auditListCommand(e *env) *cobra.Command {
	var o auditListOptions
	cmd := withClient(e, &cobra.Command{
		Use:   "list",
		Short: "List audit events you may see, newest first (--follow: keep printing new ones)",
		Long: `List the audit events you may see, newest first: an admin every event; anyone else
those whose actor or subject is themselves or one of their machine users. Your token
needs the audit:read scope (a login has it).

--json prints each event as one JSON object a line, the object serve's --audit-log
writes for a SIEM. --follow prints the last --limit events oldest first, then each
new event as it is sealed into the trail, until interrupted (Ctrl-C).`,
		Example: `  tokenservice audit list --action token.delete --since 7d
  tokenservice audit list --token-id 1VZZqwNuxHhj6QE7 --limit 0 --json
  tokenservice audit list --follow --json | vector --config siem.toml`,
		Args: args(),
	}, func(cmd *cobra.Command, c *client, _ []string) error {
		req, err := o.request(cmd, time.Now())
		if err != nil {
			return err
		}
		l := &auditLister{c: c, req: req, out: e.stdout, asJSON: o.asJSON}
		if o.follow {
			return l.follow(cmd.Context(), o.limit, o.interval, e.stderr)
		}
		events, err := l.newest(cmd.Context(), o.limit)
		if err != nil {
			return c.fail(err)
		}
		return l.print(events)
	})
	f := cmd.Flags()
	f.StringVar(&o.actorID, "actor-id", "", "only events whose actor is this user (its ID)")
	f.StringVar(&o.subjectUserID, "subject-user-id", "", "only events whose subject is this user (its ID)")
	f.StringVar(&o.tokenID, "token-id", "", "only events whose subject is this API token (its ID)")
	f.StringVar(&o.action, "action", "", "only events of this action: "+strings.Join(actionNames(), ", "))
	f.StringVar(&o.since, "since", "", "only events at or after this time: RFC 3339 (2026-01-02T15:04:05Z) or a duration ago (7d, 12h)")
	f.StringVar(&o.until, "until", "", "only events before this time: RFC 3339 or a duration ago")
	f.IntVar(&o.limit, "limit", 50, "at most this many events, the newest; 0 for all")
	f.BoolVar(&o.asJSON, "json", false, "one JSON object a line per event (the --audit-log format), instead of a table")
	f.BoolVar(&o.follow, "follow", false, "after the last --limit events (oldest first), print new ones as they come, until interrupted")
	f.DurationVar(&o.interval, "interval", 2*time.Second, "with --follow, how often to ask the server for new events")
	return cmd
}

func actionNames() []string {
	names := make([]string, len(domain.AuditActions))
	for i, a := range domain.AuditActions {
		names[i] = string(a)
	}
	return names
}

// request returns the listing's filters from the flags; now is what a
// duration ago counts from.
func (o *auditListOptions) request(cmd *cobra.Command, now time.Time) (*pb.ListAuditEventsRequest, error) {
	if o.limit < 0 {
		return nil, usageError(cmd, "--limit %d: give a number of events, or 0 for all", o.limit)
	}
	if o.follow && o.interval < 100*time.Millisecond {
		return nil, usageError(cmd, "--interval %s: give at least 100ms", o.interval)
	}
	req := &pb.ListAuditEventsRequest{ActorId: o.actorID, SubjectUserId: o.subjectUserID, TokenId: o.tokenID, Action: o.action}
	for _, t := range []struct {
		flag, value string
		into        **timestamppb.Timestamp
	}{{"--since", o.since, &req.StartTime}, {"--until", o.until, &req.EndTime}} {
		if t.value == "" {
			continue
		}
		at, err := pointInTime(t.value, now)
		if err != nil {
			return nil, usageError(cmd, "%s %q: give an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (7d, 12h, 90m)", t.flag, t.value)
		}
		*t.into = timestamppb.New(at)
	}
	return req, nil
}

// pointInTime reads an RFC 3339 time, or a duration (parseLifetime's) before now.
func pointInTime(s string, now time.Time) (time.Time, error) {
	if at, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return at, nil
	}
	ago, err := parseLifetime("", s)
	if err != nil {
		return time.Time{}, err
	}
	return now.Add(-ago), nil
}

// auditLister reads pages of one listing and prints them.
type auditLister struct {
	c      *client
	req    *pb.ListAuditEventsRequest // the filters
	out    io.Writer
	asJSON bool
	header bool // the table's header is printed
}

// page reads one page after seq (0: newest first).
func (l *auditLister) page(ctx context.Context, afterSeq int64, size int, token string) ([]*pb.AuditEvent, string, error) {
	call, cancel := l.c.call(ctx)
	defer cancel()
	req := proto.CloneOf(l.req)
	req.AfterSeq, req.PageSize, req.PageToken = afterSeq, uint32(size), token
	resp, err := l.c.audit.ListAuditEvents(call, req)
	return resp.GetAuditEvents(), resp.GetNextPageToken(), err
}

// newest returns the newest limit events (0: all), newest first.
func (l *auditLister) newest(ctx context.Context, limit int) ([]*pb.AuditEvent, error) {
	var all []*pb.AuditEvent
	for token := ""; ; {
		size := pagetoken.MaxPageSize
		if limit > 0 {
			size = min(size, limit-len(all))
		}
		events, next, err := l.page(ctx, 0, size, token)
		if err != nil {
			return nil, err
		}
		all = append(all, events...)
		if token = next; token == "" || (limit > 0 && len(all) >= limit) {
			return all, nil
		}
	}
}

// after returns every event after seq, oldest first.
func (l *auditLister) after(ctx context.Context, seq int64) ([]*pb.AuditEvent, error) {
	return allPages(func(token string) ([]*pb.AuditEvent, string, error) {
		return l.page(ctx, seq, pagetoken.MaxPageSize, token)
	})
}

// follow prints the newest limit events oldest first, then every new
// event every interval, until ctx ends (the user's Ctrl-C), which is no
// failure. A server that does not answer for a while is waited for.
func (l *auditLister) follow(ctx context.Context, limit int, interval time.Duration, stderr io.Writer) error {
	events, err := l.newest(ctx, limit)
	if err != nil {
		return l.c.fail(err)
	}
	slices.Reverse(events)
	var last int64
	away := false
	for {
		if len(events) > 0 {
			last = events[len(events)-1].GetSeq()
		}
		if err := l.print(events); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
		if last > 0 {
			events, err = l.after(ctx, last)
		} else {
			// Nothing seen yet: what came since is the whole listing.
			events, err = l.newest(ctx, 0)
			slices.Reverse(events)
		}
		switch code := status.Code(err); {
		case ctx.Err() != nil:
			return nil
		case code == codes.Unavailable || code == codes.DeadlineExceeded:
			if !away {
				fmt.Fprintf(stderr, "tokenservice: %v; waiting for it\n", l.c.fail(err))
			}
			away, events = true, nil
		case err != nil:
			return l.c.fail(err)
		default:
			away = false
		}
	}
}

// print writes events in the order given: JSON lines, or table rows
// (the header before the first).
func (l *auditLister) print(events []*pb.AuditEvent) error {
	if l.asJSON {
		var buf []byte
		for _, e := range events {
			line, err := json.Marshal(audit.LineOf(auditEventFromProto(e)))
			if err != nil {
				return err
			}
			buf = append(append(buf, line...), '\n')
		}
		_, err := l.out.Write(buf)
		return err
	}
	tw := tabwriter.NewWriter(l.out, 0, 4, 2, ' ', 0)
	if !l.header {
		fmt.Fprintln(tw, "SEQ\tTIME\tACTION\tOUTCOME\tACTOR\tSUBJECT\tTOKEN\tCLIENT\tDETAILS")
		l.header = true
	}
	for _, e := range events {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.GetSeq(), when(e.GetTime(), ""), safe(e.GetAction()), safe(e.GetOutcome()),
			actorName(e.GetActor()), safe(cmp.Or(e.GetSubject().GetUsername(), e.GetSubject().GetUserId())), safe(e.GetSubject().GetTokenId()),
			safe(e.GetClientAddress()), details(e.GetDetails()))
	}
	return tw.Flush()
}

// actorName is a user's username (its ID if it had none), and the token
// it used; or the actor's kind, for the operator and anonymous callers.
func actorName(a *pb.AuditActor) string {
	name := cmp.Or(a.GetUsername(), a.GetUserId(), a.GetKind())
	if a.GetTokenId() != "" {
		name += " (token " + a.GetTokenId() + ")"
	}
	return safe(name)
}

// details are key=value pairs, sorted by key.
func details(d map[string]string) string {
	keys := slices.Sorted(maps.Keys(d))
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = safe(k) + "=" + safe(d[k])
	}
	return strings.Join(pairs, " ")
}

// auditEventFromProto is the event an answer carries, so that --json
// prints the line serve's --audit-log writes (audit.LineOf).
func auditEventFromProto(e *pb.AuditEvent) *domain.AuditEvent {
	hash, _ := hex.DecodeString(e.GetChainHash()) // the server's hex
	out := &domain.AuditEvent{Seq: e.GetSeq(), Time: e.GetTime().AsTime(), Action: domain.AuditAction(e.GetAction()),
		Outcome: domain.AuditOutcome(e.GetOutcome()),
		Actor: domain.AuditParty{Kind: e.GetActor().GetKind(), UserID: e.GetActor().GetUserId(), Username: e.GetActor().GetUsername(),
			OwnerID: e.GetActor().GetOwnerId(), TokenID: e.GetActor().GetTokenId()},
		Subject: domain.AuditParty{UserID: e.GetSubject().GetUserId(), Username: e.GetSubject().GetUsername(), OwnerID: e.GetSubject().GetOwnerId(),
			TokenID: e.GetSubject().GetTokenId()},
		Origin:    domain.Origin{ClientAddress: e.GetClientAddress(), UserAgent: e.GetUserAgent(), RequestID: e.GetRequestId(), TraceID: e.GetTraceId()},
		ChainHash: hash,
	}
	if len(e.GetDetails()) > 0 {
		out.Details = e.GetDetails()
	}
	return out
}
