package tokens

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// recorded is an Audit that keeps what it is given.
type recorded []*domain.AuditEvent

func (r *recorded) Record(ev *domain.AuditEvent) { *r = append(*r, ev) }

// writtenTokens is a domain.Tokens of one token that keeps the events each
// write is given (the store writes them in the write's transaction).
type writtenTokens struct {
	domain.Tokens
	token   *domain.Token
	created error // CreateToken's answer
	events  []*domain.AuditEvent
}

func (w *writtenTokens) CreateToken(_ context.Context, t *domain.Token, _ int, events ...*domain.AuditEvent) error {
	w.events = append(w.events, events...)
	return w.created
}

func (w *writtenTokens) TokenByID(_ context.Context, id string) (*domain.Token, error) {
	if w.token != nil && w.token.ID == id {
		return w.token, nil
	}
	return nil, domain.Errorf(domain.KindNotFound, "token not found")
}

func (w *writtenTokens) FreshTokenByID(ctx context.Context, id string) (*domain.Token, error) {
	return w.TokenByID(ctx, id)
}

func (w *writtenTokens) CurrentTokenByID(ctx context.Context, id string) (*domain.Token, error) {
	return w.TokenByID(ctx, id)
}

func (w *writtenTokens) DeleteToken(_ context.Context, _ string, _ time.Time, events ...*domain.AuditEvent) error {
	w.events = append(w.events, events...)
	return nil
}

// TestCreateWritesItsEventWithTheToken: the token.create event goes to the
// store with the token (into its transaction), names the owner and the
// new token, and holds neither the plaintext nor its secret; a create
// over the quota writes none and is recorded as denied.
func TestCreateWritesItsEventWithTheToken(t *testing.T) {
	store, audit := &writtenTokens{}, &recorded{}
	svc := New(Config{}, Deps{Tokens: store, Users: oneUser{}, Audit: audit, Clock: time.Now, Rand: rand.Reader})
	alice := &domain.User{ID: "alice00000000000", Username: "alice"}
	caller := &domain.Principal{User: alice, TokenID: "callerTTTTTTTTTT", Scopes: domain.NewScopes(domain.ScopeTokensRead, domain.ScopeTokensWrite)}
	plain, tok, err := svc.Create(context.Background(), caller, CreateInput{Scopes: []string{domain.ScopeTokensRead}})
	if err != nil {
		t.Fatal(err)
	}
	if len(store.events) != 1 || len(*audit) != 0 {
		t.Fatalf("%d events written with the token, %d recorded apart; want 1 and 0", len(store.events), len(*audit))
	}
	ev := store.events[0]
	want := domain.AuditParty{UserID: alice.ID, Username: "alice", TokenID: tok.ID}
	if ev.Action != domain.ActionTokenCreate || ev.Outcome != domain.OutcomeSuccess || ev.Subject != want ||
		ev.Actor.TokenID != caller.TokenID || ev.Details["scopes"] != domain.ScopeTokensRead {
		t.Errorf("event %+v, want token.create of %+v by the caller's token with scopes tokens:read", ev, want)
	}
	parsed, _ := auth.ParseAPIToken(plain)
	if text := ev.Clean().DetailsJSON() + ev.Subject.TokenID + ev.Actor.TokenID; strings.Contains(text, parsed.Secret) {
		t.Error("the event holds the secret")
	}

	store.events, store.created = nil, domain.ErrLimitReached
	_, _, err = svc.Create(context.Background(), caller, CreateInput{})
	if domain.ReasonOf(err) != domain.ReasonQuotaExceeded || len(*audit) != 1 {
		t.Fatalf("over the quota: %v, %d events recorded; want QUOTA_EXCEEDED and 1", err, len(*audit))
	}
	if ev := (*audit)[0]; ev.Outcome != domain.OutcomeDenied || ev.Details["reason"] != "quota_exceeded" || ev.Subject.UserID != alice.ID {
		t.Errorf("the refusal's event %+v, want denied, quota_exceeded, of alice", ev)
	}
}

