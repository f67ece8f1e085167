// Package sso signs people in through the operator's OpenID provider: this
// service is the relying party (OpenID Connect Core 1.0, the authorization
// code flow of §3.1, with PKCE, RFC 7636). It owns the provider's
// discovery and keys (coreos/go-oidc, through a bounded HTTP client), the
// authorization request, the code's exchange, the ID token's checks (the
// library's signature, iss, aud and exp; state, nonce and azp here) and
// what the claims say: who the person is, under which username, whether
// the operator's domains and group let them in, whether they are an admin.
//
// It keeps no state: what a sign-in needs between the redirect and the
// callback (state, nonce, PKCE verifier) is derived from a secret the
// caller keeps in the browser, so a callback is only accepted in the
// browser that started it.
package sso

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// Config is the operator's provider and what its claims are read for.
type Config struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is the console's callback, as registered at the provider.
	RedirectURL string
	// Scopes asked for, besides openid; nil: profile and email.
	Scopes []string
	// UsernameClaim names the claim a new user's username comes from;
	// "": preferred_username, else a verified email.
	UsernameClaim string
	// GroupsClaim names the claim listing the person's groups; "": groups.
	GroupsClaim string
	// AllowedDomains, if any, are the email domains let in (a verified
	// email is then required).
	AllowedDomains []string
	// RequiredGroup, if set, is a group a person must be in.
	RequiredGroup string
	// AdminGroup, if set, is the group whose members are admins; at each
	// sign-in the user's admin flag follows it. "": admin flags are not
	// the provider's to set.
	AdminGroup string
	// HTTPClient fetches discovery and keys and exchanges codes; nil: a
	// client with a 10 s timeout, 1 MiB answers and no redirect.
	HTTPClient *http.Client
}

// Person is who a sign-in proved, and what the operator's rules make of it.
type Person struct {
	Identity domain.ExternalIdentity
	Username string
	Email    string
	Groups   []string
	// Admin: nil when no admin group is configured.
	Admin *bool
}

// Refusal is a sign-in the rules or the protocol refused: Reason is a
// stable word for the audit trail, Message a sentence for the person.
type Refusal struct {
	Reason   string
	Message  string
	Username string // the provider's, when the ID token was verified
	Err      error  // detail for the operator's log
}

func (r *Refusal) Error() string { return r.Message }
func (r *Refusal) Unwrap() error { return r.Err }

func refuse(reason, message string, err error) *Refusal {
	return &Refusal{Reason: reason, Message: message, Err: err}
}

// Provider is the operator's OpenID provider, discovered at first use.
type Provider struct {
	cfg    Config
	client *http.Client

	mu        sync.Mutex
	discovery *oidc.Provider
	lastTry   time.Time
}

// retryDiscoveryAfter bounds how often a failed discovery is tried again.
const retryDiscoveryAfter = 5 * time.Second

// New checks cfg and returns the provider; it does not reach it.
func New(cfg Config) (*Provider, error) {
	if err := checkIssuer(cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		return nil, errors.New("sso: a client ID is required")
	}
	if cfg.RedirectURL == "" {
		return nil, errors.New("sso: a redirect URL is required")
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"profile", "email"}
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	domains := make([]string, len(cfg.AllowedDomains))
	for i, d := range cfg.AllowedDomains {
		domains[i] = strings.ToLower(strings.TrimPrefix(d, "@"))
	}
	cfg.AllowedDomains = domains
	client := cfg.HTTPClient
	if client == nil {
		client = BoundedClient(10*time.Second, 1<<20)
	}
	return &Provider{cfg: cfg, client: client}, nil
}

