package issuers

// Reasons an Error gives: short, stable labels for metrics and logs.
const (
	// ReasonMalformed: not a compact JWS JWT, or its claims are not JSON of
	// the expected types.
	ReasonMalformed = "malformed"
	// ReasonUntrustedIssuer: iss is not one of the trusted issuers.
	ReasonUntrustedIssuer = "untrusted_issuer"
	// ReasonUnsupportedAlg: the header's alg is not RS256, ES256 or EdDSA.
	ReasonUnsupportedAlg = "unsupported_alg"
	// ReasonUnknownKey: the issuer's JWKS has no key for the token's kid
	// and alg (after a refetch, or with one done too recently to do another).
	ReasonUnknownKey = "unknown_key"
	// ReasonSignature: the signature does not verify with the issuer's key.
	ReasonSignature = "signature"
	// ReasonExpired: exp is past (beyond the leeway).
	ReasonExpired = "expired"
	// ReasonNotYetValid: nbf is in the future (beyond the leeway).
	ReasonNotYetValid = "not_yet_valid"
	// ReasonTooOld: iat is older than Config.MaxAge, or in the future
	// beyond the leeway.
	ReasonTooOld = "too_old"
	// ReasonMissingClaim: exp, iat or sub is absent.
	ReasonMissingClaim = "missing_claim"
	// ReasonKeysUnavailable: the issuer's discovery document or JWKS could
	// not be fetched (or read, for a local file) and no usable keys are
	// cached.
	ReasonKeysUnavailable = "keys_unavailable"
)

// Error is why Verify refused a token. Message is in plain words and safe
// to show the token's bearer: it never holds the token or a secret, and
// values taken from the token are clipped and quoted. Err, when set, is the
// underlying cause (a fetch error, go-jose's error) for the operator's logs.
type Error struct {
	Reason  string // one of the Reason constants
	Message string
	Err     error
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

func refuse(reason, msg string, cause error) *Error {
	return &Error{Reason: reason, Message: msg, Err: cause}
}
