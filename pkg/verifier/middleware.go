package verifier

import (
	"net/http"
	"strings"
)

// Middleware serves next only requests bearing an access token Verify
// accepts (RFC 6750 §2.1: "Authorization: Bearer <token>"), with its Claims
// in the request's context (ClaimsFromContext). Others get 401 (400 for
// more than one Authorization header) and an RFC 6750 §3 challenge; why a
// token was refused goes to the Config.Logger at debug level, never to the
// client. Options add requirements: a token that passes Verify but not
// them gets 403 (RequireScopes).
func (v *Verifier) Middleware(next http.Handler, opts ...Option) http.Handler {
	req := newRequirements(opts)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authorization := r.Header.Values("Authorization")
		if len(authorization) > 1 {
			// RFC 6750 §3.1: more than one credential is a malformed request.
			v.challenge(w, http.StatusBadRequest, "invalid_request", "")
			return
		}
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			// RFC 6750 §3.1: no error code when the request carries no
			// bearer token (no credential, or another scheme).
			v.challenge(w, http.StatusUnauthorized, "", "")
			return
		}
		claims, err := v.Verify(r.Context(), token)
		if err != nil {
			v.cfg.Logger.DebugContext(r.Context(), "verifier: access token refused", "error", err)
			v.challenge(w, http.StatusUnauthorized, "invalid_token", "")
			return
		}
		if missing := req.missingScopes(claims); len(missing) > 0 {
			v.cfg.Logger.DebugContext(r.Context(), "verifier: access token lacks a required scope", "missing", scopeList(missing))
			// RFC 6750 §3.1: 403, and the scope attribute (§3) names the
			// scopes the resource requires.
			v.challenge(w, http.StatusForbidden, "insufficient_scope", scopeList(req.scopes))
			return
		}
		next.ServeHTTP(w, r.WithContext(ContextWithClaims(r.Context(), claims)))
	})
}

// challenge answers code with a Bearer challenge (RFC 6750 §3) whose realm
// is the audience, with the error code and the scope required if not empty.
func (v *Verifier) challenge(w http.ResponseWriter, code int, errorCode, scope string) {
	c := `Bearer realm=` + quote(v.cfg.Audience)
	if errorCode != "" {
		c += `, error=` + quote(errorCode)
	}
	if scope != "" {
		c += `, scope=` + quote(scope)
	}
	w.Header().Set("WWW-Authenticate", c)
	http.Error(w, http.StatusText(code), code)
}

// bearerToken returns the token of an "Authorization: Bearer <token>" value.
// RFC 6750 §2.1 and RFC 9110 §11.1: the scheme is case-insensitive, and one
// or more spaces separate it from the token.
func bearerToken(authorization string) (string, bool) {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(token, " "), true
}

// quote makes s an RFC 9110 §5.6.4 quoted-string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
