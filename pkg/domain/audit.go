package domain

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// AuditAction says what an audit event records. The names are a stable
// vocabulary (docs/audit.md lists them): a SIEM's rules match on them, so
// one is never renamed or given another meaning; new ones are added.
type AuditAction string

// The audit actions. Those marked "use" are written in batches off the
// request's path (they may be dropped, counted, when the buffer is full);
// every other is written in the transaction of the change it records.
const (
	ActionUserLogin  AuditAction = "user.login" // use: a password login (HTTP Basic or in a body)
	ActionUserCreate AuditAction = "user.create"
	// ActionUserSignIn (use): a sign-in through the operator's OpenID
	// provider, succeeded or refused.
	ActionUserSignIn AuditAction = "user.sign_in"
	// ActionUserSetAdmin: a user's admin flag set from the provider's
	// admin group at a sign-in.
	ActionUserSetAdmin       AuditAction = "user.set_admin"
	ActionUserDelete         AuditAction = "user.delete"
	ActionUserChangePassword AuditAction = "user.change_password"
	ActionMachineUserCreate  AuditAction = "machine_user.create"
	ActionMachineUserDelete  AuditAction = "machine_user.delete"
	ActionTokenCreate        AuditAction = "token.create"
	ActionTokenRotate        AuditAction = "token.rotate"
	ActionTokenDelete        AuditAction = "token.delete"
	// ActionTokenEndGrace: a secret a rotation replaced was revoked by
	// possession, ending its grace period; the token lives on.
	ActionTokenEndGrace AuditAction = "token.end_grace"
	// ActionTokenAuthenticate: use, refusals only: an API token or access
	// token sent as a bearer (or to a gateway's check) and refused.
	ActionTokenAuthenticate AuditAction = "token.authenticate"
	// ActionTokenIntrospect: use: an introspection of a token that is not
	// the caller's own.
	ActionTokenIntrospect AuditAction = "token.introspect"
	// ActionAccessTokenMint: use: an exchange of an API token, with the
	// access token's jti when one was minted.
	ActionAccessTokenMint AuditAction = "access_token.mint"
	// ActionRequestDeny: use: a call refused for its credential's scope
	// or for not being an admin.
	ActionRequestDeny     AuditAction = "request.deny"
	ActionSigningKeyAdd   AuditAction = "signing_key.add"
	ActionSigningKeyDel   AuditAction = "signing_key.delete"
	ActionSigningKeyRet   AuditAction = "signing_key.retire"
	ActionKeysReseal      AuditAction = "keys.reseal"
	ActionDatabaseMigrate AuditAction = "database.migrate"
	// A machine user's federated credential added or taken away; its
	// subject is the machine user, with the credential's ID as TokenID.
	ActionFederatedCredentialCreate AuditAction = "federated_credential.create"
	ActionFederatedCredentialDelete AuditAction = "federated_credential.delete"
)

// AuditActions are every action, in the order docs/audit.md lists them.
var AuditActions = []AuditAction{
	ActionUserLogin, ActionUserCreate, ActionUserDelete, ActionUserChangePassword, ActionUserSignIn, ActionUserSetAdmin,
	ActionMachineUserCreate, ActionMachineUserDelete,
	ActionFederatedCredentialCreate, ActionFederatedCredentialDelete,
	ActionTokenCreate, ActionTokenRotate, ActionTokenDelete, ActionTokenEndGrace,
	ActionTokenAuthenticate, ActionTokenIntrospect, ActionAccessTokenMint, ActionRequestDeny,
	ActionSigningKeyAdd, ActionSigningKeyRet, ActionSigningKeyDel, ActionKeysReseal, ActionDatabaseMigrate,
}

// ValidAuditAction reports whether a is one of AuditActions.
func ValidAuditAction(a string) bool { return slices.Contains(AuditActions, AuditAction(a)) }

// AuditOutcome is how what an event records ended.
type AuditOutcome string

// The outcomes.
const (
	OutcomeSuccess AuditOutcome = "success"
	// OutcomeFailure: a credential was refused (unknown, wrong, expired,
	// revoked, malformed).
	OutcomeFailure AuditOutcome = "failure"
	// OutcomeDenied: a rule refused a valid caller (scope, admin, quota,
	// a login limit).
	OutcomeDenied AuditOutcome = "denied"
)

