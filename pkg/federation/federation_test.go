package federation_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/federation"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

const (
	gh     = "https://token.actions.githubusercontent.com"
	gitlab = "https://gitlab.com"
	aud    = "https://tokens.example.com"
	sub    = "repo:acme/app:ref:refs/heads/main"
)

// fakeIssuers stands for pkg/issuers: a raw token is the JSON of its claims,
// verified if its iss is trusted.
type fakeIssuers struct{ trusted []string }

func (f fakeIssuers) URLs() []string { return f.trusted }
func (f fakeIssuers) Trusted(iss string) bool {
	for _, t := range f.trusted {
		if t == iss {
			return true
		}
	}
	return false
}

func (f fakeIssuers) Verify(_ context.Context, raw string) (*federation.SubjectToken, error) {
	var claims map[string]any
	if err := json.Unmarshal([]byte(raw), &claims); err != nil {
		return nil, &federation.RefusedToken{Reason: "malformed", Message: "not a JWT"}
	}
	iss, _ := claims["iss"].(string)
	if !f.Trusted(iss) {
		return nil, &federation.RefusedToken{Reason: "untrusted_issuer", Message: "not trusted"}
	}
	s, _ := claims["sub"].(string)
	var auds []string
	switch a := claims["aud"].(type) {
	case string:
		auds = []string{a}
	case []any:
		for _, x := range a {
			auds = append(auds, x.(string))
		}
	}
	jti, _ := claims["jti"].(string)
	return &federation.SubjectToken{Issuer: iss, Subject: s, ID: jti, Audience: auds, Claims: claims}, nil
}

func token(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	return string(b)
}

func ghToken(extra ...any) string {
	c := map[string]any{"iss": gh, "sub": sub, "aud": aud, "jti": "run-1", "repository_owner": "acme", "ref": "refs/heads/main"}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i].(string)] = extra[i+1]
	}
	return token(c)
}

type recorder []*domain.AuditEvent

func (r *recorder) Record(ev *domain.AuditEvent) { *r = append(*r, ev) }

type outcomes []string

func (o *outcomes) Exchanged(issuer, outcome string) { *o = append(*o, issuer+" "+outcome) }

type fixture struct {
	svc      *federation.Service
	tokens   *tokens.Service
	st       *store.Store
	minter   *auth.Minter
	alice    *domain.Principal // a person, with a password
	bob      *domain.Principal
	bot      *domain.User // alice's machine user
	bot2     *domain.User // alice's other machine user
	audit    *recorder
	outcomes *outcomes
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	st := storetest.MustOpen(t, "sqlite")
	k, _ := auth.NewSigningKey(rand.Reader, now.Add(-time.Hour))
	ks, _ := auth.NewKeySet([]*domain.SigningKey{k}, now, time.Hour)
	minter := auth.NewMinter(auth.KeyRingOf(ks), auth.MinterConfig{Issuer: "https://tokens.example.com", Audience: aud,
		Lifetime: 15 * time.Minute, Resources: []string{"https://orders"}})
	rec, outs := &recorder{}, &outcomes{}
	clock := func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
	ts := tokens.New(tokens.Config{Scopes: []string{"deploy", "read"}, RevokeAPITokenByAccessToken: true}, tokens.Deps{Users: st, Tokens: st, Federated: st, Minter: minter,
		Pages: pagetoken.New(), Audit: rec, Clock: clock, Rand: rand.Reader})
	conditions, err := federation.NewConditions(100)
	if err != nil {
		t.Fatal(err)
	}
	svc := federation.New(federation.Config{MaxPerUser: 3}, federation.Deps{Store: st, Tokens: ts,
		Issuers: fakeIssuers{trusted: []string{gh, gitlab}}, Conditions: conditions, Audit: rec, Observer: outs, Clock: clock, Rand: rand.Reader})
	mk := func(id, name, owner string) *domain.User {
		u := &domain.User{ID: id, Username: name, OwnerID: owner, CreateTime: now}
		if owner == "" {
			u.PasswordHash = "$argon2id$x"
		}
		if err := st.CreateUser(ctx, u, 0); err != nil {
			t.Fatal(err)
		}
		return u
	}
	alice, bob := mk("aliceAAAAAAAAAAA", "alice", ""), mk("bobBBBBBBBBBBBBB", "bob", "")
	bot, bot2 := mk("botCCCCCCCCCCCCC", "alice-bot", alice.ID), mk("botDDDDDDDDDDDDD", "alice-bot2", alice.ID)
	return &fixture{svc: svc, tokens: ts, st: st, minter: minter, bot: bot, bot2: bot2, audit: rec, outcomes: outs,
		alice: &domain.Principal{User: alice, AllScopes: true}, bob: &domain.Principal{User: bob, AllScopes: true}}
}