// Issuer returns the provider's issuer URL.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// provider returns the discovered provider, discovering it first (at most
// one attempt every retryDiscoveryAfter while it fails).
func (p *Provider) provider(ctx context.Context) (*oidc.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.discovery != nil {
		return p.discovery, nil
	}
	if time.Since(p.lastTry) < retryDiscoveryAfter {
		return nil, refuse("provider_unavailable", "The identity provider could not be reached: try again in a few seconds.", nil)
	}
	p.lastTry = time.Now()
	// The key set the provider keeps fetches with the context it was made
	// with, long after this request: one that carries the client and
	// never ends.
	keysCtx := oidc.ClientContext(context.WithoutCancel(ctx), p.client)
	d, err := oidc.NewProvider(keysCtx, p.cfg.Issuer)
	if err != nil {
		return nil, refuse("provider_unavailable", "The identity provider could not be reached: try again in a few seconds.", err)
	}
	p.discovery = d
	return d, nil
}

func (p *Provider) oauth2(d *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: d.Endpoint(),
		RedirectURL: p.cfg.RedirectURL, Scopes: append([]string{oidc.ScopeOpenID}, p.cfg.Scopes...)}
}

// derive returns a value of the sign-in bound to the browser's secret:
// unguessable without it, the same for the same secret.
func derive(secret []byte, what string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(what))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// AuthURL returns where to send the browser to sign in: the provider's
// authorization endpoint, with the state, nonce and PKCE challenge
// (S256) of secret, which the caller keeps in the browser for Finish.
func (p *Provider) AuthURL(ctx context.Context, secret []byte) (string, error) {
	d, err := p.provider(ctx)
	if err != nil {
		return "", err
	}
	return p.oauth2(d).AuthCodeURL(derive(secret, "state"), oidc.Nonce(derive(secret, "nonce")),
		oauth2.S256ChallengeOption(derive(secret, "pkce"))), nil
}

// StateMatches reports whether a callback's state is the one of the
// sign-in secret started (before anything of the sign-in is spent on it).
func StateMatches(secret []byte, state string) bool {
	return subtle.ConstantTimeCompare([]byte(state), []byte(derive(secret, "state"))) == 1
}