// TestDeleteSaysWhy: a token.delete event's cause is self when the token
// deletes itself, owner for its user or its machine user's owner, admin
// for anyone else.
func TestDeleteSaysWhy(t *testing.T) {
	owner := &domain.User{ID: "owner00000000000", Username: "owner"}
	bot := &domain.User{ID: "bot0000000000000", Username: "bot", OwnerID: owner.ID}
	root := &domain.User{ID: "root000000000000", Username: "root", Admin: true}
	for _, c := range []struct {
		name   string
		user   *domain.User // the token's
		caller *domain.Principal
		want   string
	}{
		{"itself", owner, &domain.Principal{User: owner, TokenID: "tokTTTTTTTTTTTTT", AllScopes: true}, domain.CauseSelf},
		{"its user", owner, &domain.Principal{User: owner, AllScopes: true}, domain.CauseOwner},
		{"its machine user's owner", bot, &domain.Principal{User: owner, AllScopes: true}, domain.CauseOwner},
		{"an admin", owner, &domain.Principal{User: root, AllScopes: true}, domain.CauseAdmin},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := &writtenTokens{token: &domain.Token{ID: "tokTTTTTTTTTTTTT", UserID: c.user.ID}}
			svc := New(Config{}, Deps{Tokens: store, Users: usersOf{us: []*domain.User{owner, bot, root}}, Clock: time.Now, Rand: rand.Reader})
			if err := svc.Delete(context.Background(), c.caller, store.token.ID); err != nil {
				t.Fatal(err)
			}
			if len(store.events) != 1 || store.events[0].Details[domain.DetailCause] != c.want || store.events[0].Subject.Username != c.user.Username {
				t.Errorf("events %+v, want one token.delete of %s's token, cause %s", store.events, c.user.Username, c.want)
			}
		})
	}
}

// usersOf is a domain.Users of these users.
type usersOf struct {
	domain.Users
	us []*domain.User
}

func (f usersOf) UserByID(_ context.Context, id string) (*domain.User, error) {
	for _, u := range f.us {
		if u.ID == id {
			return u, nil
		}
	}
	return nil, domain.Errorf(domain.KindNotFound, "user not found")
}

// TestMintIsRecordedOncePerAccessToken: an exchange that mints records
// the access token's jti; one the minter answers with an access token it
// minted before records nothing more (that jti is recorded); a wrong
// secret is recorded as a failure naming the token, never its secret.
func TestMintIsRecordedOncePerAccessToken(t *testing.T) {
	now := time.Now()
	k, _ := auth.NewSigningKey(rand.Reader, now.Add(-time.Hour))
	ks, _ := auth.NewKeySet([]*domain.SigningKey{k}, now, time.Hour)
	minter := auth.NewMinter(auth.KeyRingOf(ks), auth.MinterConfig{Issuer: "iss", Audience: "aud", Lifetime: time.Minute, Reuse: time.Minute})
	plain, _ := auth.NewAPIToken(rand.Reader)
	store := &writtenTokens{token: &domain.Token{ID: plain.ID, UserID: "u", SecretHash: auth.HashSecret(plain.Secret), Scopes: domain.ServiceScopes}}
	audit := &recorded{}
	bot := &domain.User{ID: "u", Username: "bot", OwnerID: "o"}
	svc := New(Config{}, Deps{Users: usersOf{us: []*domain.User{bot}}, Tokens: store, Minter: minter, Audit: audit, Clock: time.Now, Rand: rand.Reader})
	x, err := svc.Exchange(context.Background(), ExchangeInput{APIToken: plain.String()})
	if err != nil {
		t.Fatal(err)
	}
	again, err := svc.Exchange(context.Background(), ExchangeInput{APIToken: plain.String()})
	if err != nil || again.AccessToken.JWT != x.AccessToken.JWT {
		t.Fatalf("the second exchange: %v; want the access token reused", err)
	}
	claims, _ := minter.Verify(x.AccessToken.JWT, time.Now())
	if len(*audit) != 1 || (*audit)[0].Action != domain.ActionAccessTokenMint || (*audit)[0].Details["jti"] != claims.JTI ||
		(*audit)[0].Subject.TokenID != plain.ID || (*audit)[0].Details["aud"] != "aud" ||
		(*audit)[0].Actor.OwnerID != "o" || (*audit)[0].Subject.OwnerID != "o" {
		t.Fatalf("events %+v, want one access_token.mint of jti %s from %s for aud, by the machine user of owner o", *audit, claims.JTI, plain.ID)
	}
	other, _ := auth.NewAPIToken(rand.Reader)
	wrong := auth.APIToken{ID: plain.ID, Secret: other.Secret}
	if _, err := svc.Exchange(context.Background(), ExchangeInput{APIToken: wrong.String()}); err == nil {
		t.Fatal("a wrong secret was exchanged")
	}
	ev := (*audit)[len(*audit)-1]
	if ev.Outcome != domain.OutcomeFailure || ev.Details["reason"] != string(OutcomeWrongSecret) || ev.Subject.TokenID != plain.ID || ev.Actor.Kind != domain.ActorAnonymous {
		t.Errorf("the wrong secret's event %+v, want an anonymous failure, wrong_secret, naming the token", ev)
	}
	if strings.Contains(ev.Clean().DetailsJSON(), other.Secret) {
		t.Error("the event holds the secret tried")
	}
}