func (f *fixture) mustCreate(t *testing.T, in federation.CreateInput) *domain.FederatedCredential {
	t.Helper()
	if in.Issuer == "" {
		in.Issuer = gh
	}
	if in.Subject == "" {
		in.Subject = sub
	}
	if in.Audiences == nil {
		in.Audiences = []string{aud}
	}
	c, err := f.svc.Create(context.Background(), f.alice, in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c
}

// TestCreateChecksWhatACredentialSays: each rule of a new credential, in
// plain words.
func TestCreateChecksWhatACredentialSays(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	accessOnly := &domain.Principal{User: f.alice.User, Scopes: domain.ServiceScopes, AccessToken: true}
	narrow := &domain.Principal{User: f.alice.User, Scopes: domain.NewScopes("tokens:write", "read"), TokenID: "tokTTTTTTTTTTTTT"}
	good := federation.CreateInput{UserID: f.bot.ID, Issuer: gh, Subject: sub, Audiences: []string{aud}}
	with := func(change func(*federation.CreateInput)) federation.CreateInput {
		in := good
		change(&in)
		return in
	}
	for _, c := range []struct {
		name   string
		caller *domain.Principal
		in     federation.CreateInput
		kind   domain.Kind
		words  string
	}{
		{"untrusted issuer, naming the list", f.alice, with(func(in *federation.CreateInput) { in.Issuer = "https://evil.example" }), domain.KindInvalid, gh + ", " + gitlab},
		{"issuer with a trailing slash", f.alice, with(func(in *federation.CreateInput) { in.Issuer = gh + "/" }), domain.KindInvalid, "not a trusted issuer"},
		{"a condition that does not compile", f.alice, with(func(in *federation.CreateInput) { in.Condition = `claims.ref ==` }), domain.KindInvalid, "not valid CEL: at column"},
		{"a condition calling nothing known", f.alice, with(func(in *federation.CreateInput) { in.Condition = `owner(claims) == "a"` }), domain.KindInvalid, "undeclared reference to 'owner'"},
		{"a condition that is no boolean", f.alice, with(func(in *federation.CreateInput) { in.Condition = `"acme"` }), domain.KindInvalid, "not true or false"},
		// What could make an evaluation expensive: a loop in a loop, a
		// pattern computed from claims (compiled at every evaluation), a
		// pattern whose program is large.
		{"a loop in a loop", f.alice, with(func(in *federation.CreateInput) {
			in.Condition = `claims.groups.exists(a, claims.groups.exists(b, a == b + "x"))`
		}), domain.KindInvalid, "nesting limit"},
		{"a computed pattern", f.alice, with(func(in *federation.CreateInput) { in.Condition = `claims.sub.matches(claims.pattern)` }), domain.KindInvalid, "string literal"},
		{"a large pattern", f.alice, with(func(in *federation.CreateInput) { in.Condition = `claims.sub.matches("[a-z]{1000}")` }), domain.KindInvalid, "too large"},
		{"a pattern that does not compile", f.alice, with(func(in *federation.CreateInput) { in.Condition = `claims.sub.matches("(")` }), domain.KindInvalid, "invalid matches argument"},
		{"no audience", f.alice, with(func(in *federation.CreateInput) { in.Audiences = nil }), domain.KindInvalid, "at least one"},
		{"a lifetime past the server's", f.alice, with(func(in *federation.CreateInput) { in.MaxLifetime = time.Hour }), domain.KindInvalid, "at most 15m0s"},
		{"a person", f.alice, with(func(in *federation.CreateInput) { in.UserID = f.alice.User.ID }), domain.KindInvalid, "belong to machine users"},
		{"someone else's machine user", f.bob, good, domain.KindPermissionDenied, ""},
		{"an access token", accessOnly, good, domain.KindPermissionDenied, ""},
		// A leaked token of the machine user must not plant a trust that
		// outlives the token.
		{"the machine user itself", &domain.Principal{User: f.bot, AllScopes: true, TokenID: "botTTTTTTTTTTTTT"}, good, domain.KindPermissionDenied, "its owner (or an admin) does"},
		{"a scope the caller lacks", narrow, with(func(in *federation.CreateInput) { in.Scopes = []string{"deploy"} }), domain.KindPermissionDenied, `"deploy"`},
		{"an unknown scope", f.alice, with(func(in *federation.CreateInput) { in.Scopes = []string{"nope"} }), domain.KindInvalid, "unknown scope"},
		{"a control character in the subject", f.alice, with(func(in *federation.CreateInput) { in.Subject = "a\x00b" }), domain.KindInvalid, "subject"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.svc.Create(ctx, c.caller, c.in)
			if domain.KindOf(err) != c.kind || !strings.Contains(domain.MessageOf(err), c.words) {
				t.Errorf("Create: %v (kind %v), want kind %v saying %q", err, domain.KindOf(err), c.kind, c.words)
			}
		})
	}
	// The narrow caller's own scopes, when it names none.
	fc, err := f.svc.Create(ctx, narrow, good)
	if err != nil {
		t.Fatal(err)
	}
	if got := fc.Scopes.String(); got != "read tokens:write" {
		t.Errorf("scopes %q, want the caller's", got)
	}
	// The quota (3 here) counts per machine user.
	f.mustCreate(t, federation.CreateInput{UserID: f.bot.ID})
	f.mustCreate(t, federation.CreateInput{UserID: f.bot.ID})
	_, err = f.svc.Create(ctx, f.alice, good)
	if domain.KindOf(err) != domain.KindResourceExhausted || domain.ReasonOf(err) != domain.ReasonQuotaExceeded {
		t.Errorf("a fourth: %v, want QUOTA_EXCEEDED", err)
	}
	f.mustCreate(t, federation.CreateInput{UserID: f.bot2.ID})
}

