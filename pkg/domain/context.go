package domain

import "context"

type principalKey struct{}

// NewContextWithPrincipal returns ctx carrying the authenticated caller.
func NewContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the authenticated caller, or nil.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// TokenExpirationHeader carries, on every authenticated answer (gRPC
// response metadata, and the REST header of that name), when the caller's
// credential expires (RFC 3339, UTC); absent for one that does not.
const TokenExpirationHeader = "tokenservice-token-expiration"
