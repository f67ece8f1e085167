// Package oauth serves the OAuth 2 endpoints that gateways and OAuth client
// libraries already speak, over the token service's own rules: the client
// credentials grant (RFC 6749 §4.4), token introspection (RFC 7662),
// revocation (RFC 7009) and authorization server metadata (RFC 8414). An API
// token is the client: its ID is the client_id, its plaintext the
// client_secret. Each endpoint calls the same tokens.Service as the gRPC
// and REST API, so the rules (scopes, expiry, revocation, last-used) are one.
package oauth

import (
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/bearer"
	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/federation"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

// The endpoints' paths, under the issuer.
const (
	TokenPath      = "/oauth2/token"
	IntrospectPath = "/oauth2/introspect"
	RevokePath     = "/oauth2/revoke"
	MetadataPath   = "/.well-known/oauth-authorization-server"
	OpenIDPath     = "/.well-known/openid-configuration"
	JWKSPath       = "/.well-known/jwks.json"
)

// maxFormBytes bounds a request body: the largest legitimate one (a JWT
// to introspect) is under 2 KiB.
const maxFormBytes = 16 << 10

// Deps are what the endpoints work with.
type Deps struct {
	Tokens *tokens.Service
	// Federation serves the token-exchange and JWT-bearer grants (nil:
	// not offered).
	Federation *federation.Service
	// Started reports whether the services may be called (the database
	// has answered); until then every endpoint answers 503.
	Started func() bool
	Logger  *slog.Logger
	Clock   func() time.Time
}

// Handler serves the OAuth endpoints.
type Handler struct {
	deps   Deps
	issuer string
}

// New returns the endpoints of the authorization server at issuer, its
// public base URL.
func New(issuer string, deps Deps) *Handler {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Started == nil {
		deps.Started = func() bool { return true }
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	return &Handler{deps: deps, issuer: strings.TrimSuffix(issuer, "/")}
}

// Routes returns each endpoint by its http.ServeMux pattern.
func (h *Handler) Routes() map[string]http.Handler {
	metadata := h.metadata()
	return map[string]http.Handler{
		"POST " + TokenPath:      http.HandlerFunc(h.token),
		"POST " + IntrospectPath: http.HandlerFunc(h.introspect),
		"POST " + RevokePath:     http.HandlerFunc(h.revoke),
		// Any other method: 405 with Allow (RFC 9110 §15.5.6), in the
		// endpoints' own error form.
		TokenPath:             postOnly,
		IntrospectPath:        postOnly,
		RevokePath:            postOnly,
		"GET " + MetadataPath: jsonBytes(metadata),
		// The OpenID discovery document (OpenID Connect Discovery 1.0
		// §3) is this same metadata, which RFC 8414 §1 builds on: JWT
		// verifiers look for the jwks_uri there.
		"GET " + OpenIDPath: jsonBytes(metadata),
	}
}

// metadata is the RFC 8414 §2 document.
func (h *Handler) metadata() []byte {
	doc, _ := json.Marshal(map[string]any{ // strings and lists of them: cannot fail
		"issuer":                                h.issuer,
		"jwks_uri":                              h.issuer + JWKSPath,
		"token_endpoint":                        h.issuer + TokenPath,
		"introspection_endpoint":                h.issuer + IntrospectPath,
		"revocation_endpoint":                   h.issuer + RevokePath,
		"scopes_supported":                      h.deps.Tokens.KnownScopes(),
		"grant_types_supported":                 h.grantTypes(),
		"token_endpoint_auth_methods_supported": clientAuthMethods,
		"introspection_endpoint_auth_methods_supported": clientAuthMethods,
		// Revocation is by possession of the token: no client authentication.
		"revocation_endpoint_auth_methods_supported": []string{"none"},
		// No authorization endpoint: no response type is served. OpenID
		// discovery's own required members describe the access tokens'
		// signatures, the only JWTs this service signs.
		"response_types_supported":              []string{},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"service_documentation":                 h.issuer + "/docs/",
	})
	return doc
}

var clientAuthMethods = []string{"client_secret_basic", "client_secret_post"}

var postOnly = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	writeError(w, &oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request",
		description: "use POST, with the parameters in an application/x-www-form-urlencoded body"})
})

// The grant types beside client_credentials, and RFC 8693's token types.
const (
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange" // RFC 8693 §2.1
	GrantJWTBearer     = "urn:ietf:params:oauth:grant-type:jwt-bearer"     // RFC 7523 §2.1
	TokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"            // RFC 8693 §3
	TokenTypeIDToken   = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
)

