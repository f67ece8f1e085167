// Package bearer reads bearer credentials from an Authorization header (RFC
// 6750 §2.1), and the Basic credentials (RFC 7617) some of the same doors
// take, and words the WWW-Authenticate challenges that refuse them (§3),
// one way for every door of the service that takes them: the REST API, the
// OAuth endpoints and Envoy's external authorization. (pkg/verifier has its
// own few lines for this: it imports nothing of this module.)
package bearer

import (
	"encoding/base64"
	"strings"
)

// TokenExpirationHeader is the response header (gRPC response metadata; the
// gateway passes it on as the REST header Tokenservice-Token-Expiration) that
// tells a client when the credential it sent expires (RFC 3339, UTC), so it
// can replace it before then; absent for a credential that does not expire.
// It lives here, not in pkg/api, so that the client CLI can read it without
// importing the server.
const TokenExpirationHeader = "tokenservice-token-expiration"

// The identity headers a gateway hands the upstream of a request it let
// pass (pkg/extauthz for Envoy, pkg/forwardauth for the others): who the
// caller is, never the credential. Lower case, as HTTP/2 and Envoy write
// them; HTTP/1 gateways match them without regard to case.
const (
	HeaderUserID   = "x-tokenservice-user-id"
	HeaderUsername = "x-tokenservice-username"
	HeaderScopes   = "x-tokenservice-scopes" // space-separated
	HeaderTokenID  = "x-tokenservice-token-id"
)

// Parse reports whether an Authorization header uses the Bearer scheme
// (compared without case, RFC 9110 §11.1) and returns the token after it
// ("Bearer" 1*SP b64token): "" when none follows, which §3.1 calls a
// malformed request.
func Parse(authorization string) (isBearer bool, token string) {
	scheme, rest, _ := strings.Cut(authorization, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return false, ""
	}
	return true, strings.TrimSpace(rest)
}

// ParseBasic reports whether an Authorization header uses the Basic scheme
// (RFC 7617, compared without case) and returns its user-id and password
// (base64 of "user-id:password", §2: the user-id holds no colon); ok is
// false when it is Basic but does not decode to that.
func ParseBasic(authorization string) (isBasic bool, userID, password string, ok bool) {
	scheme, rest, _ := strings.Cut(authorization, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return false, "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return true, "", "", false
	}
	userID, password, ok = strings.Cut(string(raw), ":")
	return true, userID, password, ok
}

// Challenge is a §3 challenge: the realm, then the error code and its
// description when given. The values are quoted-strings (RFC 9110 §5.6.4).
func Challenge(realm, code, description string) string {
	c := `Bearer realm=` + quote(realm)
	if code != "" {
		c += `, error=` + quote(code)
	}
	if description != "" {
		c += `, error_description=` + quote(description)
	}
	return c
}

// InsufficientScope is §3.1's challenge for a token that lacks the scope a
// request needs, naming it.
func InsufficientScope(realm, scope string) string {
	return Challenge(realm, "insufficient_scope", "") + `, scope=` + quote(scope)
}

// Realm is tokenservice's own realm in its challenges.
const Realm = "tokenservice"

// The challenges tokenservice refuses a credential with, made once (every
// refused request sends one): none sent (no error code, §3.1), one that is
// not a bearer token or has no token (invalid_request, saying how to send
// one), and a bearer token not accepted (invalid_token). None says more
// about a token than that it was not accepted.
var (
	Missing        = Challenge(Realm, "", "")
	InvalidRequest = Challenge(Realm, "invalid_request", "send the token as: Authorization: Bearer <token>")
	InvalidToken   = Challenge(Realm, "invalid_token", "")
)

// Refusal is the challenge refusing a request, by its Authorization header.
func Refusal(authorization string) string {
	if authorization == "" {
		return Missing
	}
	if isBearer, token := Parse(authorization); !isBearer || token == "" {
		return InvalidRequest
	}
	return InvalidToken
}

// PasswordRefusal is Refusal for a door that also takes a password as HTTP
// Basic credentials (the REST API's DeleteToken and RotateToken): a refused
// password gets the Bearer challenge with no error, not a Basic challenge,
// which would have a browser prompt for a password and keep it.
func PasswordRefusal(authorization string) string {
	if isBasic, _, _, ok := ParseBasic(authorization); isBasic && ok {
		return Missing
	}
	return Refusal(authorization)
}

var quoter = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// quote makes s an RFC 9110 §5.6.4 quoted-string.
func quote(s string) string { return `"` + quoter.Replace(s) + `"` }
