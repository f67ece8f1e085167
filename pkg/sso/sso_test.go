package sso

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

func provider(t *testing.T, cfg Config) *Provider {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = "https://idp.example.com"
	}
	cfg.ClientID, cfg.RedirectURL = "tokenservice", "https://tokens.example.com/console/sso/callback"
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The operator's rules, applied to verified claims: where the username
// comes from, that an email counts only verified, the allowed domains,
// the required group, the admin group.
func TestTheRulesReadTheClaims(t *testing.T) {
	id := domain.ExternalIdentity{Issuer: "https://idp.example.com", Subject: "s1"}
	for _, tc := range []struct {
		name     string
		cfg      Config
		claims   map[string]any
		username string
		admin    *bool
		refusal  string
	}{
		{name: "preferred_username first", claims: map[string]any{"preferred_username": "ann", "email": "a@x.com", "email_verified": true}, username: "ann"},
		{name: "else the verified email", claims: map[string]any{"email": "a@x.com", "email_verified": true}, username: "a@x.com"},
		{name: "an unverified email is no username", claims: map[string]any{"email": "a@x.com", "email_verified": false}, refusal: "missing_claim"},
		{name: "email_verified as a string", claims: map[string]any{"email": "a@x.com", "email_verified": "true"}, username: "a@x.com"},
		{name: "a configured claim", cfg: Config{UsernameClaim: "upn"}, claims: map[string]any{"upn": "ann@corp", "preferred_username": "x"}, username: "ann@corp"},
		{name: "a configured claim missing", cfg: Config{UsernameClaim: "upn"}, claims: map[string]any{"preferred_username": "x"}, refusal: "missing_claim"},
		{name: "an allowed domain", cfg: Config{AllowedDomains: []string{"@Example.com"}}, claims: map[string]any{"preferred_username": "ann", "email": "ann@EXAMPLE.com", "email_verified": true}, username: "ann"},
		{name: "another domain", cfg: Config{AllowedDomains: []string{"example.com"}}, claims: map[string]any{"preferred_username": "ann", "email": "ann@example.com.evil.org", "email_verified": true}, refusal: "email_domain"},
		{name: "an allowed domain, unverified", cfg: Config{AllowedDomains: []string{"example.com"}}, claims: map[string]any{"preferred_username": "ann", "email": "ann@example.com"}, refusal: "email_domain"},
		{name: "in the required group", cfg: Config{RequiredGroup: "staff"}, claims: map[string]any{"preferred_username": "ann", "groups": []any{"x", "staff"}}, username: "ann"},
		{name: "not in it", cfg: Config{RequiredGroup: "staff"}, claims: map[string]any{"preferred_username": "ann", "groups": []any{"x"}}, refusal: "group"},
		{name: "one group as a string", cfg: Config{RequiredGroup: "staff"}, claims: map[string]any{"preferred_username": "ann", "groups": "staff"}, username: "ann"},
		{name: "a configured groups claim", cfg: Config{RequiredGroup: "staff", GroupsClaim: "roles"}, claims: map[string]any{"preferred_username": "ann", "roles": []any{"staff"}}, username: "ann"},
		{name: "an admin", cfg: Config{AdminGroup: "admins"}, claims: map[string]any{"preferred_username": "ann", "groups": []any{"admins"}}, username: "ann", admin: ptr(true)},
		{name: "not an admin", cfg: Config{AdminGroup: "admins"}, claims: map[string]any{"preferred_username": "ann"}, username: "ann", admin: ptr(false)},
	} {
		who, err := provider(t, tc.cfg).person(id, tc.claims)
		var r *Refusal
		switch {
		case tc.refusal != "":
			if !errors.As(err, &r) || r.Reason != tc.refusal {
				t.Errorf("%s: %v, %v; want refused for %s", tc.name, who, err, tc.refusal)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case who.Username != tc.username || who.Identity != id || (who.Admin == nil) != (tc.admin == nil) ||
			(who.Admin != nil && *who.Admin != *tc.admin):
			t.Errorf("%s: %+v, want username %s, admin %v", tc.name, who, tc.username, tc.admin)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// A sign-in's state is its secret's: another secret's, or a changed one,
// does not match.
func TestTheStateIsTheSecrets(t *testing.T) {
	a, b := []byte("secret a"), []byte("secret b")
	if !StateMatches(a, derive(a, "state")) || StateMatches(b, derive(a, "state")) || StateMatches(a, derive(a, "state")+"x") || StateMatches(a, "") {
		t.Error("the state does not follow its secret")
	}
	if derive(a, "pkce") == derive(a, "nonce") || len(derive(a, "pkce")) != 43 {
		t.Error("the PKCE verifier is not a 43-character value of its own")
	}
}

// The issuer is https, or http on a loopback address only.
func TestIssuersAreHTTPS(t *testing.T) {
	for issuer, ok := range map[string]bool{
		"https://idp.example.com": true, "http://127.0.0.1:9998": true, "http://localhost:9998": true, "http://[::1]:1": true,
		"http://idp.example.com": false, "ftp://idp.example.com": false, "https://": false, "https://idp.example.com?x=1": false,
		"idp.example.com": false,
	} {
		if err := checkIssuer(issuer); (err == nil) != ok {
			t.Errorf("%s: %v, want accepted %v", issuer, err, ok)
		}
	}
}

// The provider's answers are bounded: a longer one is an error, not a
// truncated document; a redirect is not followed.
func TestTheProviderIsReachedWithBounds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			io.WriteString(w, strings.Repeat("x", 2048))
		case "/exact":
			io.WriteString(w, strings.Repeat("x", 1024))
		default:
			http.Redirect(w, r, "/exact", http.StatusFound)
		}
	}))
	defer srv.Close()
	c := BoundedClient(0, 1024)
	read := func(path string) (int, error) {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return len(b), err
	}
	if n, err := read("/exact"); err != nil || n != 1024 {
		t.Errorf("an answer at the limit: %d bytes, %v", n, err)
	}
	if _, err := read("/big"); !errors.Is(err, errTooLarge) {
		t.Errorf("an answer past the limit: %v, want too large", err)
	}
	if _, err := read("/redirect"); err == nil || !strings.Contains(err.Error(), "redirected") {
		t.Errorf("a redirect: %v, want refused", err)
	}
}
