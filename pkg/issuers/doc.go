// Package issuers owns the OpenID Connect issuers the operator trusts for
// workload identity federation (a CI job or a pod exchanging its platform's
// OIDC token, RFC 8693): the list itself (ParseList), fetching each issuer's
// discovery document and JWKS safely and caching them (a timeout, a size
// limit, Cache-Control within bounds, no redirect to another host, a
// refetch for an unknown kid at most once per interval), and verifying a JWT
// one of them signed (Set.Verify).
//
// An issuer not on the list is never fetched, whatever a token says: Verify
// reads iss from the unverified payload and refuses an untrusted one before
// it looks at any key, and header parameters that name key locations (jku,
// x5u, jwk, x5c) are ignored.
//
// What the token is then good for (which federated credential it matches,
// its audience, its claim conditions) is the caller's business: this
// package answers only "did a trusted issuer sign this, and is it current".
//
// Signatures are checked with github.com/go-jose/go-jose/v4, the JOSE
// library the rest of tokenservice uses, against an allow-list of
// algorithms (RS256, ES256, EdDSA): "none" and HMAC never reach a key.
package issuers