// TestOnlyTheOwnerOrAnAdminSeesCredentials: bob sees none of alice's
// machine user's, not even whether one exists; an admin sees them.
func TestOnlyTheOwnerOrAnAdminSeesCredentials(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	fc := f.mustCreate(t, federation.CreateInput{UserID: f.bot.ID})
	if _, err := f.svc.Get(ctx, f.bob, f.bot.ID, fc.ID); domain.KindOf(err) != domain.KindNotFound {
		t.Errorf("bob's Get: %v, want not found", err)
	}
	if _, err := f.svc.Get(ctx, f.alice, f.bot2.ID, fc.ID); domain.KindOf(err) != domain.KindNotFound {
		t.Errorf("Get under the wrong machine user: %v, want not found", err)
	}
	if _, err := f.svc.List(ctx, f.bob, f.bot.ID); domain.KindOf(err) != domain.KindPermissionDenied {
		t.Errorf("bob's List: %v, want permission denied", err)
	}
	if err := f.svc.Delete(ctx, f.bob, f.bot.ID, fc.ID); domain.KindOf(err) != domain.KindNotFound {
		t.Errorf("bob's Delete: %v, want not found", err)
	}
	admin := &domain.Principal{User: &domain.User{ID: "adminAAAAAAAAAAA", Username: "root", Admin: true}, AllScopes: true}
	if got, err := f.svc.Get(ctx, admin, f.bot.ID, fc.ID); err != nil || got.ID != fc.ID {
		t.Errorf("an admin's Get: %v, %v", got, err)
	}
	if list, err := f.svc.List(ctx, f.alice, f.bot.ID); err != nil || len(list) != 1 {
		t.Errorf("alice's List: %d, %v", len(list), err)
	}
	if err := f.svc.Delete(ctx, admin, f.bot.ID, fc.ID); err != nil {
		t.Errorf("an admin's Delete: %v", err)
	}
}

