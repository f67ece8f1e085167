package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/oauth"
	"github.com/tokenservice/tokenservice/pkg/store"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// auditUserAgent is the user agent every call of TestAuditEvents sends:
// the events must carry it (over gRPC, grpc-go adds its own after it).
const auditUserAgent = "audit-test/1.0"

// auditEnv makes the limits TestAuditEvents runs into small.
var auditEnv = []string{
	"TOKENSERVICE_MAX_TOKENS_PER_USER", "6",
	"TOKENSERVICE_MAX_MACHINE_USERS_PER_OWNER", "1",
	"TOKENSERVICE_USER_CREATIONS_PER_HOUR", "3",
	"TOKENSERVICE_LOGIN_ATTEMPTS_PER_USER_AND_ADDRESS", "3",
	"TOKENSERVICE_LOGIN_ATTEMPTS_PER_ADDRESS", "0",
}

// auditCase does one thing, with ctx (its request id and user agent), and
// returns the events it must have recorded under that request id; setup
// done before, without ctx, records its own under others. The events'
// Seq, Time, Origin and ChainHash are not compared here.
type auditCase struct {
	name     string
	httpOnly bool // an OAuth endpoint: plain HTTP, run once, in the rest subtest
	grpcOnly bool // Envoy's check: gRPC only
	// client is the client address the events must carry ("": 127.0.0.1).
	client string
	run    func(t *testing.T, ctx context.Context) []*domain.AuditEvent
}

// TestAuditEvents: every event kind, over REST and gRPC on SQLite and
// MySQL, has its action, outcome, actor, subject, origin (client address,
// user agent, request id as sent) and details; and no event holds a
// secret the test saw (a plaintext token or its secret, a password, an
// access token).
func TestAuditEvents(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver), auditEnv...)
		trail, err := store.Open(store.Config{Driver: s.env["TOKENSERVICE_DB_DRIVER"], DSN: s.env["TOKENSERVICE_DB_DSN"]})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { trail.Close() })
		conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent(auditUserAgent))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		var secrets []string
		for _, c := range []caller{s.restCaller(t), {name: "grpc", conn: checkedConn{ClientConnInterface: conn, t: t}}} {
			t.Run(c.name, func(t *testing.T) {
				for i, tc := range auditCases(t, s, c, conn, &secrets) {
					if tc.httpOnly && c.name != "rest" || tc.grpcOnly && c.name != "grpc" {
						continue
					}
					t.Run(tc.name, func(t *testing.T) {
						id := fmt.Sprintf("audit-%s-%d", c.name, i)
						ctx := metadata.AppendToOutgoingContext(context.Background(), "x-request-id", id, "user-agent", auditUserAgent)
						want := tc.run(t, ctx)
						s.app.FlushAudit(context.Background())
						client := tc.client
						if client == "" {
							client = "127.0.0.1"
						}
						checkEvents(t, auditEventsOf(t, trail, id), want, domain.Origin{ClientAddress: client, UserAgent: auditUserAgent, RequestID: id})
					})
				}
			})
		}
		all, err := trail.ListAuditEvents(context.Background(), domain.AuditQuery{Limit: 100_000})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range all {
			if leak := secretIn(ev, secrets); leak != "" {
				t.Errorf("event %d (%s) holds the secret %.12s...", ev.Seq, ev.Action, leak)
			}
		}
		t.Logf("%d events, %d secrets looked for", len(all), len(secrets))
	})
}

