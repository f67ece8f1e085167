package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/auth"
)

// rpc wraps a caller with typed helpers that fail the test on error.
type rpc struct {
	t *testing.T
	c caller
}

func (a rpc) create(bearer string, req *pb.CreateTokenRequest) (*pb.CreateTokenResponse, error) {
	resp := &pb.CreateTokenResponse{}
	return resp, a.c.call(context.Background(), pb.TokenService_CreateToken_FullMethodName, bearer, req, resp)
}

func (a rpc) mustCreate(bearer string, req *pb.CreateTokenRequest) *pb.CreateTokenResponse {
	a.t.Helper()
	resp, err := a.create(bearer, req)
	if err != nil {
		a.t.Fatalf("CreateToken: %s", describe(err))
	}
	return resp
}

// login creates a token for a human user with username and password.
func (a rpc) login(username string) string {
	a.t.Helper()
	return a.mustCreate("", &pb.CreateTokenRequest{Username: username, Password: password}).GetToken()
}

func (a rpc) get(bearer, id string) (*pb.GetTokenResponse, error) {
	resp := &pb.GetTokenResponse{}
	return resp, a.c.call(context.Background(), pb.TokenService_GetToken_FullMethodName, bearer, &pb.GetTokenRequest{TokenId: id}, resp)
}

func (a rpc) list(bearer string, req *pb.ListTokensRequest) (*pb.ListTokensResponse, error) {
	resp := &pb.ListTokensResponse{}
	return resp, a.c.call(context.Background(), pb.TokenService_ListTokens_FullMethodName, bearer, req, resp)
}

func (a rpc) del(bearer, id string) error {
	return a.c.call(context.Background(), pb.TokenService_DeleteToken_FullMethodName, bearer, &pb.DeleteTokenRequest{TokenId: id}, &pb.DeleteTokenResponse{})
}

func (a rpc) exchange(bearer, token string) (*pb.GetAccessTokenResponse, error) {
	resp := &pb.GetAccessTokenResponse{}
	return resp, a.c.call(context.Background(), pb.TokenService_GetAccessToken_FullMethodName, bearer, &pb.GetAccessTokenRequest{Token: token}, resp)
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if status.Code(err) != want {
		t.Errorf("%s: got %s, want %v", what, describe(err), want)
	}
}

// otherDigit returns a base62 digit other than c.
func otherDigit(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func idOf(plaintext string) string {
	return plaintext[len(auth.TokenPrefix) : len(auth.TokenPrefix)+auth.IDLen]
}

func TestCreateShowsPlaintextOnceAndStoresOnlyAHash(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		a := rpc{t, c}
		user := c.name + "-alice"
		uid := s.mustUser(t, user, "human")
		expire := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
		created := a.mustCreate("", &pb.CreateTokenRequest{Username: user, Password: password, Note: "deploy ' OR 1=1; --", ExpireTime: timestamppb.New(expire)})
		parsed, ok := auth.ParseAPIToken(created.GetToken())
		if !ok {
			t.Fatalf("plaintext %q is not a well-formed token", created.GetToken())
		}
		md := created.GetMetadata()
		if md.GetId() != parsed.ID || md.GetUserId() != uid || md.GetNote() != "deploy ' OR 1=1; --" ||
			!md.GetExpireTime().AsTime().Equal(expire) || md.GetCreateTime() == nil {
			t.Errorf("metadata %v does not describe the token", md)
		}
		got, err := a.get(created.GetToken(), parsed.ID)
		if err != nil {
			t.Fatalf("GetToken: %s", describe(err))
		}
		if strings.Contains(got.String(), parsed.Secret) {
			t.Error("GetToken returned the secret")
		}
		if !got.GetToken().GetCreateTime().AsTime().Equal(md.GetCreateTime().AsTime()) || got.GetToken().GetNote() != md.GetNote() {
			t.Errorf("GetToken = %v, want %v", got.GetToken(), md)
		}

		// The database holds the SHA-256 of the secret and nothing of the plaintext.
		db := s.openDB(t)
		var hash []byte
		if err := db.QueryRow("SELECT secret_hash FROM tokens WHERE id = ?", parsed.ID).Scan(&hash); err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256([]byte(parsed.Secret)); string(hash) != string(sum[:]) {
			t.Errorf("stored hash %x is not the secret's SHA-256", hash)
		}
		s.assertNotInDatabase(t, db, parsed.Secret, created.GetToken(), password)
	})
}