// TestExchange: a token matching one credential gets the machine user's
// access token, with act naming the workload; each mismatch is refused
// in plain words, counted, and recorded.
func TestExchange(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	fc := f.mustCreate(t, federation.CreateInput{UserID: f.bot.ID, Condition: `claims.repository_owner == "acme" && claims.ref == "refs/heads/main"`,
		Scopes: []string{"deploy", "read", "tokens:write"}, MaxLifetime: 5 * time.Minute})
	x, err := f.svc.Exchange(ctx, federation.ExchangeInput{SubjectToken: ghToken(), GrantType: "g"})
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	claims := jwtClaims(t, x.AccessToken.JWT)
	if claims["sub"] != f.bot.ID || claims["client_id"] != fc.ID || claims["scope"] != "deploy read" {
		t.Errorf("claims %v: want sub the machine user, client_id the credential, scope without tokens:write", claims)
	}
	if act, _ := claims["act"].(map[string]any); act["iss"] != gh || act["sub"] != sub {
		t.Errorf("act %v, want the workload's iss and sub (RFC 8693 section 4.1)", claims["act"])
	}
	if life := time.Until(x.AccessToken.ExpireTime); life > 5*time.Minute || life < 4*time.Minute {
		t.Errorf("lives %s, want the credential's 5m", life)
	}
	// The access token works here as the machine user's, until the credential goes.
	p, err := f.tokens.AuthenticateBearer(ctx, x.AccessToken.JWT)
	if err != nil || p.User.ID != f.bot.ID || p.TokenID != fc.ID {
		t.Fatalf("AuthenticateBearer: %v, %v", p, err)
	}
	if ev := (*f.audit)[len(*f.audit)-1]; ev.Action != domain.ActionAccessTokenMint || ev.Outcome != domain.OutcomeSuccess ||
		ev.Details["issuer"] != gh || ev.Details["external_subject"] != sub || ev.Details["external_jti"] != "run-1" ||
		ev.Details["credential"] != fc.ID || ev.Actor.UserID != f.bot.ID {
		t.Errorf("mint event %+v", ev)
	}

	for _, c := range []struct {
		name, raw string
		in        federation.ExchangeInput
		reason    domain.Kind
		words     string
		outcome   string
	}{
		{name: "untrusted issuer", raw: token(map[string]any{"iss": "https://evil", "sub": sub, "aud": aud}), words: "not trusted", outcome: " untrusted_issuer"},
		{name: "no credential for the subject", raw: ghToken("sub", "repo:acme/other:ref:refs/heads/main"), words: "no federated credential accepts", outcome: gh + " no_credential"},
		{name: "another audience", raw: ghToken("aud", "https://elsewhere"), words: "not an audience", outcome: gh + " audience"},
		{name: "condition false", raw: ghToken("ref", "refs/heads/feature"), words: "do not satisfy the condition", outcome: gh + " condition"},
		{name: "condition on a missing claim", raw: token(map[string]any{"iss": gh, "sub": sub, "aud": aud}), words: "do not satisfy", outcome: gh + " condition"},
		{name: "client_id of another machine user", raw: ghToken(), in: federation.ExchangeInput{ClientID: f.bot2.ID}, words: "no federated credential of the machine user", outcome: gh + " no_credential"},
		{name: "a scope beyond the credential", raw: ghToken(), in: federation.ExchangeInput{Scopes: []string{"users:write"}}, words: "grants no", outcome: gh + " denied"},
		{name: "an unknown resource", raw: ghToken(), in: federation.ExchangeInput{Resource: "https://nowhere"}, words: "unknown resource", outcome: gh + " denied"},
	} {
		t.Run(c.name, func(t *testing.T) {
			*f.outcomes = nil
			in := c.in
			in.SubjectToken = c.raw
			_, err := f.svc.Exchange(ctx, in)
			if domain.KindOf(err) != domain.KindInvalid || !strings.Contains(domain.MessageOf(err), c.words) {
				t.Errorf("Exchange: %v, want invalid saying %q", err, c.words)
			}
			if len(*f.outcomes) != 1 || (*f.outcomes)[0] != c.outcome {
				t.Errorf("observed %q, want %q", *f.outcomes, c.outcome)
			}
			ev := (*f.audit)[len(*f.audit)-1]
			if ev.Action != domain.ActionAccessTokenMint || ev.Outcome == domain.OutcomeSuccess {
				t.Errorf("event %+v, want a refused mint", ev)
			}
		})
	}

	// Named, the write scope is given.
	x, err = f.svc.Exchange(ctx, federation.ExchangeInput{SubjectToken: ghToken(), Scopes: []string{"tokens:write"}})
	if err != nil || x.Scopes.String() != "tokens:write" {
		t.Errorf("asking for tokens:write: %v, %v", x.Scopes, err)
	}
	// Revoked by possession (RFC 7009), it is refused as a token type this
	// server does not revoke, not answered as revoked: it has no API token.
	if err := f.tokens.RevokeByPossession(ctx, x.AccessToken.JWT); domain.ReasonOf(err) != domain.ReasonUnsupportedTokenType {
		t.Errorf("revoking a federated access token: %v, want unsupported_token_type", err)
	}
	if _, err := f.tokens.AuthenticateBearer(ctx, x.AccessToken.JWT); err != nil {
		t.Errorf("its access token after the refused revocation: %v", err)
	}
	// Deleted, the credential neither exchanges nor lets its access tokens in.
	if err := f.svc.Delete(ctx, f.alice, f.bot.ID, fc.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Exchange(ctx, federation.ExchangeInput{SubjectToken: ghToken()}); domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("Exchange after delete: %v", err)
	}
	if _, err := f.tokens.AuthenticateBearer(ctx, x.AccessToken.JWT); err != domain.ErrUnauthenticated {
		t.Errorf("its access token after delete: %v, want unauthenticated", err)
	}
}