// ActorOperator is the actor kind of the server-side commands (whoever
// holds the database's credentials); ActorUser a user, ActorAnonymous a
// caller that presented no credential accepted (a refused one, a
// revocation by possession); ActorService the service itself, on no one's
// request (serve's scheduled key rotation, the migrations it applies at
// start).
const (
	ActorUser      = "user"
	ActorOperator  = "operator"
	ActorAnonymous = "anonymous"
	ActorService   = "service"
)

// AuditParty is an actor or a subject of an event: a user (its ID and its
// username at the time) and the API token concerned. OwnerID is a machine
// user's owner: a person sees the events of its machine users.
type AuditParty struct {
	Kind     string // the actor's: ActorUser, ActorOperator or ActorAnonymous; "" for a subject
	UserID   string
	Username string
	OwnerID  string
	TokenID  string
}

// Person returns the ID of the human user the party is or belongs to.
func (p AuditParty) Person() string {
	if p.OwnerID != "" {
		return p.OwnerID
	}
	return p.UserID
}

// Origin is where a call came from, for the audit trail.
type Origin struct {
	ClientAddress string
	UserAgent     string
	RequestID     string
	TraceID       string
}

type originKey struct{}

// NewContextWithOrigin returns ctx carrying where its call came from.
func NewContextWithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// NewContextWithOriginFunc returns ctx carrying where its call came from
// as origin works it out when asked: the server sets it on every call,
// and only the few that record an event ask.
func NewContextWithOriginFunc(ctx context.Context, origin func() Origin) context.Context {
	return context.WithValue(ctx, originKey{}, origin)
}

// OriginFromContext returns where ctx's call came from (zero: unknown, a
// server-side command).
func OriginFromContext(ctx context.Context) Origin {
	switch o := ctx.Value(originKey{}).(type) {
	case Origin:
		return o
	case func() Origin:
		return o()
	}
	return Origin{}
}

// AuditEvent is one entry of the audit trail. It never holds a secret: no
// plaintext token, password or access token, only IDs (an access token's
// jti).
type AuditEvent struct {
	// Seq is the event's place in the trail, from 1; 0 until it is sealed
	// into the chain (a second or so after it is written).
	Seq     int64
	Time    time.Time
	Action  AuditAction
	Outcome AuditOutcome
	Actor   AuditParty
	Subject AuditParty
	Origin  Origin
	// Details are small action-specific values (a reason, a jti, a kid).
	Details map[string]string
	// ChainHash commits to this event and every one before it; nil until sealed.
	ChainHash []byte
}

// The bounds of an event's free-text fields, in bytes: longer values are cut.
const (
	maxUserAgent   = 256
	maxAddress     = 64
	maxRequestID   = 64
	maxDetailValue = 256
	maxDetails     = 16
)

// Clean returns e ready to be stored: its time in UTC to the microsecond
// (what both databases keep), its text valid UTF-8 and within bounds, so
// what is read back hashes as what was written.
func (e *AuditEvent) Clean() *AuditEvent {
	c := *e
	c.Time = e.Time.UTC().Truncate(time.Microsecond)
	c.Origin.UserAgent = cut(e.Origin.UserAgent, maxUserAgent)
	c.Origin.ClientAddress = cut(e.Origin.ClientAddress, maxAddress)
	c.Origin.RequestID = cut(e.Origin.RequestID, maxRequestID)
	c.Origin.TraceID = cut(e.Origin.TraceID, 32)
	for _, p := range []*AuditParty{&c.Actor, &c.Subject} {
		p.Kind, p.UserID, p.Username = cut(p.Kind, 16), cut(p.UserID, 64), cut(p.Username, 64)
		p.OwnerID, p.TokenID = cut(p.OwnerID, 64), cut(p.TokenID, 64)
	}
	if len(e.Details) > 0 {
		c.Details = make(map[string]string, len(e.Details))
		for k, v := range e.Details {
			if len(c.Details) == maxDetails {
				break
			}
			c.Details[cut(k, 64)] = cut(v, maxDetailValue)
		}
	} else {
		c.Details = nil
	}
	return &c
}