func TestBadCredentialsAreUnauthenticated(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		a := rpc{t, c}
		user := c.name + "-bob"
		s.mustUser(t, user, "human")
		good := a.login(user)
		expiring := a.mustCreate(good, &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(1500 * time.Millisecond))}).GetToken()
		deleted := a.login(user)
		if err := a.del(good, idOf(deleted)); err != nil {
			t.Fatal(describe(err))
		}
		p, _ := auth.ParseAPIToken(good)
		wrongSecret := auth.APIToken{ID: p.ID, Secret: strings.Repeat("A", auth.SecretLen)}.String()
		neverExisted := auth.APIToken{ID: strings.Repeat("Z", auth.IDLen), Secret: p.Secret}.String()
		access, err := a.exchange("", good)
		if err != nil {
			t.Fatal(describe(err))
		}
		time.Sleep(1600 * time.Millisecond) // past the expiring token's expire_time

		for name, bearer := range map[string]string{
			"missing":       "",
			"malformed":     "hello",
			"bad checksum":  good[:len(good)-1] + otherDigit(good[len(good)-1]),
			"wrong secret":  wrongSecret,
			"never existed": neverExisted,
			"deleted":       deleted,
			"expired":       expiring,
			"mangled jwt":   access.GetAccessToken() + "x",
		} {
			_, err := a.list(bearer, &pb.ListTokensRequest{})
			wantCode(t, "ListTokens with a "+name+" bearer", err, codes.Unauthenticated)
			if err != nil && status.Convert(err).Message() != "invalid or missing credentials" {
				t.Errorf("%s: message %q differs from the others", name, status.Convert(err).Message())
			}
			if name != "missing" {
				_, err = a.exchange("", bearer)
				wantCode(t, "GetAccessToken of a "+name+" token", err, codes.Unauthenticated)
			}
		}
		// Expired and deleted tokens are not listed.
		if listed, err := a.list(good, &pb.ListTokensRequest{}); err != nil || len(listed.GetTokens()) != 1 || listed.GetTokens()[0].GetId() != p.ID {
			t.Errorf("ListTokens after expiry and delete: %v, %s; want only the good token", listed.GetTokens(), describe(err))
		}
		_, err = a.create("", &pb.CreateTokenRequest{Username: user, Password: "wrong password"})
		wantCode(t, "CreateToken with a wrong password", err, codes.Unauthenticated)
		_, err = a.create("", &pb.CreateTokenRequest{Username: c.name + "-nobody", Password: password})
		wantCode(t, "CreateToken for an unknown user", err, codes.Unauthenticated)
		_, err = a.create("", &pb.CreateTokenRequest{})
		wantCode(t, "CreateToken with no credentials", err, codes.Unauthenticated)
		_, err = a.create(good, &pb.CreateTokenRequest{Username: user, Password: password})
		wantCode(t, "CreateToken with both a bearer and a password", err, codes.InvalidArgument)
		_, err = a.create("", &pb.CreateTokenRequest{Username: user})
		wantCode(t, "CreateToken with a username and no password", err, codes.InvalidArgument)

		// Both kinds of bearer work, on every method that reads; only an
		// API token makes tokens (TestAccessTokensMakeNoLastingCredentials).
		for name, bearer := range map[string]string{"api token": good, "access token": access.GetAccessToken()} {
			if _, err := a.list(bearer, &pb.ListTokensRequest{}); err != nil {
				t.Errorf("ListTokens with an %s: %s", name, describe(err))
			}
			if _, err := a.get(bearer, p.ID); err != nil {
				t.Errorf("GetToken with an %s: %s", name, describe(err))
			}
		}
		if _, err := a.create(good, &pb.CreateTokenRequest{}); err != nil {
			t.Errorf("CreateToken with an API token: %s", describe(err))
		}
		// GetAccessToken takes the API token as the bearer when the body has none, but not an access token.
		if _, err := a.exchange(good, ""); err != nil {
			t.Errorf("GetAccessToken with the token as the bearer: %s", describe(err))
		}
		_, err = a.exchange(access.GetAccessToken(), "")
		wantCode(t, "GetAccessToken of an access token", err, codes.Unauthenticated)
	})
}

