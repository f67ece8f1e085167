package audit

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
)

// Deps are what the listing works with.
type Deps struct {
	Log   domain.AuditLog
	Pages *pagetoken.Codec
	// Flush, if set, writes the use events pending and seals every event
	// written, so a listing sees what happened before it (the app's
	// FlushAudit).
	Flush func(context.Context)
}

// Service reads the audit trail for callers: who may see which event.
type Service struct {
	deps Deps
}

// NewService returns a Service.
func NewService(deps Deps) *Service { return &Service{deps: deps} }

// ListInput is what a caller asks of List. Every filter is optional; those
// given all apply.
type ListInput struct {
	ActorID       string // the actor's user ID
	SubjectUserID string
	TokenID       string    // the subject's API token
	Action        string    // one of domain.AuditActions
	StartTime     time.Time // inclusive; zero: none
	EndTime       time.Time // exclusive; zero: none
	// AfterSeq, if positive, lists the events after it, oldest first
	// (following the trail); 0: newest first.
	AfterSeq  int64
	PageSize  int
	PageToken string
}

// idPattern is the form of user and token IDs (auth.RandomID: 16 base62
// digits): a filter of another form can match nothing, and is refused.
var idPattern = regexp.MustCompile(`^[0-9A-Za-z]{16}$`)

// List returns one page of the events the caller may see that match in,
// newest first (oldest first after in.AfterSeq), and the token of the next
// page ("" on the last). An admin sees every event; a person those whose
// actor or subject is itself or one of its machine users; a machine user
// those of itself. The filters narrow that, never widen it: naming someone
// the caller may not see gives an empty page. A filter that is not well
// formed (an ID that is no ID, an unknown action, a time range that is
// empty) is a KindInvalid error naming it.
func (s *Service) List(ctx context.Context, caller *domain.Principal, in ListInput) ([]*domain.AuditEvent, string, error) {
	q, err := query(caller, in)
	if err != nil {
		return nil, "", err
	}
	// A page token is good for the caller and the filters it came from.
	binding := []string{"auditEvents", caller.User.ID, strconv.FormatBool(caller.User.Admin), q.ActorID, q.SubjectUserID, q.TokenID,
		string(q.Action), timeKey(q.StartTime), timeKey(q.EndTime), strconv.FormatInt(in.AfterSeq, 10)}
	return pagetoken.List(s.deps.Pages, in.PageSize, in.PageToken, binding,
		func(after *domain.Cursor, limit int) ([]*domain.AuditEvent, error) {
			page := q
			page.Limit = limit
			if after != nil {
				seq, err := seqOf(after)
				if err != nil {
					return nil, err
				}
				if page.AfterSeq > 0 {
					page.AfterSeq = seq
				} else {
					page.BeforeSeq = seq
				}
			}
			if s.deps.Flush != nil {
				// Not cut short by the caller going away: the recorder
				// drops a batch whose write fails. (The store bounds
				// each call.)
				s.deps.Flush(context.WithoutCancel(ctx))
			}
			return s.deps.Log.ListAuditEvents(ctx, page)
		},
		cursorOf)
}

// query returns the store's query for what the caller asks, or a
// KindInvalid error naming the first filter that is not well formed.
func query(caller *domain.Principal, in ListInput) (domain.AuditQuery, error) {
	q := domain.AuditQuery{ActorID: in.ActorID, SubjectUserID: in.SubjectUserID, TokenID: in.TokenID, Action: domain.AuditAction(in.Action),
		StartTime: in.StartTime, EndTime: in.EndTime, AfterSeq: in.AfterSeq}
	for _, f := range []struct{ field, id string }{{"actor_id", in.ActorID}, {"subject_user_id", in.SubjectUserID}, {"token_id", in.TokenID}} {
		if f.id != "" && !idPattern.MatchString(f.id) {
			return q, domain.InvalidField(f.field, "must be an ID as the API gives them: 16 letters and digits")
		}
	}
	if in.Action != "" && !domain.ValidAuditAction(in.Action) {
		return q, domain.InvalidField("action", "unknown action %q: the actions are %s", in.Action, actionList())
	}
	if !in.StartTime.IsZero() && !in.EndTime.IsZero() && !in.StartTime.Before(in.EndTime) {
		return q, domain.InvalidField("end_time", "must be after the start time (the range includes its start and excludes its end)")
	}
	if in.AfterSeq < 0 {
		return q, domain.InvalidField("after_seq", "must not be negative (0 lists newest first)")
	}
	switch {
	case caller.User.Admin:
	case caller.User.IsMachine():
		q.VisibleTo = caller.User.ID
	default:
		q.VisibleTo, q.VisibleToPerson = caller.User.ID, true
	}
	return q, nil
}

func actionList() string {
	names := make([]string, len(domain.AuditActions))
	for i, a := range domain.AuditActions {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

// timeKey is a time filter in a page token's binding ("" for none).
func timeKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// A page's cursor holds its last event's seq, as 16 decimal digits in
// the cursor's ID (pagetoken.IDLen), and its time.
func cursorOf(e *domain.AuditEvent) domain.Cursor {
	return domain.Cursor{CreateTime: e.Time, ID: fmt.Sprintf("%0*d", pagetoken.IDLen, e.Seq)}
}

func seqOf(c *domain.Cursor) (int64, error) {
	seq, err := strconv.ParseInt(c.ID, 10, 64)
	if err != nil || seq <= 0 {
		// The MAC held, so the server made it: not a client's mistake.
		return 0, fmt.Errorf("audit page token holds %q, not a sequence number", c.ID)
	}
	return seq, nil
}