// grantTypes are the grants the token endpoint serves.
func (h *Handler) grantTypes() []string {
	if h.deps.Federation == nil {
		return []string{"client_credentials"}
	}
	return []string{"client_credentials", GrantTokenExchange, GrantJWTBearer}
}

// token is the token endpoint: the client credentials grant (RFC 6749
// §4.4), the API token authenticating as the client (§2.3.1); and, with
// federation, token exchange (RFC 8693) and the JWT bearer grant (RFC
// 7523), a trusted issuer's token standing for a machine user.
func (h *Handler) token(w http.ResponseWriter, r *http.Request) {
	form, ok := h.form(w, r)
	if !ok {
		return
	}
	switch grant := form.Get("grant_type"); {
	case grant == "client_credentials":
	case grant == "":
		writeError(w, errInvalidRequest("grant_type is required: one of "+strings.Join(h.grantTypes(), ", ")))
		return
	case (grant == GrantTokenExchange || grant == GrantJWTBearer) && h.deps.Federation != nil:
		h.federated(w, r, form, grant)
		return
	default:
		writeError(w, &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type",
			description: "this server grants " + strings.Join(h.grantTypes(), ", ")})
		return
	}
	secret, e := clientSecret(r, form)
	if e != nil {
		writeError(w, e)
		return
	}
	scopes, e := parseScope(form.Get("scope"))
	if e != nil {
		writeError(w, e)
		return
	}
	// RFC 8707 §2: the API the token is for becomes its aud.
	x, err := h.deps.Tokens.Exchange(r.Context(), tokens.ExchangeInput{APIToken: secret, Scopes: scopes, Resource: form.Get("resource")})
	if err != nil {
		writeError(w, h.fromDomain(r, err, TokenPath))
		return
	}
	h.writeToken(w, x, "")
}

// writeToken writes a successful token response (RFC 6749 §5.1), with
// issued_token_type for a token exchange (RFC 8693 §2.2.1).
func (h *Handler) writeToken(w http.ResponseWriter, x tokens.Exchanged, issuedType string) {
	// RFC 6749 §5.1: expires_in is the lifetime in seconds; the time left,
	// when a reused access token is handed out again.
	expiresIn := max(int64(math.Floor(x.AccessToken.ExpireTime.Sub(h.deps.Clock()).Seconds())), 0)
	resp := map[string]any{
		"access_token": x.AccessToken.JWT,
		"token_type":   "Bearer",
		"expires_in":   expiresIn,
		// §5.1: required when it differs from the scope asked for; always
		// sent, so a client never has to guess.
		"scope": x.Scopes.String(),
	}
	if issuedType != "" {
		resp["issued_token_type"] = issuedType
	}
	writeJSON(w, http.StatusOK, resp)
}