func TestAuthorization(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		a := rpc{t, c}
		owner, other, admin := c.name+"-owner", c.name+"-other", c.name+"-admin"
		ownerID := s.mustUser(t, owner, "human")
		otherID := s.mustUser(t, other, "human")
		botID := s.mustUser(t, c.name+"-bot", "machine:"+owner)
		otherBotID := s.mustUser(t, c.name+"-otherbot", "machine:"+other)
		s.mustUser(t, admin, "admin")
		ownerTok, otherTok, adminTok := a.login(owner), a.login(other), a.login(admin)

		// An empty user_id is the caller; the own ID and owned machine users are allowed.
		for _, uid := range []string{"", ownerID, botID} {
			created, err := a.create(ownerTok, &pb.CreateTokenRequest{UserId: uid})
			if err != nil {
				t.Errorf("owner creating for %q: %s", uid, describe(err))
				continue
			}
			want := uid
			if want == "" {
				want = ownerID
			}
			if created.GetMetadata().GetUserId() != want {
				t.Errorf("token for %q belongs to %q", uid, created.GetMetadata().GetUserId())
			}
			if _, err := a.list(ownerTok, &pb.ListTokensRequest{UserId: uid}); err != nil {
				t.Errorf("owner listing %q: %s", uid, describe(err))
			}
		}
		// Another human, another's machine user, or an unknown ID: permission denied.
		for _, uid := range []string{otherID, otherBotID, "nosuchuser000000"} {
			_, err := a.create(ownerTok, &pb.CreateTokenRequest{UserId: uid})
			wantCode(t, "owner creating for "+uid, err, codes.PermissionDenied)
			_, err = a.list(ownerTok, &pb.ListTokensRequest{UserId: uid})
			wantCode(t, "owner listing "+uid, err, codes.PermissionDenied)
		}
		// An admin may name anyone.
		if _, err := a.create(adminTok, &pb.CreateTokenRequest{UserId: otherBotID}); err != nil {
			t.Errorf("admin creating for another's machine user: %s", describe(err))
		}
		if _, err := a.list(adminTok, &pb.ListTokensRequest{UserId: otherID}); err != nil {
			t.Errorf("admin listing another user: %s", describe(err))
		}

		// A machine user's token acts for the machine user, and it may not act for its owner.
		botTok := a.mustCreate(ownerTok, &pb.CreateTokenRequest{UserId: botID}).GetToken()
		if resp, err := a.list(botTok, &pb.ListTokensRequest{}); err != nil || len(resp.GetTokens()) != 2 {
			t.Errorf("bot listing its own tokens: %d, %s", len(resp.GetTokens()), describe(err))
		}
		_, err := a.list(botTok, &pb.ListTokensRequest{UserId: ownerID})
		wantCode(t, "bot listing its owner", err, codes.PermissionDenied)

		// Someone else's token is not found, for get and delete alike, and stays alive.
		otherID2 := idOf(otherTok)
		_, err = a.get(ownerTok, otherID2)
		wantCode(t, "GetToken of another's token", err, codes.NotFound)
		wantCode(t, "DeleteToken of another's token", a.del(ownerTok, otherID2), codes.NotFound)
		_, err = a.get(ownerTok, "nosuchtoken00000")
		wantCode(t, "GetToken of a token that never existed", err, codes.NotFound)
		if _, err := a.get(otherTok, otherID2); err != nil {
			t.Errorf("the other's token after the owner's delete attempt: %s", describe(err))
		}
		// The owner sees and deletes its machine user's tokens; an admin anyone's.
		if _, err := a.get(ownerTok, idOf(botTok)); err != nil {
			t.Errorf("owner getting its bot's token: %s", describe(err))
		}
		if err := a.del(adminTok, otherID2); err != nil {
			t.Errorf("admin deleting another's token: %s", describe(err))
		}
	})
}

func TestDeleteIsIdempotentAndRevokesAccessTokens(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		a := rpc{t, c}
		user := c.name + "-carol"
		s.mustUser(t, user, "human")
		keep, victim := a.login(user), a.login(user)
		access, err := a.exchange("", victim)
		if err != nil {
			t.Fatal(describe(err))
		}
		if _, err := a.list(access.GetAccessToken(), &pb.ListTokensRequest{}); err != nil {
			t.Fatalf("access token before delete: %s", describe(err))
		}
		for i := range 2 {
			if err := a.del(keep, idOf(victim)); err != nil {
				t.Errorf("delete #%d: %s", i+1, describe(err))
			}
		}
		_, err = a.list(victim, &pb.ListTokensRequest{})
		wantCode(t, "the deleted token as a bearer", err, codes.Unauthenticated)
		_, err = a.exchange("", victim)
		wantCode(t, "exchanging the deleted token", err, codes.Unauthenticated)
		_, err = a.list(access.GetAccessToken(), &pb.ListTokensRequest{})
		wantCode(t, "an access token minted from the deleted token", err, codes.Unauthenticated)
		_, err = a.get(keep, idOf(victim))
		wantCode(t, "GetToken of the deleted token", err, codes.NotFound)
		resp, err := a.list(keep, &pb.ListTokensRequest{})
		if err != nil || len(resp.GetTokens()) != 1 || resp.GetTokens()[0].GetId() != idOf(keep) {
			t.Errorf("listing after delete: %v, %s", resp.GetTokens(), describe(err))
		}
	})
}