// cut returns s as valid UTF-8 (invalid bytes and control characters
// replaced) of at most n bytes, cut at a rune boundary.
func cut(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		// A newline or an escape sequence is no part of a name, an
		// address or a user agent: it could only forge a line where the
		// event is printed.
		s = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return '\uFFFD'
			}
			return r
		}, s)
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// DetailsJSON returns the details as stored: a JSON object with sorted
// keys, "" for none.
func (e *AuditEvent) DetailsJSON() string {
	if len(e.Details) == 0 {
		return ""
	}
	b, _ := json.Marshal(e.Details) // map keys sorted; strings cannot fail
	return string(b)
}

// ContentHash returns the SHA-256 of the event's content (all but Seq and
// ChainHash) in a fixed encoding: each field length-prefixed, in a fixed
// order, so no two events share one. Call it on a Clean event.
func (e *AuditEvent) ContentHash() []byte { return e.ContentHashWith(e.DetailsJSON()) }

// ContentHashWith is ContentHash given the event's DetailsJSON, for a
// caller that has it already.
func (e *AuditEvent) ContentHashWith(detailsJSON string) []byte {
	h := sha256.New()
	field := func(s string) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field("tokenservice audit event v1")
	field(e.Time.UTC().Format("2006-01-02T15:04:05.000000Z"))
	field(string(e.Action))
	field(string(e.Outcome))
	for _, p := range []AuditParty{e.Actor, e.Subject} {
		field(p.Kind)
		field(p.UserID)
		field(p.Username)
		field(p.OwnerID)
		field(p.TokenID)
	}
	field(e.Origin.ClientAddress)
	field(e.Origin.UserAgent)
	field(e.Origin.RequestID)
	field(e.Origin.TraceID)
	field(detailsJSON)
	return h.Sum(nil)
}

// ChainHash returns the hash that chains the event of sequence number seq
// and content hash content to the chain hash of the event before it
// (prev; nil for the first event of a trail).
func ChainHash(prev []byte, seq int64, content []byte) []byte {
	h := sha256.New()
	h.Write([]byte("tokenservice audit chain v1\x00"))
	h.Write(prev)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(seq))
	h.Write(n[:])
	h.Write(content)
	return h.Sum(nil)
}

// NewAuditEvent returns an event of action and outcome at now, by caller
// (nil: anonymous), from ctx's origin.
func NewAuditEvent(ctx context.Context, now time.Time, action AuditAction, outcome AuditOutcome, caller *Principal) *AuditEvent {
	return &AuditEvent{Time: now, Action: action, Outcome: outcome, Actor: ActorOf(caller), Origin: OriginFromContext(ctx)}
}

// ActorOf returns the actor a principal is: the operator for the
// server-side commands' principal (a user without an ID), anonymous for nil.
func ActorOf(p *Principal) AuditParty {
	switch {
	case p == nil || p.User == nil:
		return AuditParty{Kind: ActorAnonymous}
	case p.User.ID == "":
		return AuditParty{Kind: ActorOperator}
	}
	return AuditParty{Kind: ActorUser, UserID: p.User.ID, Username: p.User.Username, OwnerID: p.User.OwnerID, TokenID: p.TokenID}
}

// SubjectUser returns the subject party of user u.
func SubjectUser(u *User) AuditParty {
	return AuditParty{UserID: u.ID, Username: u.Username, OwnerID: u.OwnerID}
}

// With returns e with a detail set.
func (e *AuditEvent) With(key, value string) *AuditEvent {
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	e.Details[key] = value
	return e
}

// AuditQuery selects one page of the audit trail, newest first.
type AuditQuery struct {
	// VisibleTo, if set, keeps the events whose actor or subject is this
	// user (or, with VisibleToPerson, a machine user it owns).
	VisibleTo       string
	VisibleToPerson bool
	ActorID         string
	SubjectUserID   string
	TokenID         string // the token the event is about (its subject's)
	Action          AuditAction
	StartTime       time.Time // zero: none; inclusive
	EndTime         time.Time // zero: none; exclusive
	BeforeSeq       int64     // 0: from the newest
	AfterSeq        int64     // oldest first from after it, when set (for following)
	Limit           int
}