// auditEventsOf returns the sealed events of request id.
func auditEventsOf(t *testing.T, trail *store.Store, id string) []*domain.AuditEvent {
	t.Helper()
	all, err := trail.ListAuditEvents(context.Background(), domain.AuditQuery{Limit: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	var mine []*domain.AuditEvent
	for _, ev := range all {
		if ev.Origin.RequestID == id {
			mine = append(mine, ev)
		}
	}
	return mine
}

// checkEvents compares got with want (in any order) but for their Seq,
// Time, Origin and ChainHash; and each one's origin with the request's
// (its user agent a prefix: grpc-go adds its own).
func checkEvents(t *testing.T, got, want []*domain.AuditEvent, origin domain.Origin) {
	t.Helper()
	key := func(e *domain.AuditEvent) string {
		return string(e.Action) + "/" + string(e.Outcome) + "/" + e.Subject.UserID + "/" + e.Subject.TokenID
	}
	sortEvents := func(es []*domain.AuditEvent) []domain.AuditEvent {
		out := make([]domain.AuditEvent, len(es))
		for i, e := range es {
			out[i] = *e
			out[i].Seq, out[i].Time, out[i].Origin, out[i].ChainHash = 0, time.Time{}, domain.Origin{}, nil
			if len(out[i].Details) == 0 {
				out[i].Details = nil
			}
		}
		slices.SortFunc(out, func(a, b domain.AuditEvent) int { return strings.Compare(key(&a), key(&b)) })
		return out
	}
	if diff := cmp.Diff(sortEvents(want), sortEvents(got)); diff != "" {
		t.Errorf("the events of the request (-want +got):\n%s", diff)
	}
	for _, ev := range got {
		if o := ev.Origin; o.ClientAddress != origin.ClientAddress || o.RequestID != origin.RequestID || !strings.HasPrefix(o.UserAgent, origin.UserAgent) {
			t.Errorf("%s: origin %+v, want %+v", ev.Action, o, origin)
		}
		if time.Since(ev.Time) > time.Minute || ev.Seq == 0 || len(ev.ChainHash) == 0 {
			t.Errorf("%s: time %v, seq %d, chain hash %x: want now, sealed", ev.Action, ev.Time, ev.Seq, ev.ChainHash)
		}
	}
}

// secretIn returns the secret one of ev's fields holds, whole or in part
// (a stored value is cut at 256 bytes: a prefix of an access token would
// be as bad), if any. A secret is looked for as each of its 16-byte
// pieces, but a plaintext API token, whose ID is no secret, whole (its
// secret part is a secret of its own).
func secretIn(ev *domain.AuditEvent, secrets []string) string {
	fields := []string{ev.Origin.ClientAddress, ev.Origin.UserAgent, ev.Origin.RequestID, ev.Origin.TraceID}
	for _, p := range []domain.AuditParty{ev.Actor, ev.Subject} {
		fields = append(fields, p.Kind, p.UserID, p.Username, p.OwnerID, p.TokenID)
	}
	for k, v := range ev.Details {
		fields = append(fields, k, v)
	}
	const piece = 16
	for _, f := range fields {
		for _, s := range secrets {
			if strings.HasPrefix(s, auth.TokenPrefix) || len(s) < piece {
				if strings.Contains(f, s) {
					return s
				}
				continue
			}
			for i := 0; i+piece <= len(s); i += piece / 2 {
				if strings.Contains(f, s[i:i+piece]) {
					return s
				}
			}
		}
	}
	return ""
}

// jtiOf returns the jti claim of an access token.
func jtiOf(t *testing.T, jwt string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.20s", jwt)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c.JTI
}

// auditCases returns the cases for caller c on s, users named after c,
// adding every secret they see to *secrets.
func auditCases(t *testing.T, s *service, c caller, conn grpc.ClientConnInterface, secrets *[]string) []auditCase {
	a := rpc{t: t, c: c}
	p := c.name + "-"
	keep := func(plaintext string) string {
		*secrets = append(*secrets, plaintext)
		if parsed, ok := auth.ParseAPIToken(plaintext); ok {
			*secrets = append(*secrets, parsed.Secret)
		}
		return plaintext
	}
	*secrets = append(*secrets, password, "new "+password, "wrong "+password)
	login := func(name string) string { return keep(a.login(name)) }
	create := func(bearer string, req *pb.CreateTokenRequest) *pb.CreateTokenResponse {
		resp := a.mustCreate(bearer, req)
		keep(resp.GetToken())
		return resp
	}
	userParty := func(id, name, owner string) domain.AuditParty {
		return domain.AuditParty{UserID: id, Username: name, OwnerID: owner}
	}
	actor := func(id, name, owner, token string) domain.AuditParty {
		return domain.AuditParty{Kind: domain.ActorUser, UserID: id, Username: name, OwnerID: owner, TokenID: token}
	}
	anonymous := domain.AuditParty{Kind: domain.ActorAnonymous}
	tokenOf := func(party domain.AuditParty, id string) domain.AuditParty { party.TokenID = id; return party }
	ev := func(action domain.AuditAction, outcome domain.AuditOutcome, by, subject domain.AuditParty, details ...string) *domain.AuditEvent {
		e := &domain.AuditEvent{Action: action, Outcome: outcome, Actor: by, Subject: subject}
		for i := 0; i+1 < len(details); i += 2 {
			e.With(details[i], details[i+1])
		}
		return e
	}
	rootID := s.mustUser(t, p+"root", "admin")
	rootTok := login(p + "root")
	root := actor(rootID, p+"root", "", idOf(rootTok))
	aliceID := s.mustUser(t, p+"alice", "human")
	aliceTok := login(p + "alice")
	alice := userParty(aliceID, p+"alice", "")
	aliceActor := actor(aliceID, p+"alice", "", idOf(aliceTok))

	return []auditCase{
		{name: "token.create", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			expire := time.Now().Add(time.Hour).Truncate(time.Second)
			resp := &pb.CreateTokenResponse{}
			if err := c.call(ctx, pb.TokenService_CreateToken_FullMethodName, aliceTok,
				&pb.CreateTokenRequest{Note: "ci", Scopes: []string{domain.ScopeTokensRead}, ExpireTime: timestamppb.New(expire)}, resp); err != nil {
				t.Fatal(describe(err))
			}
			keep(resp.GetToken())
			return []*domain.AuditEvent{ev(domain.ActionTokenCreate, domain.OutcomeSuccess, aliceActor, tokenOf(alice, resp.GetMetadata().GetId()),
				"scopes", domain.ScopeTokensRead, "expire_time", expire.UTC().Format(time.RFC3339Nano))}
		}},
		{name: "user.login and token.create with a password", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			resp := &pb.CreateTokenResponse{}
			if err := c.call(ctx, pb.TokenService_CreateToken_FullMethodName, "", &pb.CreateTokenRequest{Username: p + "alice", Password: password}, resp); err != nil {
				t.Fatal(describe(err))
			}
			keep(resp.GetToken())
			byPassword := actor(aliceID, p+"alice", "", "")
			return []*domain.AuditEvent{
				ev(domain.ActionUserLogin, domain.OutcomeSuccess, byPassword, alice),
				ev(domain.ActionTokenCreate, domain.OutcomeSuccess, byPassword, tokenOf(alice, resp.GetMetadata().GetId()),
					"scopes", strings.Join(resp.GetMetadata().GetScopes(), " ")),
			}
		}},
		{name: "user.login, wrong password", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			err := c.call(ctx, pb.TokenService_CreateToken_FullMethodName, "", &pb.CreateTokenRequest{Username: p + "alice", Password: "wrong " + password}, &pb.CreateTokenResponse{})
			wantCode(t, "a wrong password", err, codes.Unauthenticated)
			return []*domain.AuditEvent{ev(domain.ActionUserLogin, domain.OutcomeFailure, anonymous, alice, "reason", "wrong_password")}
		}},
		{name: "user.login, unknown user", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			err := c.call(ctx, pb.TokenService_CreateToken_FullMethodName, "", &pb.CreateTokenRequest{Username: p + "nobody", Password: password}, &pb.CreateTokenResponse{})
			wantCode(t, "an unknown user", err, codes.Unauthenticated)
			return []*domain.AuditEvent{ev(domain.ActionUserLogin, domain.OutcomeFailure, anonymous, domain.AuditParty{Username: p + "nobody"}, "reason", "unknown_user")}
		}},
		{name: "user.login, throttled", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			s.mustUser(t, p+"guessed", "human")
			for range 3 {
				a.create("", &pb.CreateTokenRequest{Username: p + "guessed", Password: "wrong " + password})
			}
			err := c.call(ctx, pb.TokenService_CreateToken_FullMethodName, "", &pb.CreateTokenRequest{Username: p + "guessed", Password: password}, &pb.CreateTokenResponse{})
			wantCode(t, "a fourth attempt", err, codes.ResourceExhausted)
			return []*domain.AuditEvent{ev(domain.ActionUserLogin, domain.OutcomeDenied, anonymous, domain.AuditParty{Username: p + "guessed"}, "reason", "limited_user_and_address")}
		}},
		{name: "token.create over the quota", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			fullID := s.mustUser(t, p+"full", "human")
			tok := login(p + "full")
			for range 5 {
				create(tok, &pb.CreateTokenRequest{})
			}
			err := c.call(ctx, pb.TokenService_CreateToken_FullMethodName, tok, &pb.CreateTokenRequest{}, &pb.CreateTokenResponse{})
			wantCode(t, "a create over the quota", err, codes.ResourceExhausted)
			return []*domain.AuditEvent{ev(domain.ActionTokenCreate, domain.OutcomeDenied, actor(fullID, p+"full", "", idOf(tok)), userParty(fullID, p+"full", ""),
				"reason", "quota_exceeded")}
		}},
		{name: "token.create of a scope not held", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			narrow := create(aliceTok, &pb.CreateTokenRequest{Scopes: []string{domain.ScopeTokensWrite}}).GetToken()
			err := c.call(ctx, pb.TokenService_CreateToken_FullMethodName, narrow, &pb.CreateTokenRequest{Scopes: []string{domain.ScopeUsersRead}}, &pb.CreateTokenResponse{})
			wantCode(t, "a scope not held", err, codes.PermissionDenied)
			a.del(aliceTok, idOf(narrow))
			return []*domain.AuditEvent{ev(domain.ActionTokenCreate, domain.OutcomeDenied, actor(aliceID, p+"alice", "", idOf(narrow)), alice,
				"reason", "insufficient_scope", "scope", domain.ScopeUsersRead)}
		}},
		{name: "token.create of an unknown scope", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			err := c.call(ctx, pb.TokenService_CreateToken_FullMethodName, aliceTok, &pb.CreateTokenRequest{Scopes: []string{"nosuch:scope"}}, &pb.CreateTokenResponse{})
			wantCode(t, "an unknown scope", err, codes.InvalidArgument)
			return []*domain.AuditEvent{ev(domain.ActionTokenCreate, domain.OutcomeDenied, aliceActor, alice, "reason", "invalid_scope", "scope", "nosuch:scope")}
		}},
		{name: "token.rotate", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			id := create(aliceTok, &pb.CreateTokenRequest{}).GetMetadata().GetId()
			resp := &pb.RotateTokenResponse{}
			if err := c.call(ctx, pb.TokenService_RotateToken_FullMethodName, aliceTok, &pb.RotateTokenRequest{TokenId: id, GracePeriod: durationpb.New(time.Hour)}, resp); err != nil {
				t.Fatal(describe(err))
			}
			keep(resp.GetToken())
			a.del(aliceTok, id)
			return []*domain.AuditEvent{ev(domain.ActionTokenRotate, domain.OutcomeSuccess, aliceActor, tokenOf(alice, id),
				"grace_period", "1h0m0s", "secret_generation", "1")}
		}},
		{name: "token.delete by its owner", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			id := create(aliceTok, &pb.CreateTokenRequest{}).GetMetadata().GetId()
			if err := c.call(ctx, pb.TokenService_DeleteToken_FullMethodName, aliceTok, &pb.DeleteTokenRequest{TokenId: id}, &pb.DeleteTokenResponse{}); err != nil {
				t.Fatal(describe(err))
			}
			return []*domain.AuditEvent{ev(domain.ActionTokenDelete, domain.OutcomeSuccess, aliceActor, tokenOf(alice, id), "cause", "owner")}
		}},
		{name: "token.delete of itself", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			tok := create(aliceTok, &pb.CreateTokenRequest{}).GetToken()
			if err := c.call(ctx, pb.TokenService_DeleteToken_FullMethodName, tok, &pb.DeleteTokenRequest{TokenId: idOf(tok)}, &pb.DeleteTokenResponse{}); err != nil {
				t.Fatal(describe(err))
			}
			return []*domain.AuditEvent{ev(domain.ActionTokenDelete, domain.OutcomeSuccess, actor(aliceID, p+"alice", "", idOf(tok)), tokenOf(alice, idOf(tok)), "cause", "self")}
		}},
		{name: "token.delete by an admin", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			id := create(aliceTok, &pb.CreateTokenRequest{}).GetMetadata().GetId()
			if err := c.call(ctx, pb.TokenService_DeleteToken_FullMethodName, rootTok, &pb.DeleteTokenRequest{TokenId: id}, &pb.DeleteTokenResponse{}); err != nil {
				t.Fatal(describe(err))
			}
			return []*domain.AuditEvent{ev(domain.ActionTokenDelete, domain.OutcomeSuccess, root, tokenOf(alice, id), "cause", "admin")}
		}},
		{name: "access_token.mint", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			tok := create(aliceTok, &pb.CreateTokenRequest{Scopes: []string{domain.ScopeTokensRead}}).GetToken()
			defer a.del(aliceTok, idOf(tok))
			resp := &pb.GetAccessTokenResponse{}
			if err := c.call(ctx, pb.TokenService_GetAccessToken_FullMethodName, "", &pb.GetAccessTokenRequest{Token: tok}, resp); err != nil {
				t.Fatal(describe(err))
			}
			keep(resp.GetAccessToken())
			party := tokenOf(alice, idOf(tok))
			by := party
			by.Kind = domain.ActorUser
			return []*domain.AuditEvent{ev(domain.ActionAccessTokenMint, domain.OutcomeSuccess, by, party,
				"jti", jtiOf(t, resp.GetAccessToken()), "aud", "http://tokenservice.test", "scope", domain.ScopeTokensRead, "secret_generation", "0")}
		}},
		{name: "access_token.mint of a wrong secret", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			tok := create(aliceTok, &pb.CreateTokenRequest{}).GetToken()
			defer a.del(aliceTok, idOf(tok))
			other, _ := auth.NewAPIToken(rand.Reader)
			wrong := keep(auth.APIToken{ID: idOf(tok), Secret: other.Secret}.String())
			err := c.call(ctx, pb.TokenService_GetAccessToken_FullMethodName, "", &pb.GetAccessTokenRequest{Token: wrong}, &pb.GetAccessTokenResponse{})
			wantCode(t, "a wrong secret", err, codes.Unauthenticated)
			return []*domain.AuditEvent{ev(domain.ActionAccessTokenMint, domain.OutcomeFailure, anonymous, domain.AuditParty{TokenID: idOf(tok)}, "reason", "wrong_secret")}
		}},
		{name: "access_token.mint of an unknown token", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			unknown, _ := auth.NewAPIToken(rand.Reader)
			keep(unknown.String())
			err := c.call(ctx, pb.TokenService_GetAccessToken_FullMethodName, "", &pb.GetAccessTokenRequest{Token: unknown.String()}, &pb.GetAccessTokenResponse{})
			wantCode(t, "an unknown token", err, codes.Unauthenticated)
			return []*domain.AuditEvent{ev(domain.ActionAccessTokenMint, domain.OutcomeFailure, anonymous, domain.AuditParty{TokenID: unknown.ID}, "reason", "unknown")}
		}},
		{name: "access_token.mint of a scope not held", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			tok := create(aliceTok, &pb.CreateTokenRequest{Scopes: []string{domain.ScopeTokensRead}}).GetToken()
			defer a.del(aliceTok, idOf(tok))
			err := c.call(ctx, pb.TokenService_GetAccessToken_FullMethodName, "", &pb.GetAccessTokenRequest{Token: tok, Scopes: []string{domain.ScopeUsersRead}}, &pb.GetAccessTokenResponse{})
			wantCode(t, "a scope not held", err, codes.InvalidArgument)
			party := tokenOf(alice, idOf(tok))
			by := party
			by.Kind = domain.ActorUser
			return []*domain.AuditEvent{ev(domain.ActionAccessTokenMint, domain.OutcomeDenied, by, party, "reason", "invalid_scope", "scope", domain.ScopeUsersRead)}
		}},
		{name: "token.authenticate of a deleted API token", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			tok := create(aliceTok, &pb.CreateTokenRequest{}).GetToken()
			a.del(aliceTok, idOf(tok))
			err := c.call(ctx, pb.TokenService_GetToken_FullMethodName, tok, &pb.GetTokenRequest{TokenId: idOf(tok)}, &pb.GetTokenResponse{})
			wantCode(t, "a deleted token", err, codes.Unauthenticated)
			return []*domain.AuditEvent{ev(domain.ActionTokenAuthenticate, domain.OutcomeFailure, anonymous, domain.AuditParty{TokenID: idOf(tok)},
				"credential", "api_token", "reason", "revoked")}
		}},
		{name: "token.authenticate of an access token of a deleted API token", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			tok := create(aliceTok, &pb.CreateTokenRequest{}).GetToken()
			x, err := a.exchange("", tok)
			if err != nil {
				t.Fatal(describe(err))
			}
			keep(x.GetAccessToken())
			a.del(aliceTok, idOf(tok))
			err = c.call(ctx, pb.TokenService_GetToken_FullMethodName, x.GetAccessToken(), &pb.GetTokenRequest{TokenId: idOf(tok)}, &pb.GetTokenResponse{})
			wantCode(t, "an access token of a deleted token", err, codes.Unauthenticated)
			return []*domain.AuditEvent{ev(domain.ActionTokenAuthenticate, domain.OutcomeFailure, anonymous, domain.AuditParty{TokenID: idOf(tok)},
				"credential", "access_token", "reason", "revoked")}
		}},
		{name: "token.authenticate at Envoy's check", grpcOnly: true, client: "203.0.113.7", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			tok := create(aliceTok, &pb.CreateTokenRequest{}).GetToken()
			a.del(aliceTok, idOf(tok))
			md, _ := metadata.FromOutgoingContext(ctx)
			// The origin is the request's Envoy asks about, not Envoy's own call.
			req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
					SocketAddress: &corev3.SocketAddress{Address: "203.0.113.7"}}}},
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/orders",
					Headers: map[string]string{"authorization": "Bearer " + tok, "user-agent": auditUserAgent, "x-request-id": md.Get("x-request-id")[0]}}},
			}}
			resp, err := authv3.NewAuthorizationClient(conn).Check(metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-request-id", "envoys-own")), req)
			if err != nil || resp.GetDeniedResponse() == nil {
				t.Fatalf("Check of a deleted token: %v, %v; want denied", resp, err)
			}
			return []*domain.AuditEvent{ev(domain.ActionTokenAuthenticate, domain.OutcomeFailure, anonymous, domain.AuditParty{TokenID: idOf(tok)},
				"credential", "api_token", "reason", "revoked")}
		}},
		{name: "request.deny", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			narrow := create(aliceTok, &pb.CreateTokenRequest{Scopes: []string{domain.ScopeTokensRead}}).GetToken()
			defer a.del(aliceTok, idOf(narrow))
			err := c.call(ctx, pb.UserService_CreateUser_FullMethodName, narrow, &pb.CreateUserRequest{Username: p + "never", Machine: true}, &pb.CreateUserResponse{})
			wantCode(t, "a scope not held", err, codes.PermissionDenied)
			return []*domain.AuditEvent{ev(domain.ActionRequestDeny, domain.OutcomeDenied, actor(aliceID, p+"alice", "", idOf(narrow)), domain.AuditParty{},
				"method", pb.UserService_CreateUser_FullMethodName, "scope", domain.ScopeUsersWrite, "reason", "insufficient_scope")}
		}},
		{name: "user.create", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			resp := &pb.CreateUserResponse{}
			if err := c.call(ctx, pb.UserService_CreateUser_FullMethodName, rootTok, &pb.CreateUserRequest{Username: p + "carol", Password: password}, resp); err != nil {
				t.Fatal(describe(err))
			}
			return []*domain.AuditEvent{ev(domain.ActionUserCreate, domain.OutcomeSuccess, root, userParty(resp.GetUser().GetId(), p+"carol", ""), "admin", "false")}
		}},
		{name: "machine_user.create", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			resp := &pb.CreateUserResponse{}
			if err := c.call(ctx, pb.UserService_CreateUser_FullMethodName, aliceTok, &pb.CreateUserRequest{Username: p + "alices-bot", Machine: true}, resp); err != nil {
				t.Fatal(describe(err))
			}
			return []*domain.AuditEvent{ev(domain.ActionMachineUserCreate, domain.OutcomeSuccess, aliceActor, userParty(resp.GetUser().GetId(), p+"alices-bot", aliceID), "admin", "false")}
		}},
		{name: "machine_user.create over the quota", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			id := s.mustUser(t, p+"owner", "human")
			tok := login(p + "owner")
			a.mustCreateUser(tok, &pb.CreateUserRequest{Username: p + "owners-bot", Machine: true})
			err := c.call(ctx, pb.UserService_CreateUser_FullMethodName, tok, &pb.CreateUserRequest{Username: p + "owners-2nd-bot", Machine: true}, &pb.CreateUserResponse{})
			wantCode(t, "a machine user over the quota", err, codes.ResourceExhausted)
			return []*domain.AuditEvent{ev(domain.ActionMachineUserCreate, domain.OutcomeDenied, actor(id, p+"owner", "", idOf(tok)),
				domain.AuditParty{Username: p + "owners-2nd-bot", OwnerID: id}, "reason", "quota_exceeded")}
		}},
		{name: "machine_user.create over the hourly limit", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			id := s.mustUser(t, p+"eager", "human")
			tok := login(p + "eager")
			for i := range 3 {
				a.users().CreateUser(as(tok), &pb.CreateUserRequest{Username: fmt.Sprintf("%seager-bot%d", p, i), Machine: true})
			}
			err := c.call(ctx, pb.UserService_CreateUser_FullMethodName, tok, &pb.CreateUserRequest{Username: p + "eager-bot", Machine: true}, &pb.CreateUserResponse{})
			wantCode(t, "a creation over the limit", err, codes.ResourceExhausted)
			return []*domain.AuditEvent{ev(domain.ActionMachineUserCreate, domain.OutcomeDenied, actor(id, p+"eager", "", idOf(tok)),
				domain.AuditParty{Username: p + "eager-bot", OwnerID: id}, "reason", "too_many_user_creations")}
		}},
		{name: "user.delete with its machine user and tokens", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			daveID := s.mustUser(t, p+"dave", "human")
			botID := s.mustUser(t, p+"daves-bot", "machine:"+p+"dave")
			daveTok := login(p + "dave")
			botTok := create(daveTok, &pb.CreateTokenRequest{UserId: botID}).GetMetadata().GetId()
			if err := c.call(ctx, pb.UserService_DeleteUser_FullMethodName, rootTok, &pb.DeleteUserRequest{UserId: daveID}, &pb.DeleteUserResponse{}); err != nil {
				t.Fatal(describe(err))
			}
			dave, bot := userParty(daveID, p+"dave", ""), userParty(botID, p+"daves-bot", daveID)
			return []*domain.AuditEvent{
				ev(domain.ActionUserDelete, domain.OutcomeSuccess, root, dave),
				ev(domain.ActionMachineUserDelete, domain.OutcomeSuccess, root, bot, "cause", "user_deletion"),
				ev(domain.ActionTokenDelete, domain.OutcomeSuccess, root, tokenOf(dave, idOf(daveTok)), "cause", "user_deletion"),
				ev(domain.ActionTokenDelete, domain.OutcomeSuccess, root, tokenOf(bot, botTok), "cause", "user_deletion"),
			}
		}},
		{name: "machine_user.delete", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			frankID := s.mustUser(t, p+"frank", "human")
			botID := s.mustUser(t, p+"franks-bot", "machine:"+p+"frank")
			tok := login(p + "frank")
			if err := c.call(ctx, pb.UserService_DeleteUser_FullMethodName, tok, &pb.DeleteUserRequest{UserId: botID}, &pb.DeleteUserResponse{}); err != nil {
				t.Fatal(describe(err))
			}
			return []*domain.AuditEvent{ev(domain.ActionMachineUserDelete, domain.OutcomeSuccess, actor(frankID, p+"frank", "", idOf(tok)), userParty(botID, p+"franks-bot", frankID))}
		}},
		{name: "user.change_password", run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			id := s.mustUser(t, p+"gina", "human")
			tok := login(p + "gina")
			if err := c.call(ctx, pb.UserService_ChangePassword_FullMethodName, tok,
				&pb.ChangePasswordRequest{UserId: id, OldPassword: password, NewPassword: "new " + password}, &pb.ChangePasswordResponse{}); err != nil {
				t.Fatal(describe(err))
			}
			gina := userParty(id, p+"gina", "")
			return []*domain.AuditEvent{
				ev(domain.ActionUserLogin, domain.OutcomeSuccess, actor(id, p+"gina", "", ""), gina), // the old password's check
				ev(domain.ActionUserChangePassword, domain.OutcomeSuccess, actor(id, p+"gina", "", idOf(tok)), gina),
			}
		}},
		{name: "access_token.mint at the token endpoint", httpOnly: true, run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			tok := create(aliceTok, &pb.CreateTokenRequest{Scopes: []string{domain.ScopeTokensRead}}).GetToken()
			defer a.del(aliceTok, idOf(tok))
			out := postOAuth(t, s, ctx, oauth.TokenPath, "", url.Values{"grant_type": {"client_credentials"}, "client_id": {idOf(tok)}, "client_secret": {tok}})
			jwt, _ := out["access_token"].(string)
			keep(jwt)
			party := tokenOf(alice, idOf(tok))
			by := party
			by.Kind = domain.ActorUser
			return []*domain.AuditEvent{ev(domain.ActionAccessTokenMint, domain.OutcomeSuccess, by, party,
				"jti", jtiOf(t, jwt), "aud", "http://tokenservice.test", "scope", domain.ScopeTokensRead, "secret_generation", "0")}
		}},
		{name: "token.delete by revocation", httpOnly: true, run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			tok := create(aliceTok, &pb.CreateTokenRequest{}).GetToken()
			postOAuth(t, s, ctx, oauth.RevokePath, "", url.Values{"token": {tok}})
			return []*domain.AuditEvent{ev(domain.ActionTokenDelete, domain.OutcomeSuccess, anonymous, tokenOf(alice, idOf(tok)), "cause", "revocation")}
		}},
		{name: "token.end_grace by revocation", httpOnly: true, run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			old := create(aliceTok, &pb.CreateTokenRequest{}).GetToken()
			defer a.del(aliceTok, idOf(old))
			keep(rotate(t, c, aliceTok, idOf(old), durationpb.New(time.Hour)).GetToken())
			postOAuth(t, s, ctx, oauth.RevokePath, "", url.Values{"token": {old}})
			return []*domain.AuditEvent{ev(domain.ActionTokenEndGrace, domain.OutcomeSuccess, anonymous, tokenOf(alice, idOf(old)),
				"cause", "revocation", "secret_generation", "0")}
		}},
		{name: "token.introspect of another's token", httpOnly: true, run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			tok := create(aliceTok, &pb.CreateTokenRequest{}).GetToken()
			defer a.del(aliceTok, idOf(tok))
			if out := postOAuth(t, s, ctx, oauth.IntrospectPath, "Bearer "+rootTok, url.Values{"token": {tok}}); out["active"] != true {
				t.Fatalf("introspection: %v", out)
			}
			return []*domain.AuditEvent{ev(domain.ActionTokenIntrospect, domain.OutcomeSuccess, root, tokenOf(alice, idOf(tok)), "token_kind", "api_token")}
		}},
		{name: "token.introspect of one's own token: none", httpOnly: true, run: func(t *testing.T, ctx context.Context) []*domain.AuditEvent {
			if out := postOAuth(t, s, ctx, oauth.IntrospectPath, "Bearer "+rootTok, url.Values{"token": {rootTok}}); out["active"] != true {
				t.Fatalf("introspection: %v", out)
			}
			return nil
		}},
	}
}

// postOAuth posts form to an OAuth endpoint of s with the request id and
// user agent of ctx's outgoing metadata, and returns the JSON answer.
func postOAuth(t *testing.T, s *service, ctx context.Context, path, authorization string, form url.Values) map[string]any {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "POST", s.httpURL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	md, _ := metadata.FromOutgoingContext(ctx)
	req.Header.Set("X-Request-Id", md.Get("x-request-id")[0])
	req.Header.Set("User-Agent", md.Get("user-agent")[0])
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	var out map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%s: not JSON: %s", path, body)
		}
	}
	return out
}