func TestInputRules(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		a := rpc{t, c}
		user := c.name + "-dave"
		s.mustUser(t, user, "human")
		tok := a.login(user)
		for name, req := range map[string]*pb.CreateTokenRequest{
			"expire_time in the past": {ExpireTime: timestamppb.New(time.Now().Add(-time.Minute))},
			"note over 256":           {Note: strings.Repeat("n", 257)},
			"user_id over 64":         {UserId: strings.Repeat("u", 65)},
		} {
			_, err := a.create(tok, req)
			wantCode(t, name, err, codes.InvalidArgument)
		}
		if _, err := a.create(tok, &pb.CreateTokenRequest{Note: strings.Repeat("ü", 256)}); err != nil {
			t.Errorf("a 256-character note: %s", describe(err))
		}
		_, err := a.list(tok, &pb.ListTokensRequest{PageToken: "forged"})
		wantCode(t, "a forged page token", err, codes.InvalidArgument)
	})
}

func TestListTokensPagination(t *testing.T) {
	forEachSetup(t, func(t *testing.T, s *service, c caller) {
		a := rpc{t, c}
		user := c.name + "-erin"
		s.mustUser(t, user, "human")
		first := a.login(user)
		all := []string{idOf(first)}
		for range 259 {
			all = append(all, a.mustCreate(first, &pb.CreateTokenRequest{}).GetMetadata().GetId())
		}

		page, err := a.list(first, &pb.ListTokensRequest{})
		if err != nil || len(page.GetTokens()) != 50 || page.GetNextPageToken() == "" {
			t.Fatalf("default page: %d tokens, next %q, %s", len(page.GetTokens()), page.GetNextPageToken(), describe(err))
		}
		page, err = a.list(first, &pb.ListTokensRequest{PageSize: 100000})
		if err != nil || len(page.GetTokens()) != 250 {
			t.Fatalf("page size 100000: %d tokens (want clamped to 250), %s", len(page.GetTokens()), describe(err))
		}
		_, err = a.list(first, &pb.ListTokensRequest{PageToken: page.GetNextPageToken(), Reverse: true})
		wantCode(t, "a page token reused with reverse", err, codes.InvalidArgument)

		// Walk both directions in pages of 7, deleting and creating tokens
		// between pages: every token that exists throughout shows once, in order.
		for _, reverse := range []bool{false, true} {
			var seen []string
			deleted := map[string]bool{}
			req := &pb.ListTokensRequest{PageSize: 7, Reverse: reverse}
			for n := 0; ; n++ {
				page, err := a.list(first, req)
				if err != nil {
					t.Fatal(describe(err))
				}
				for _, tk := range page.GetTokens() {
					seen = append(seen, tk.GetId())
				}
				if page.GetNextPageToken() == "" {
					break
				}
				req.PageToken = page.GetNextPageToken()
				if n%5 == 0 { // churn: one new token, one deleted from the far end
					a.mustCreate(first, &pb.CreateTokenRequest{})
					victim := all[len(all)-1-n/5]
					if reverse {
						victim = all[1+n/5]
					}
					if err := a.del(first, victim); err != nil {
						t.Fatal(describe(err))
					}
					deleted[victim] = true
				}
			}
			var want []string
			for _, id := range all {
				if !deleted[id] {
					want = append(want, id)
				}
			}
			if reverse {
				slices.Reverse(want)
			}
			got := slices.DeleteFunc(slices.Clone(seen), func(id string) bool { return !slices.Contains(all, id) || deleted[id] })
			if !slices.Equal(got, want) {
				t.Errorf("reverse=%v: the tokens that existed throughout came back as %d (want %d), in order: %v", reverse, len(got), len(want), slices.Equal(got, want))
			}
			if dup := len(seen) - len(slices.Compact(slices.Sorted(slices.Values(seen)))); dup != 0 {
				t.Errorf("reverse=%v: %d duplicates across pages", reverse, dup)
			}
			all = slices.DeleteFunc(all, func(id string) bool { return deleted[id] })
		}
	})
}

// openDB opens the service's database directly, as an attacker with a dump would see it.
func (s *service) openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open(s.env["TOKENSERVICE_DB_DRIVER"], s.env["TOKENSERVICE_DB_DSN"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// assertNotInDatabase dumps every table and fails if any secret appears.
func (s *service) assertNotInDatabase(t *testing.T, db *sql.DB, secrets ...string) {
	t.Helper()
	tables := []string{"users", "tokens", "signing_keys", "server_secrets", "schema_migrations", "audit_events"}
	for _, table := range tables {
		rows, err := db.Query("SELECT * FROM " + table)
		if err != nil {
			t.Fatalf("dumping %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				var text string
				switch v := v.(type) {
				case []byte:
					text = string(v)
				case string:
					text = v
				}
				for _, secret := range secrets {
					if strings.Contains(text, secret) {
						t.Errorf("table %s column %s holds a secret", table, cols[i])
					}
				}
			}
		}
		rows.Close()
	}
}