// TestAmbiguityIsRefusedNeverGuessed: a token that two machine users'
// credentials accept needs client_id; two of one machine user's, never.
func TestAmbiguityIsRefusedNeverGuessed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.mustCreate(t, federation.CreateInput{UserID: f.bot.ID})
	f.mustCreate(t, federation.CreateInput{UserID: f.bot2.ID})
	_, err := f.svc.Exchange(ctx, federation.ExchangeInput{SubjectToken: ghToken()})
	if !strings.Contains(domain.MessageOf(err), "name yours as client_id") {
		t.Errorf("two machine users: %v", err)
	}
	x, err := f.svc.Exchange(ctx, federation.ExchangeInput{SubjectToken: ghToken(), ClientID: f.bot2.ID})
	if err != nil || jwtClaims(t, x.AccessToken.JWT)["sub"] != f.bot2.ID {
		t.Fatalf("with client_id: %v", err)
	}
	f.mustCreate(t, federation.CreateInput{UserID: f.bot2.ID, Condition: `claims.ref.startsWith("refs/heads/")`})
	_, err = f.svc.Exchange(ctx, federation.ExchangeInput{SubjectToken: ghToken(), ClientID: f.bot2.ID})
	if !strings.Contains(domain.MessageOf(err), "make their subjects or conditions exclusive") {
		t.Errorf("two of one machine user: %v", err)
	}
	// Exclusive conditions are no ambiguity.
	_, err = f.svc.Exchange(ctx, federation.ExchangeInput{SubjectToken: ghToken("ref", "refs/tags/v1"), ClientID: f.bot2.ID})
	if err != nil {
		t.Errorf("only the unconditional one matches a tag: %v", err)
	}
}

func jwtClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestConditionsAreTriedForOneQuotaAtMost: a subject whose credentials
// outnumber a machine user's quota (other users may add credentials for
// any subject) needs client_id before any condition is evaluated; named,
// only that machine user's are tried.
func TestConditionsAreTriedForOneQuotaAtMost(t *testing.T) {
	f := newFixture(t) // quota 3
	ctx := context.Background()
	for range 3 {
		f.mustCreate(t, federation.CreateInput{UserID: f.bot.ID, Condition: `claims.ref == "refs/heads/never"`})
	}
	f.mustCreate(t, federation.CreateInput{UserID: f.bot2.ID})
	_, err := f.svc.Exchange(ctx, federation.ExchangeInput{SubjectToken: ghToken()})
	if !strings.Contains(domain.MessageOf(err), "name yours as client_id") {
		t.Errorf("four credentials for one subject, quota 3: %v, want client_id asked for", err)
	}
	x, err := f.svc.Exchange(ctx, federation.ExchangeInput{SubjectToken: ghToken(), ClientID: f.bot2.ID})
	if err != nil || jwtClaims(t, x.AccessToken.JWT)["sub"] != f.bot2.ID {
		t.Fatalf("with client_id: %v", err)
	}
}

// TestAConditionStopsWhenItsTimeIsUp: an evaluation whose context ended
// does not hold, whatever it would have said.
func TestAConditionStopsWhenItsTimeIsUp(t *testing.T) {
	c, err := federation.NewConditions(10)
	if err != nil {
		t.Fatal(err)
	}
	items := make([]any, 50)
	for i := range items {
		items[i] = "x"
	}
	claims := map[string]any{"items": items}
	const cond = `claims.items.all(i, i == "x")`
	if ok, err := c.Holds(context.Background(), cond, claims); !ok || err != nil {
		t.Fatalf("in time: %v, %v; want true", ok, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ok, err := c.Holds(ctx, cond, claims); ok || err == nil {
		t.Errorf("with its context ended: %v, %v; want false and why", ok, err)
	}
}
