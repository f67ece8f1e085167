package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/sso"
)

// ssoOptions are serve's flags for single sign-on and the console (issue 24).
type ssoOptions struct {
	issuer, clientID, secretFile string
	scopes, domains              string
	usernameClaim, groupsClaim   string
	requiredGroup, adminGroup    string
	providerName                 string
	passwordSignIn               string
}

func (o *ssoOptions) flags(fs *pflag.FlagSet, cfg *app.Config) {
	fs.StringVar(&o.issuer, "oidc-issuer", "", "sign people in to the console through this OpenID provider (https://login.example.com); register "+
		"<--issuer>"+app.CallbackPath+" as its redirect URI (default: none, passwords only)")
	fs.StringVar(&o.clientID, "oidc-client-id", "", "this service's client ID at --oidc-issuer")
	fs.StringVar(&o.secretFile, "oidc-client-secret-file", "", "a file holding the client secret at --oidc-issuer (none: a public client, PKCE only)")
	fs.StringVar(&o.scopes, "oidc-scopes", "profile,email", "comma-separated scopes asked of the provider besides openid (add groups if it needs asking)")
	fs.StringVar(&o.usernameClaim, "oidc-username-claim", "", "the claim a new user's username comes from (default: preferred_username, else a verified email)")
	fs.StringVar(&o.groupsClaim, "oidc-groups-claim", "groups", "the claim listing a person's groups")
	fs.StringVar(&o.domains, "oidc-allowed-domains", "", "comma-separated email domains let in (a verified email is then required; default: any)")
	fs.StringVar(&o.requiredGroup, "oidc-required-group", "", "a group a person must be in to sign in (default: none)")
	fs.StringVar(&o.adminGroup, "oidc-admin-group", "", "the group whose members are admins: each sign-in sets the admin flag from it (default: the provider sets no admin flag)")
	fs.StringVar(&o.providerName, "oidc-provider-name", "", "the provider's name on the console's sign-in button (default: \"your identity provider\")")
	fs.StringVar(&o.passwordSignIn, "password-sign-in", "on", "on: people may sign in with a password (where they have one); admins: only admins (a break-glass admin made with db create-user --admin), everyone else through --oidc-issuer")
	fs.DurationVar(&cfg.Console.SessionLifetime, "console-session-lifetime", 8*time.Hour, "how long a console sign-in lasts")
	fs.DurationVar(&cfg.Console.IdleTimeout, "console-idle-timeout", time.Hour, "how long an unused console session lasts")
}

// check reads the flags into cfg.
func (o *ssoOptions) check(cfg *app.Config) error {
	switch o.passwordSignIn {
	case "on":
	case "admins":
		if o.issuer == "" {
			return fmt.Errorf("--password-sign-in admins needs --oidc-issuer: everyone else signs in there")
		}
		cfg.Users.PasswordsForAdminsOnly = true
		cfg.Console.PasswordsForAdminsOnly = true
	default:
		return fmt.Errorf("--password-sign-in must be on or admins, not %q", o.passwordSignIn)
	}
	if cfg.Console.SessionLifetime <= 0 || cfg.Console.IdleTimeout <= 0 {
		return fmt.Errorf("--console-session-lifetime and --console-idle-timeout must be positive")
	}
	if o.issuer == "" {
		if o.clientID != "" || o.secretFile != "" {
			return fmt.Errorf("--oidc-client-id and --oidc-client-secret-file need --oidc-issuer")
		}
		return nil
	}
	if o.clientID == "" {
		return fmt.Errorf("--oidc-issuer needs --oidc-client-id")
	}
	c := &sso.Config{Issuer: o.issuer, ClientID: o.clientID, Scopes: splitList(o.scopes), UsernameClaim: o.usernameClaim,
		GroupsClaim: o.groupsClaim, AllowedDomains: splitList(o.domains), RequiredGroup: o.requiredGroup, AdminGroup: o.adminGroup,
		RedirectURL: strings.TrimSuffix(cfg.Server.Issuer, "/") + app.CallbackPath}
	if o.secretFile != "" {
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return fmt.Errorf("--oidc-client-secret-file: %w", err)
		}
		if c.ClientSecret = strings.TrimSpace(string(b)); c.ClientSecret == "" {
			return fmt.Errorf("--oidc-client-secret-file %s is empty", o.secretFile)
		}
	}
	if _, err := sso.New(*c); err != nil {
		return fmt.Errorf("--oidc-issuer: %w", err)
	}
	cfg.Console.SSO = c
	cfg.Console.ProviderName = o.providerName
	return nil
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