// Finish completes a sign-in at the callback: the query's state must be
// secret's (else it is a forged or another browser's callback), the code
// is exchanged with secret's PKCE verifier, the ID token verified (with
// secret's nonce), and the claims read by the operator's rules. It
// returns a *Refusal for whatever the person or the provider got wrong.
func (p *Provider) Finish(ctx context.Context, secret []byte, query map[string][]string) (*Person, error) {
	first := func(k string) string {
		if v := query[k]; len(v) == 1 {
			return v[0]
		}
		return ""
	}
	if !StateMatches(secret, first("state")) {
		return nil, refuse("state", "This sign-in was not started in this browser, or was finished already: start again.", nil)
	}
	if e := first("error"); e != "" {
		// RFC 6749 §4.1.2.1: the provider refused (access_denied, ...).
		return nil, refuse("provider_refused", "The identity provider did not sign you in ("+safeText(e)+"): start again.", nil)
	}
	code := first("code")
	if code == "" {
		return nil, refuse("no_code", "The identity provider sent no authorization code: start again.", nil)
	}
	d, err := p.provider(ctx)
	if err != nil {
		return nil, err
	}
	ctx = oidc.ClientContext(ctx, p.client)
	tok, err := p.oauth2(d).Exchange(ctx, code, oauth2.VerifierOption(derive(secret, "pkce")))
	if err != nil {
		return nil, refuse("code_exchange", "The identity provider did not accept this sign-in's code: start again.", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return nil, refuse("id_token", "The identity provider sent no ID token.", nil)
	}
	idToken, err := d.VerifierContext(ctx, &oidc.Config{ClientID: p.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		return nil, refuse("id_token", "The identity provider's ID token did not verify.", err)
	}
	if subtle.ConstantTimeCompare([]byte(idToken.Nonce), []byte(derive(secret, "nonce"))) != 1 {
		return nil, refuse("nonce", "The ID token was not issued for this sign-in: start again.", nil)
	}
	claims := map[string]any{}
	if err := idToken.Claims(&claims); err != nil {
		return nil, refuse("id_token", "The identity provider's ID token could not be read.", err)
	}
	// OpenID Connect Core §3.1.3.7 (8): with several audiences, azp must
	// name this client.
	if azp, _ := claims["azp"].(string); len(idToken.Audience) > 1 && azp != p.cfg.ClientID {
		return nil, refuse("id_token", "The ID token was issued to another client.", nil)
	}
	if err := p.addUserInfo(ctx, d, tok, idToken.Subject, claims); err != nil {
		return nil, err
	}
	return p.person(domain.ExternalIdentity{Issuer: idToken.Issuer, Subject: idToken.Subject}, claims)
}

// addUserInfo adds the claims of the provider's UserInfo endpoint (many
// providers put groups, even the email, only there) under those of the ID
// token; its sub must be the ID token's (OpenID Connect Core §5.3.2).
func (p *Provider) addUserInfo(ctx context.Context, d *oidc.Provider, tok *oauth2.Token, sub string, claims map[string]any) error {
	if d.UserInfoEndpoint() == "" {
		return nil
	}
	info, err := d.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return refuse("userinfo", "The identity provider's UserInfo endpoint did not answer: try again.", err)
	}
	if info.Subject != sub {
		return refuse("userinfo", "The identity provider's UserInfo is about someone else.", nil)
	}
	more := map[string]any{}
	if err := info.Claims(&more); err != nil {
		return refuse("userinfo", "The identity provider's UserInfo could not be read.", err)
	}
	for k, v := range more {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return nil
}

// person applies the operator's rules to the verified claims.
func (p *Provider) person(id domain.ExternalIdentity, claims map[string]any) (*Person, error) {
	email, _ := claims["email"].(string)
	verified := emailVerified(claims["email_verified"])
	who := &Person{Identity: id, Groups: stringList(claims[p.cfg.GroupsClaim])}
	if verified {
		who.Email = email
	}
	switch p.cfg.UsernameClaim {
	case "":
		who.Username, _ = claims["preferred_username"].(string)
		if who.Username == "" {
			who.Username = who.Email
		}
	case "email":
		who.Username = who.Email
	default:
		who.Username, _ = claims[p.cfg.UsernameClaim].(string)
	}
	if who.Username == "" {
		r := refuse("missing_claim", "The identity provider did not say your username (claim "+p.usernameClaim()+"): ask your administrator.", nil)
		return nil, r
	}
	if len(p.cfg.AllowedDomains) > 0 {
		_, domainPart, _ := strings.Cut(strings.ToLower(who.Email), "@")
		if who.Email == "" || !slices.Contains(p.cfg.AllowedDomains, domainPart) {
			r := refuse("email_domain", "Your account's email address is not verified or not in a domain this service lets in.", nil)
			r.Username = who.Username
			return nil, r
		}
	}
	if p.cfg.RequiredGroup != "" && !slices.Contains(who.Groups, p.cfg.RequiredGroup) {
		r := refuse("group", "Your account is not in the group this service requires ("+p.cfg.RequiredGroup+"): ask your administrator.", nil)
		r.Username = who.Username
		return nil, r
	}
	if p.cfg.AdminGroup != "" {
		admin := slices.Contains(who.Groups, p.cfg.AdminGroup)
		who.Admin = &admin
	}
	return who, nil
}

func (p *Provider) usernameClaim() string {
	if p.cfg.UsernameClaim == "" {
		return "preferred_username or email"
	}
	return p.cfg.UsernameClaim
}

// emailVerified reads email_verified, which some providers send as a string.
func emailVerified(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

// stringList reads a claim that is a list of strings, or one string.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// safeText keeps what the provider's error parameter may show: RFC 6749
// §4.1.2.1 limits it to printable ASCII; anything else, and length, is cut.
func safeText(s string) string {
	s = s[:min(len(s), 64)]
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}