// federated serves the token-exchange grant (RFC 8693 §2.1: subject_token
// of type jwt or id_token, no actor_token) and the JWT bearer grant (RFC
// 7523 §2.1: assertion). The subject token is the only credential: the
// client is public (client_id, if sent, names the machine user and is not
// authenticated), so client credentials are refused rather than ignored.
// An unacceptable subject token is RFC 8693 §2.2.2's invalid_request,
// an unacceptable assertion RFC 7523 §3.1's invalid_grant.
func (h *Handler) federated(w http.ResponseWriter, r *http.Request, form url.Values, grant string) {
	if r.Header.Get("Authorization") != "" || form.Get("client_secret") != "" {
		writeError(w, errInvalidRequest("the subject token is the credential of this grant: send no client authentication (client_id, alone, may name the machine user)"))
		return
	}
	in := federation.ExchangeInput{ClientID: form.Get("client_id"), GrantType: grant}
	issuedType := ""
	if grant == GrantTokenExchange {
		switch t := form.Get("subject_token_type"); t {
		case TokenTypeJWT, TokenTypeIDToken:
		case "":
			writeError(w, errInvalidRequest("subject_token_type is required: "+TokenTypeJWT+" or "+TokenTypeIDToken))
			return
		default:
			writeError(w, errInvalidRequest("subject_token_type "+quote(t)+" is not accepted: send a JWT of a trusted issuer as "+TokenTypeJWT+" or "+TokenTypeIDToken))
			return
		}
		if form.Get("actor_token") != "" || form.Get("actor_token_type") != "" {
			writeError(w, errInvalidRequest("delegation (actor_token) is not supported: send the subject_token alone"))
			return
		}
		switch t := form.Get("requested_token_type"); t {
		case "", TokenTypeAccess, TokenTypeJWT:
		default:
			writeError(w, errInvalidRequest("requested_token_type "+quote(t)+" cannot be issued: this server issues "+TokenTypeAccess))
			return
		}
		in.SubjectToken = form.Get("subject_token")
		issuedType = TokenTypeAccess
		if in.SubjectToken == "" {
			writeError(w, errInvalidRequest("subject_token is required: the JWT your platform issued (a GitHub Actions, GitLab CI or Kubernetes service account token)"))
			return
		}
	} else {
		if in.SubjectToken = form.Get("assertion"); in.SubjectToken == "" {
			writeError(w, errInvalidRequest("assertion is required: the JWT your platform issued"))
			return
		}
	}
	scopes, e := parseScope(form.Get("scope"))
	if e != nil {
		writeError(w, e)
		return
	}
	in.Scopes = scopes
	in.Resource = form.Get("resource")
	// RFC 8693 §2.1's audience names the target service by a logical name:
	// here, as a resource (one of the APIs access tokens are minted for).
	if aud := form.Get("audience"); aud != "" {
		if in.Resource != "" && in.Resource != aud {
			writeError(w, &oauthError{status: http.StatusBadRequest, code: "invalid_target", description: "send resource or audience, not two different targets"})
			return
		}
		in.Resource = aud
	}
	x, err := h.deps.Federation.Exchange(r.Context(), in)
	if err != nil {
		e := h.fromDomain(r, err, TokenPath)
		if grant == GrantJWTBearer && e.code == "invalid_request" {
			// RFC 7523 §3.1, naming the parameter this grant sends.
			e = &oauthError{status: e.status, code: "invalid_grant", description: strings.Replace(e.description, "subject_token", "assertion", 1)}
		}
		writeError(w, e)
		return
	}
	h.writeToken(w, x, issuedType)
}