// AuditLog keeps the audit trail. Changes write their events themselves,
// in their own transactions (the stores' methods take them); this is the
// rest.
type AuditLog interface {
	// AppendAuditEvents writes events recorded off a request's path, in
	// one statement.
	AppendAuditEvents(ctx context.Context, events []*AuditEvent) error
	// SealAuditEvents gives the events written but not yet sealed their
	// sequence numbers and chain hashes, in the order they are found, at
	// most limit of them, and returns them as sealed: whole if whole, else
	// only their Seq, Action and ChainHash.
	SealAuditEvents(ctx context.Context, limit int, whole bool) ([]*AuditEvent, error)
	// ListAuditEvents returns sealed events as q asks.
	ListAuditEvents(ctx context.Context, q AuditQuery) ([]*AuditEvent, error)
}

// AuditChain is the state of the trail's hash chain: where it starts
// (retention deletes events from the start: FirstSeq is the first kept,
// AnchorHash the chain hash of the one before it, nil if none was
// deleted) and its last sealed event.
type AuditChain struct {
	FirstSeq   int64
	AnchorHash []byte
	// AnchorJWS is the signed statement of FirstSeq and AnchorHash that
	// retention wrote when it moved them; "" while FirstSeq is 1.
	AnchorJWS string
	LastSeq   int64
	LastHash  []byte
}

// AuditCheckpoint is a signed statement that the trail's chain hash at
// Seq was ChainHash at Time. JWS is the statement, signed (pkg/audit).
type AuditCheckpoint struct {
	Seq       int64
	ChainHash []byte
	Time      time.Time
	JWS       string
}

// ErrAuditChainBroken: the trail does not verify.
var ErrAuditChainBroken = Errorf(KindInternal, "the audit trail does not verify")

// AuditTrail is what sealing, checkpoints, retention and verification
// need of the store beside AuditLog.
type AuditTrail interface {
	AuditLog
	// AuditChain returns the chain's state.
	AuditChain(ctx context.Context) (AuditChain, error)
	// AuditEventsFrom returns up to limit sealed events from seq on, by seq.
	AuditEventsFrom(ctx context.Context, seq int64, limit int) ([]*AuditEvent, error)
	// AddAuditCheckpoint stores a checkpoint; one of a Seq that has one is ignored.
	AddAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error
	// AuditCheckpoints returns the stored checkpoints by Seq.
	AuditCheckpoints(ctx context.Context) ([]AuditCheckpoint, error)
	// LastAuditCheckpoint returns the stored checkpoint of the highest Seq
	// at most atMost; a zero one if there is none.
	LastAuditCheckpoint(ctx context.Context, atMost int64) (AuditCheckpoint, error)
	// TrimAuditEvents deletes up to limit of the oldest events written
	// before cutoff, in order, moving the chain's start past them with
	// sign's statement of the new start, and returns how many it deleted.
	// It fails with ErrAuditChainBroken, deleting nothing, if they do not
	// verify.
	TrimAuditEvents(ctx context.Context, cutoff time.Time, limit int, sign func(firstSeq int64, anchorHash []byte) (string, error)) (int, error)
}

// Cascade returns an event of what e's change, a user's deletion, did
// besides (deleting its machine users and the tokens of all of them): the
// same actor, origin and time, another action and subject, and the detail
// cause CauseUserDeletion.
func (e *AuditEvent) Cascade(action AuditAction, subject AuditParty) *AuditEvent {
	return &AuditEvent{Time: e.Time, Action: action, Outcome: e.Outcome, Actor: e.Actor, Subject: subject, Origin: e.Origin,
		Details: map[string]string{DetailCause: CauseUserDeletion}}
}

// DetailCause is the detail of a token.delete event (and of a
// machine_user.delete one deleted with its owner) that says why the token
// went: one of the causes below. Like the actions, a stable vocabulary.
const DetailCause = "cause"

// The causes.
const (
	// CauseOwner: the token's own user deleted it with another
	// credential (its password, another token), or the owner of the
	// machine user it belongs to did.
	CauseOwner = "owner"
	// CauseAdmin: an admin deleted another user's token.
	CauseAdmin = "admin"
	// CauseSelf: the token was the credential of its own deletion.
	CauseSelf = "self"
	// CauseRevocation: whoever held the token revoked it by possession
	// (RFC 7009); the actor is anonymous, the subject the token.
	CauseRevocation = "revocation"
	// CauseUserDeletion: deleted with its user (a machine user with its
	// owner; a token with its user or its user's owner).
	CauseUserDeletion = "user_deletion"
)
