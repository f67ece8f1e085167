package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/spf13/pflag"

	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

func TestDefaultIssuer(t *testing.T) {
	for _, tc := range []struct {
		addr string
		tls  bool
		want string
	}{
		{":8080", false, "http://localhost:8080"},
		{":18080", false, "http://localhost:18080"},
		{"0.0.0.0:18080", false, "http://localhost:18080"},
		{"[::]:18080", false, "http://localhost:18080"},
		{"127.0.0.1:18080", false, "http://127.0.0.1:18080"},
		{"tokens.internal:18080", false, "http://tokens.internal:18080"},
		{"[::1]:18080", false, "http://[::1]:18080"},
		{":18443", true, "https://localhost:18443"},
		{":80", false, "http://localhost"},
		{":443", true, "https://localhost"},
		{":443", false, "http://localhost:443"},
	} {
		got, err := defaultIssuer(tc.addr, tc.tls)
		if err != nil || got != tc.want {
			t.Errorf("defaultIssuer(%q, tls %v) = %q, %v; want %q", tc.addr, tc.tls, got, err, tc.want)
		}
	}
	if _, err := defaultIssuer("8080", false); err == nil {
		t.Error("defaultIssuer(\"8080\") (no colon): no error")
	}
}

func TestIssuerPortMismatch(t *testing.T) {
	for _, tc := range []struct {
		issuer, httpAddr, served string
		warn                     bool
	}{
		{"http://localhost:8080", ":18080", "[::]:18080", true},
		{"http://localhost:18080", ":18080", "[::]:18080", false},
		{"http://127.0.0.1:8080", "127.0.0.1:0", "127.0.0.1:40123", true},
		{"http://localhost", ":8080", "[::]:8080", true}, // port 80
		{"https://localhost", ":443", "[::]:443", false}, // port 443
		{"http://tokens.internal:8080", "tokens.internal:9000", "10.0.0.5:9000", true},
		// Another host: a proxy's or load balancer's public name.
		{"https://tokens.example.com", ":8080", "[::]:8080", false},
		{"http://tokenservice.test", "127.0.0.1:0", "127.0.0.1:40123", false},
	} {
		msg := issuerPortMismatch(tc.issuer, tc.httpAddr, tc.served)
		if (msg != "") != tc.warn {
			t.Errorf("issuerPortMismatch(%q, %q, %q) = %q, want a warning: %v", tc.issuer, tc.httpAddr, tc.served, msg, tc.warn)
		}
	}
}

// Without --issuer, the discovery documents and the access tokens name the
// address REST is served on, port included; an explicit issuer naming this
// host on another port is warned about at start.
func TestIssuerFollowsTheHTTPAddress(t *testing.T) {
	db := storetest.MustConfig(t, "sqlite")
	// --http-addr 127.0.0.1:0: a free port, other than the default 8080.
	s := startService(t, db, "TOKENSERVICE_ISSUER", "")
	issuer := s.httpURL
	if strings.HasSuffix(issuer, ":8080") {
		t.Fatalf("served on the default port %s", issuer)
	}
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		var doc struct {
			Issuer        string `json:"issuer"`
			JWKSURI       string `json:"jwks_uri"`
			TokenEndpoint string `json:"token_endpoint"`
		}
		if err := json.Unmarshal([]byte(mustGet(t, issuer+path, "application/json")), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Issuer != issuer || doc.JWKSURI != issuer+"/.well-known/jwks.json" || !strings.HasPrefix(doc.TokenEndpoint, issuer+"/") {
			t.Errorf("%s: issuer %q, jwks_uri %q, token_endpoint %q; want them at %s", path, doc.Issuer, doc.JWKSURI, doc.TokenEndpoint, issuer)
		}
	}
	s.mustUser(t, "iss", "human")
	a := rpc{t, s.grpcCaller()}
	access, err := a.exchange("", a.login("iss"))
	if err != nil {
		t.Fatal(describe(err))
	}
	set, err := jwk.Fetch(context.Background(), issuer+"/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.Parse([]byte(access.GetAccessToken()), jwt.WithKeySet(set),
		jwt.WithIssuer(issuer), jwt.WithAudience(issuer), jwt.WithValidate(true)); err != nil {
		t.Errorf("the access token's iss and aud are not %s: %v", issuer, err)
	}
	if strings.Contains(s.logs.String(), "--issuer") && strings.Contains(s.logs.String(), "names port") {
		t.Errorf("a derived issuer was warned about:\n%s", s.logs)
	}

	wrong := startService(t, db, "TOKENSERVICE_ISSUER", "http://localhost:8080")
	if !strings.Contains(wrong.logs.String(), "--issuer http://localhost:8080 names port 8080, but REST is served on port") {
		t.Errorf("an issuer on the wrong port was not warned about:\n%s", wrong.logs)
	}
}

// The README's quick start on other ports sets every listening address that
// is on by default, and names the issuer that follows from them.
func TestREADMEOtherPorts(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	_, line, ok := strings.Cut(readme, "\nbin/tokenservice serve --http-addr")
	if !ok {
		t.Fatal("README.md has no `bin/tokenservice serve --http-addr ...` line")
	}
	line, _, _ = strings.Cut("--http-addr"+line, "\n")
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o := serveFlags(fs)
	if err := fs.Parse(strings.Fields(line)); err != nil {
		t.Fatalf("README's serve line %q: %v", line, err)
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if strings.HasSuffix(f.Name, "-addr") && f.Value.Type() == "string" && f.DefValue != "" && !f.Changed {
			t.Errorf("README's serve line %q leaves --%s at its default %s", line, f.Name, f.DefValue)
		}
	})
	issuer, err := defaultIssuer(o.cfg.Server.HTTPAddr, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := "here `" + issuer + "`"; !strings.Contains(readme, want) {
		t.Errorf("README.md does not name the issuer of its serve line: %q", want)
	}
}