// introspect is RFC 7662's endpoint: whether a token, an API token or an
// access token, is active, for callers whose credential has the
// introspect scope.
func (h *Handler) introspect(w http.ResponseWriter, r *http.Request) {
	form, ok := h.form(w, r)
	if !ok {
		return
	}
	caller, e := h.authorizeIntrospection(r, form)
	if e != nil {
		writeError(w, e)
		return
	}
	token := form.Get("token")
	if token == "" {
		writeError(w, errInvalidRequest("token is required"))
		return
	}
	in, err := h.deps.Tokens.Introspect(r.Context(), caller, token)
	if err != nil {
		writeError(w, h.fromDomain(r, err, IntrospectPath))
		return
	}
	if !in.Active {
		// §2.2: nothing but active for a token that is not.
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	kind := "api_token"
	if in.AccessJWT {
		kind = "access_token"
	}
	resp := map[string]any{
		"active":     true,
		"scope":      in.Scopes.String(),
		"client_id":  in.ClientID,
		"sub":        in.Subject,
		"username":   in.Username,
		"iat":        in.IssuedAt.Unix(),
		"iss":        h.issuer,
		"token_type": "Bearer", // RFC 6749 §7.1: both are sent as bearer tokens (RFC 6750)
		"token_kind": kind,     // an extension (§2.2 allows them): which of this service's tokens
	}
	if !in.ExpiresAt.IsZero() {
		resp["exp"] = in.ExpiresAt.Unix()
	}
	if in.JTI != "" {
		resp["jti"] = in.JTI
	}
	if in.Audience != "" { // §2.2's aud: whom an access token is for
		resp["aud"] = in.Audience
	}
	writeJSON(w, http.StatusOK, resp)
}

// authorizeIntrospection checks the caller of the introspection endpoint
// (RFC 7662 §2.1): a bearer credential, or an API token as client
// credentials (§2.3.1 of RFC 6749), that has the introspect scope.
// Failing, it answers 401 as §2.3 says: RFC 6750 §3's challenge for a
// bearer, invalid_client for client credentials. It returns the caller.
func (h *Handler) authorizeIntrospection(r *http.Request, form url.Values) (*domain.Principal, *oauthError) {
	isBearer, credential := bearer.Parse(r.Header.Get("Authorization"))
	if isBearer {
		if form.Get("client_id") != "" || form.Get("client_secret") != "" {
			return nil, errInvalidRequest("authenticate one way: a bearer or client credentials, not both")
		}
	} else {
		secret, e := clientSecret(r, form)
		if e != nil {
			return nil, e
		}
		credential = secret
	}
	p, err := h.deps.Tokens.AuthenticateBearer(r.Context(), credential)
	if err != nil {
		if isBearer && domain.KindOf(err) == domain.KindUnauthenticated {
			return nil, &oauthError{status: http.StatusUnauthorized, code: "invalid_token", challenge: bearer.InvalidToken}
		}
		return nil, h.fromDomain(r, err, IntrospectPath)
	}
	if !p.Allows(domain.ScopeIntrospect) {
		if isBearer {
			return nil, &oauthError{status: http.StatusUnauthorized, code: "insufficient_scope",
				description: "the credential lacks the introspect scope",
				challenge:   bearer.InsufficientScope(bearer.Realm, domain.ScopeIntrospect)}
		}
		return nil, &oauthError{status: http.StatusUnauthorized, code: "invalid_client",
			description: "the client lacks the introspect scope", challenge: basicChallenge}
	}
	return p, nil
}

// revoke is RFC 7009's endpoint, by possession: the token is its own
// proof, so no client authentication is asked (a client that sends some
// is not refused for it). It answers 200 whether or not the token was
// valid (§2.2), so it tells a prober nothing.
func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) {
	form, ok := h.form(w, r)
	if !ok {
		return
	}
	token := form.Get("token")
	if token == "" {
		writeError(w, errInvalidRequest("token is required"))
		return
	}
	// token_type_hint is only a hint (§2.1): the token's form says which it is.
	// Client credentials, if a client sends them, are not checked: the
	// token is its own proof, and a scanner reporting a leak has none.
	if err := h.deps.Tokens.RevokeByPossession(r.Context(), token); err != nil {
		writeError(w, h.fromDomain(r, err, RevokePath))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// form reads an endpoint's parameters: POSTed as
// application/x-www-form-urlencoded (RFC 6749 §3.2, RFC 7662 §2.1, RFC
// 7009 §2.1), none more than once (§3.2). It answers the request itself
// when it returns false: 503 before the service has started, 400 else.
func (h *Handler) form(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	if !h.deps.Started() {
		writeError(w, errUnavailable)
		return nil, false
	}
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "application/x-www-form-urlencoded" {
		writeError(w, errInvalidRequest("send the parameters in the body as application/x-www-form-urlencoded"))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		writeError(w, errInvalidRequest("the body is too large or could not be read"))
		return nil, false
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeError(w, errInvalidRequest("the body is not application/x-www-form-urlencoded"))
		return nil, false
	}
	for name, values := range form {
		if len(values) > 1 && name == "resource" {
			// RFC 8707 §2 allows several; this server mints a token for one.
			writeError(w, &oauthError{status: http.StatusBadRequest, code: "invalid_target",
				description: "one resource per request: an access token here is for one API"})
			return nil, false
		}
		if len(values) > 1 {
			writeError(w, errInvalidRequest("the parameter "+quote(name)+" is repeated"))
			return nil, false
		}
	}
	return form, true
}

const basicChallenge = `Basic realm="tokenservice"`

// clientSecret returns the API token a client authenticates with (RFC 6749
// §2.3.1): HTTP Basic, whose user and password are form-urlencoded first,
// or client_id and client_secret in the body; one way, not both (§2.3).
// The client_id must be the ID of the API token the secret is.
func clientSecret(r *http.Request, form url.Values) (string, *oauthError) {
	authz := r.Header.Get("Authorization")
	// §3.2: a parameter sent without a value is as if omitted.
	inBody := form.Get("client_secret") != ""
	var id, secret string
	switch {
	case authz != "" && (inBody || form.Get("client_id") != ""):
		return "", errInvalidRequest("authenticate the client one way: HTTP Basic or client_id and client_secret in the body, not both")
	case authz != "":
		var ok bool
		if id, secret, ok = basicCredentials(authz); !ok {
			return "", &oauthError{status: http.StatusUnauthorized, code: "invalid_client",
				description: "send the client credentials as HTTP Basic: the token's ID and the token", challenge: basicChallenge}
		}
	case inBody:
		id, secret = form.Get("client_id"), form.Get("client_secret")
	default:
		return "", &oauthError{status: http.StatusUnauthorized, code: "invalid_client",
			description: "client authentication is required: the API token's ID as client_id and the token as client_secret", challenge: basicChallenge}
	}
	if parsed, ok := auth.ParseAPIToken(secret); !ok || parsed.ID != id {
		return "", errInvalidClient
	}
	return secret, nil
}

// basicCredentials decodes an HTTP Basic Authorization header (RFC 7617),
// undoing RFC 6749 §2.3.1's form-urlencoding of each part.
func basicCredentials(authz string) (id, secret string, ok bool) {
	isBasic, user, pass, ok := bearer.ParseBasic(authz)
	if !isBasic || !ok {
		return "", "", false
	}
	var err error
	if id, err = url.QueryUnescape(user); err != nil {
		return "", "", false
	}
	if secret, err = url.QueryUnescape(pass); err != nil {
		return "", "", false
	}
	return id, secret, true
}

// parseScope reads the scope parameter (RFC 6749 §3.3).
func parseScope(scope string) ([]string, *oauthError) {
	names := strings.Split(scope, " ")
	if scope == "" {
		return nil, nil
	}
	for _, n := range names {
		if !domain.ValidScopeName(n) {
			return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_scope",
				description: "scope is a list of scope names separated by single spaces (RFC 6749 section 3.3)"}
		}
	}
	return names, nil
}

// oauthError is an error response of RFC 6749 §5.2 (and of RFC 7009 §2.2.1
// and RFC 6750 §3, which share its form).
type oauthError struct {
	status      int
	code        string
	description string
	challenge   string // WWW-Authenticate, with a 401
	retryAfter  bool
}

var (
	errInvalidClient = &oauthError{status: http.StatusUnauthorized, code: "invalid_client",
		description: "the client credentials are not valid", challenge: basicChallenge}
	errUnavailable = &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
		description: "the service is starting or its database does not answer: retry shortly", retryAfter: true}
	errServer = &oauthError{status: http.StatusInternalServerError, code: "server_error", description: "internal error"}
)

