package app

import (
	"context"
	"crypto/rand"
	"net/http"
	"strings"

	"github.com/tokenservice/tokenservice/pkg/audit"
	"github.com/tokenservice/tokenservice/pkg/cache"
	"github.com/tokenservice/tokenservice/pkg/console"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/sso"
	"github.com/tokenservice/tokenservice/pkg/store"
)

// ConsoleConfig says how people sign in to the console (issue 24).
type ConsoleConfig struct {
	console.Config
	// SSO is the operator's OpenID provider; nil: no single sign-on. Its
	// RedirectURL, if empty, is the console's callback under the issuer.
	SSO *sso.Config
}

// CallbackPath is where the identity provider sends people back to: the
// redirect URI to register there, under the service's public URL.
const CallbackPath = "/console/sso/callback"

// consoleRoutes builds the console and returns its routes.
func (a *App) consoleRoutes(auditRules *audit.Service) (map[string]http.Handler, error) {
	cfg := a.cfg.Console
	var provider *sso.Provider
	if cfg.SSO != nil {
		scfg := *cfg.SSO
		if scfg.RedirectURL == "" {
			scfg.RedirectURL = strings.TrimSuffix(a.cfg.Server.Issuer, "/") + CallbackPath
		}
		var err error
		if provider, err = sso.New(scfg); err != nil {
			return nil, err
		}
	}
	ccfg := cfg.Config
	if strings.HasPrefix(a.cfg.Server.Issuer, "https://") {
		ccfg.SecureCookies = true // served over TLS, here or by a proxy in front
	}
	ccfg.BaseURL = strings.TrimSuffix(a.cfg.Server.Issuer, "/")
	c := console.New(ccfg, console.Deps{Sessions: a.store, CLIGrants: a.store, UserByID: a.data.UserByID, Users: a.users, Tokens: a.tokens,
		Federation: a.federation, Audit: auditRules, TrustedIssuers: a.trustedIssuers, SSO: provider,
		Logger: a.logger, Clock: now, Rand: rand.Reader})
	return c.Routes(), nil
}

// signIns is the store of sign-ins, dropping from this replica's cache a
// user whose admin flag a sign-in set (other replicas drop it at the
// change feed's next poll).
type signIns struct {
	*store.Store
	cache *cache.Cache // nil: none
}

func (s signIns) SetAdmin(ctx context.Context, userID string, admin bool, events ...*domain.AuditEvent) error {
	err := s.Store.SetAdmin(ctx, userID, admin, events...)
	if s.cache != nil {
		s.cache.ForgetUser(userID) // even on an error: it may have committed
	}
	return err
}
