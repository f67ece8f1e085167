package domain

import (
	"slices"
	"strings"
)

// The service's own scopes: what an API token (and the access tokens minted
// from it) may do here. The operator declares further scopes, for the APIs
// behind its gateways; this service only carries those.
const (
	ScopeTokensRead  = "tokens:read"  // GetToken, ListTokens
	ScopeTokensWrite = "tokens:write" // CreateToken, DeleteToken, RotateToken
	ScopeUsersRead   = "users:read"   // GetUser, ListUsers
	ScopeUsersWrite  = "users:write"  // CreateUser, DeleteUser, ChangePassword
	ScopeIntrospect  = "introspect"   // the RFC 7662 introspection endpoint
	ScopeAuditRead   = "audit:read"   // ListAuditEvents
)

// ServiceScopes are the service's own scopes, sorted. (Tokens made before
// scopes existed were given the tokens and users ones by migration 0007;
// no token made before audit:read existed has it.)
var ServiceScopes = Scopes{ScopeAuditRead, ScopeIntrospect, ScopeTokensRead, ScopeTokensWrite, ScopeUsersRead, ScopeUsersWrite}

// Scopes is a set of scope names, sorted, without duplicates.
type Scopes []string

// NewScopes returns the set of the given names.
func NewScopes(names ...string) Scopes {
	if len(names) == 0 {
		return nil
	}
	s := slices.Clone(names)
	slices.Sort(s)
	return Scopes(slices.Compact(s))
}

// ParseScopes reads a space-delimited scope list (RFC 6749 §3.3), as the
// scope claim and the OAuth scope parameter carry it.
func ParseScopes(s string) Scopes { return NewScopes(strings.Fields(s)...) }

// String returns the space-delimited form (RFC 6749 §3.3).
func (s Scopes) String() string { return strings.Join(s, " ") }

// Has reports whether s holds name.
func (s Scopes) Has(name string) bool {
	_, ok := slices.BinarySearch(s, name)
	return ok
}

// Missing returns the first of want that s lacks, or "" if s holds them all.
func (s Scopes) Missing(want Scopes) string {
	for _, w := range want {
		if !s.Has(w) {
			return w
		}
	}
	return ""
}

// ValidScopeName reports whether name is a scope-token of RFC 6749 §3.3:
// one or more of %x21 / %x23-5B / %x5D-7E (printable ASCII but space, '"'
// and '\'), here at most 128 of them.
func ValidScopeName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