func errInvalidRequest(description string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: description}
}

// fromDomain maps a service error to the endpoint's answer, logging the
// server's faults with the request id and the client's address.
func (h *Handler) fromDomain(r *http.Request, err error, endpoint string) *oauthError {
	switch domain.KindOf(err) {
	case domain.KindUnauthenticated:
		return errInvalidClient
	case domain.KindInvalid:
		switch domain.ReasonOf(err) {
		case domain.ReasonInvalidScope:
			return &oauthError{status: http.StatusBadRequest, code: "invalid_scope", description: domain.MessageOf(err)}
		case domain.ReasonInvalidTarget: // RFC 8707 §2
			return &oauthError{status: http.StatusBadRequest, code: "invalid_target", description: domain.MessageOf(err)}
		case domain.ReasonUnsupportedTokenType:
			return &oauthError{status: http.StatusBadRequest, code: "unsupported_token_type", description: domain.MessageOf(err)}
		}
		return errInvalidRequest(domain.MessageOf(err))
	case domain.KindUnavailable:
		h.logFailure(r, slog.LevelWarn, endpoint, err)
		return errUnavailable
	}
	h.logFailure(r, slog.LevelError, endpoint, err)
	return errServer
}

func (h *Handler) logFailure(r *http.Request, level slog.Level, endpoint string, err error) {
	h.deps.Logger.Log(r.Context(), level, "request failed", "request_id", r.Header.Get("X-Request-Id"),
		"client.address", calllog.RequestAddr(r), "endpoint", endpoint, "error", err.Error())
}

func writeError(w http.ResponseWriter, e *oauthError) {
	if e.challenge != "" {
		w.Header().Set("WWW-Authenticate", e.challenge)
	}
	if e.retryAfter {
		w.Header().Set("Retry-After", "1")
	}
	body := map[string]string{"error": e.code}
	if e.description != "" {
		body["error_description"] = description(e.description)
	}
	writeJSON(w, e.status, body)
}

// description keeps to the characters RFC 6749 §5.2 allows an
// error_description: printable ASCII but '"' and '\'.
func description(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\' || r < 0x20 || r > 0x7e:
			return -1
		}
		return r
	}, s)
}

func quote(s string) string { return "'" + description(s) + "'" }

// writeJSON writes a token-bearing answer: never to be cached (RFC 6749
// §5.1, RFC 7662 §2.2 by the same token).
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func jsonBytes(b []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
}
