package verifier

import (
	"strings"
)

// Option is a requirement the Middleware or an interceptor applies to an
// accepted token, beyond what Verify checks.
type Option func(*requirements)

// requirements are the Options of one Middleware or interceptor.
type requirements struct {
	scopes []string
}

// RequireScopes makes the Middleware or the interceptor serve only tokens
// granted every one of scopes (in their scope claim, RFC 9068 §2.2.3).
// Others get 403 with an RFC 6750 §3.1 insufficient_scope challenge naming
// the scopes required (over gRPC, PermissionDenied naming them). Several
// RequireScopes add up. An argument may name several, space-separated, as
// a scope claim does: RequireScopes("orders:read orders:write"). Naming
// none (or only empty strings) requires none.
func RequireScopes(scopes ...string) Option {
	return func(r *requirements) {
		for _, s := range scopes {
			r.scopes = append(r.scopes, strings.Fields(s)...)
		}
	}
}

func newRequirements(opts []Option) requirements {
	var r requirements
	for _, o := range opts {
		o(&r)
	}
	return r
}

// missingScopes returns the required scopes c was not granted.
func (r requirements) missingScopes(c *Claims) []string {
	var missing []string
	for _, s := range r.scopes {
		if !c.HasScope(s) {
			missing = append(missing, s)
		}
	}
	return missing
}

// scopeList is scopes as RFC 6749 §3.3 writes them: space-separated.
func scopeList(scopes []string) string { return strings.Join(scopes, " ") }
