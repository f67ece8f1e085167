package main

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/example/server/storage"
	oidcclient "github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// zitadelStorage is zitadel/oidc's example storage, but its service user's
// access tokens are JWTs (the example's are opaque): the OP signs them.
type zitadelStorage struct{ *storage.Storage }

func (s zitadelStorage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	c, err := s.Storage.ClientCredentials(ctx, id, secret)
	if err != nil {
		return nil, err
	}
	return jwtClient{c}, nil
}

type jwtClient struct{ op.Client }

func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// startZitadelOP runs zitadel/oidc's OpenID Provider on loopback and
// returns its issuer URL.
func startZitadelOP(t *testing.T) string {
	t.Helper()
	var provider http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { provider.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	st := zitadelStorage{storage.NewStorage(storage.NewUserStore(srv.URL))}
	p, err := op.NewProvider(&op.Config{CryptoKey: sha256.Sum256([]byte("test")), CryptoKeyId: "key1", AuthMethodPost: true},
		st, op.StaticIssuer(srv.URL), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	provider = p
	return srv.URL
}

// A real OpenID Provider of the Go ecosystem, zitadel/oidc's, issues the
// subject token: its service user's client-credentials access token, a JWT
// its OP code signs and whose keys its discovery document names. Trusted
// here, with a credential for its sub and aud, the token is exchanged, and
// the access token works.
func TestZitadelOPTokenIsExchanged(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		issuer := startZitadelOP(t)
		s := startService(t, storetest.MustConfig(t, driver), "TOKENSERVICE_TRUSTED_ISSUERS", issuer)
		s.mustUser(t, "alice", "human")
		ciID := s.mustUser(t, "alice-ci", "machine:alice")

		// The OP's client, as a workload would: discovery, then the client
		// credentials grant of the example's service user "sid1".
		ctx := context.Background()
		disc, err := oidcclient.Discover(ctx, issuer, http.DefaultClient)
		if err != nil {
			t.Fatal(err)
		}
		cc := clientcredentials.Config{ClientID: "sid1", ClientSecret: "verysecret", TokenURL: disc.TokenEndpoint,
			AuthStyle: oauth2.AuthStyleInParams, Scopes: []string{"openid"}}
		otok, err := cc.Token(ctx)
		if err != nil {
			t.Fatalf("the OP's client credentials grant: %v", err)
		}
		subjectToken := otok.AccessToken
		parsed, err := jwt.ParseSigned(subjectToken, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatalf("the OP's access token is no RS256 JWT: %v (%.40s...)", err, subjectToken)
		}
		var claims jwt.Claims
		if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
			t.Fatal(err)
		}
		if claims.Issuer != issuer || claims.Subject == "" || len(claims.Audience) == 0 {
			t.Fatalf("the OP's token: iss %q sub %q aud %v", claims.Issuer, claims.Subject, claims.Audience)
		}
		t.Logf("the OP's token: iss %s sub %s aud %v kid %s", claims.Issuer, claims.Subject, claims.Audience, parsed.Headers[0].KeyID)

		r := rpc{t: t, c: s.grpcCaller()}
		owner := r.login("alice")
		r.mustCreateCredential(owner, ciID, &pb.FederatedCredential{Issuer: issuer, Subject: claims.Subject,
			Audiences: []string(claims.Audience), Scopes: []string{"tokens:read"}, Description: "zitadel/oidc service user"})
		access := mustExchange(t, s, subjectToken)
		var sub string
		if err := verifyAccessToken(t, s, access).Get("sub", &sub); err != nil || sub != ciID {
			t.Errorf("access token sub %q (%v), want the machine user %q", sub, err, ciID)
		}
		if _, err := r.list(access, &pb.ListTokensRequest{}); err != nil {
			t.Errorf("the access token as a bearer: %s", describe(err))
		}

		// Its signature is the OP's: altered, the token is refused.
		code, body := exchangeAt(t, s, strings.Replace(subjectToken, ".", ".x", 1))
		wantRefused(t, "the OP's token, altered", code, body, "invalid_request")
	})
}
