package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// A gateway's view: a third-party JOSE library (lestrrat-go/jwx, not the
// go-jose the service signs with) verifies an access token with nothing but
// the published JWKS, and the keys are the same after a restart and on a
// second replica of one database.
func TestThirdPartyVerifiesWithJWKSOnly(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		db := storetest.MustConfig(t, driver)
		first := startService(t, db)
		first.mustUser(t, "gw", "human")
		a := rpc{t, first.grpcCaller()}
		apiToken := a.login("gw")
		access, err := a.exchange("", apiToken)
		if err != nil {
			t.Fatal(describe(err))
		}
		if access.GetTokenType() != "Bearer" {
			t.Errorf("token_type %q", access.GetTokenType())
		}
		if d := time.Until(access.GetExpireTime().AsTime()); d < 14*time.Minute || d > 15*time.Minute {
			t.Errorf("access token lives %v, want the default 15m", d)
		}

		// The second replica starts on the same database: it must publish and
		// accept the same keys, so a token minted by one verifies at the other.
		second := startService(t, db)
		for name, s := range map[string]*service{"first": first, "second": second} {
			set, err := jwk.Fetch(context.Background(), s.httpURL+"/.well-known/jwks.json")
			if err != nil {
				t.Fatalf("%s: fetching the JWKS: %v", name, err)
			}
			tok, err := jwt.Parse([]byte(access.GetAccessToken()), jwt.WithKeySet(set),
				jwt.WithIssuer("http://tokenservice.test"), jwt.WithAudience("http://tokenservice.test"), jwt.WithValidate(true))
			if err != nil {
				t.Fatalf("%s: jwx could not verify the access token with the JWKS: %v", name, err)
			}
			var clientID string
			if err := tok.Get("client_id", &clientID); err != nil || clientID != idOf(apiToken) {
				t.Errorf("%s: client_id %q, %v; want %q", name, clientID, err, idOf(apiToken))
			}
			if _, err := (rpc{t, s.grpcCaller()}).list(access.GetAccessToken(), &pb.ListTokensRequest{}); err != nil {
				t.Errorf("%s accepting the access token: %s", name, describe(err))
			}
			body := mustGet(t, s.httpURL+"/.well-known/openid-configuration", "application/json")
			if !strings.Contains(body, `"jwks_uri":"http://tokenservice.test/.well-known/jwks.json"`) || !strings.Contains(body, `"issuer":"http://tokenservice.test"`) {
				t.Errorf("%s: openid-configuration %s", name, body)
			}
		}
	})
}

func TestServedDocsAndHealth(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	spec := mustGet(t, s.httpURL+"/openapi.json", "application/json")
	if !strings.Contains(spec, `"/v1alpha1/access-tokens"`) || !strings.Contains(spec, `"Bearer"`) {
		t.Error("/openapi.json is not the service's spec")
	}
	page := mustGet(t, s.httpURL+"/docs/", "text/html")
	resp, err := http.Get(s.httpURL + "/docs/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("/docs/ Content-Security-Policy: %q", csp)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("/docs/ X-Content-Type-Options: %q", got)
	}
	for _, asset := range []string{"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/init.js"} {
		if !strings.Contains(page, asset) {
			t.Errorf("/docs/ does not load %s", asset)
		}
		if body := mustGet(t, s.httpURL+asset, ""); len(body) < 100 {
			t.Errorf("%s: %d bytes", asset, len(body))
		}
	}
	if strings.Contains(page, "//cdn") || strings.Contains(page, "https://") {
		t.Error("/docs/ loads something from another host")
	}
	if init := mustGet(t, s.httpURL+"/docs/init.js", ""); !strings.Contains(init, `url: "/openapi.json"`) {
		t.Error("Swagger UI is not pointed at /openapi.json")
	}
	mustGet(t, s.httpURL+"/healthz", "text/plain")
	mustGet(t, s.httpURL+"/readyz", "text/plain")

	hc := grpc_health_v1.NewHealthClient(s.grpcConn)
	for _, svc := range []string{"", "priv.tokenservice.v1alpha1.TokenService"} {
		resp, err := hc.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
			t.Errorf("gRPC health of %q: %v, %v", svc, resp.GetStatus(), err)
		}
	}
}

func mustGet(t *testing.T, url, contentType string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), contentType) {
		t.Errorf("GET %s: %d %q", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(body)
}
