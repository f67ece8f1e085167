// Package forwardauth is the endpoint gateways ask, per request, whether a
// request may pass: nginx's auth_request, ingress-nginx's auth-url, Caddy's
// forward_auth, Traefik's ForwardAuth and Envoy's HTTP ext_authz all send it
// the request's Authorization header and take its status: 2xx lets the
// request through (with the identity headers the answer carries copied
// upstream), anything else is the client's answer. The credential is
// checked as every bearer is (tokens.Service: the same caches, last-used
// times and audit trail); pkg/extauthz is the same check for Envoy's gRPC
// ext_authz.
package forwardauth

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/bearer"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

// Path is where the endpoint is served, for any method: nginx's subrequest
// keeps the client's method, Caddy and Traefik send GET.
const Path = "/forward-auth"

// The query parameters of the auth URL, set per gateway location.
const (
	// ParamScope names scopes the route needs (repeated, or separated by
	// spaces or commas): a credential without one of them gets 403.
	ParamScope = "scope"
	// ParamAudience names the audience (one of the service's --resources,
	// RFC 8707) the route's access tokens must be minted for; without it,
	// any audience the service mints for.
	ParamAudience = "audience"
)

// CacheMaxAge is how long a gateway may cache a 200 (Cache-Control
// max-age): a token revoked here is refused by this replica at once and by
// every other within the change feed's bound (docs/scaling.md), so a
// gateway's cache adds at most this to that bound. Refusals are not cached
// (no-store): a credential fixed by its owner works at once.
const CacheMaxAge = time.Second

// maxForwardedBytes bounds each X-Forwarded-* header the endpoint takes: a
// URI longer than this is no gateway's.
const maxForwardedBytes = 8 << 10

// forwarded are the headers gateways send saying what the client asked for.
var forwarded = []string{"X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host"}

// Handler serves the endpoint.
type Handler struct {
	tokens *tokens.Service
	logger *slog.Logger
}

// New returns the endpoint, checking credentials with svc.
func New(svc *tokens.Service, logger *slog.Logger) *Handler {
	return &Handler{tokens: svc, logger: logger}
}

// Routes returns the endpoint's routes, for every method: Path, and the
// paths under it, where Envoy's HTTP ext_authz asks (its path_prefix, then
// the client's path and query, which are not the endpoint's parameters).
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{Path: h, Path + "/": h}
}

// ServeHTTP answers whether the request the gateway forwards may pass.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var (
		required []string
		aud      tokens.Audience
		problem  string
	)
	switch {
	case r.URL.Path == Path:
		required, aud, problem = parseQuery(r.URL.RawQuery)
	case r.URL.Path == Path+"/" && hasOwnParameter(r.URL.RawQuery):
		// An auth URL with a stray slash would drop its route's scopes
		// (the query under Path/ is the client's): refused, not ignored.
		problem = "the endpoint's parameters go on " + Path + ", not " + Path + "/"
	}
	if problem == "" {
		problem = checkForwarded(r.Header)
	}
	authz := r.Header.Values("Authorization")
	if problem == "" && len(authz) > 1 {
		problem = "the request has several Authorization headers: send one"
	}
	if problem != "" {
		refuse(w, http.StatusBadRequest, "", "invalid_request", problem)
		return
	}
	var header string
	if len(authz) == 1 {
		header = authz[0]
	}
	isBearer, credential := bearer.Parse(header)
	if !isBearer || credential == "" {
		refuse(w, http.StatusUnauthorized, bearer.Refusal(header), "invalid_request", "send the token as: Authorization: Bearer <token>")
		return
	}
	p, err := h.tokens.AuthenticateBearerFor(r.Context(), credential, aud)
	switch kind := domain.KindOf(err); {
	case err == nil:
	case kind == domain.KindUnauthenticated:
		refuse(w, http.StatusUnauthorized, bearer.InvalidToken, "invalid_token", "the token is not accepted")
		return
	case kind == domain.KindUnavailable:
		// The database is away: the gateway refuses the request (nginx
		// answers 500, Caddy and Traefik pass this on), never lets it by.
		w.Header().Set("Retry-After", "1")
		refuse(w, http.StatusServiceUnavailable, "", "temporarily_unavailable", "the service cannot check tokens now: retry shortly")
		return
	default:
		h.logger.LogAttrs(r.Context(), slog.LevelError, "forward-auth check failed", slog.String("error", err.Error()))
		refuse(w, http.StatusInternalServerError, "", "server_error", "internal error")
		return
	}
	for _, scope := range required {
		if !p.Allows(scope) {
			// RFC 6750 §3.1.
			refuse(w, http.StatusForbidden, bearer.InsufficientScope(bearer.Realm, scope), "insufficient_scope",
				"the token lacks the scope "+scope+" this route needs")
			return
		}
	}
	allow(w, p, time.Now())
}

// allow answers 200 with who the caller is. Each identity header is sent,
// empty when there is nothing to say (an access token with no scope), so
// that a gateway copying it replaces what the client sent under its name
// (Envoy's allowed_upstream_headers overwrites only the headers the answer
// has). Each value is one the service made (IDs, a username, scope names:
// never a control character); one that is not is sent empty, so no answer
// can split a header.
func allow(w http.ResponseWriter, p *domain.Principal, now time.Time) {
	h := w.Header()
	for _, kv := range [][2]string{
		{bearer.HeaderUserID, p.User.ID}, {bearer.HeaderUsername, p.User.Username},
		{bearer.HeaderScopes, p.Scopes.String()}, {bearer.HeaderTokenID, p.TokenID},
	} {
		v := kv[1]
		if !safeValue(v) {
			v = ""
		}
		h.Set(kv[0], v)
	}
	if p.ExpireTime.IsZero() || p.ExpireTime.Sub(now) > CacheMaxAge {
		h.Set("Cache-Control", "private, max-age=1")
	} else {
		h.Set("Cache-Control", "no-store")
	}
	w.WriteHeader(http.StatusOK)
}

// refuse answers status with an RFC 6750 §3 challenge (for a 401 or 403)
// and a JSON body in RFC 6749 §5.2's form, which Caddy and Traefik pass to
// the client as it is.
func refuse(w http.ResponseWriter, status int, challenge, code, description string) {
	h := w.Header()
	if challenge != "" {
		h.Set("WWW-Authenticate", challenge)
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, description})
}

// parseQuery reads the auth URL's query: the scopes a route needs and the
// audience its access tokens must have. Anything else, or a value that is
// not what it should be, is a mistake in the gateway's configuration,
// said in plain words.
func parseQuery(raw string) (required []string, aud tokens.Audience, problem string) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, "", "the query string does not decode: " + err.Error()
	}
	for name, values := range q {
		switch name {
		case ParamScope:
			for _, v := range values {
				for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' }) {
					if !domain.ValidScopeName(s) {
						return nil, "", "scope " + quote(s) + " is not a scope name (RFC 6749 §3.3)"
					}
					required = append(required, s)
				}
			}
		case ParamAudience:
			if len(values) != 1 || values[0] == "" || !safeValue(values[0]) {
				return nil, "", "give audience once, as the resource's identifier"
			}
			aud = tokens.Audience(values[0])
		default:
			return nil, "", "unknown query parameter " + quote(name) + ": the endpoint takes " + ParamScope + " and " + ParamAudience
		}
	}
	return required, aud, ""
}

// hasOwnParameter reports whether a query names scope or audience.
func hasOwnParameter(raw string) bool {
	q, err := url.ParseQuery(raw)
	return err != nil || q.Has(ParamScope) || q.Has(ParamAudience)
}

// checkForwarded refuses X-Forwarded-Method, -Uri and -Host headers that
// no gateway would send: several of one, longer than maxForwardedBytes, or
// with control characters. (The endpoint does not act on them otherwise:
// a route's rules are the gateway's, its scopes in the auth URL.)
func checkForwarded(h http.Header) string {
	for _, name := range forwarded {
		values := h.Values(name)
		if len(values) > 1 {
			return "the request has several " + name + " headers: a gateway sends one"
		}
		if len(values) == 1 && (len(values[0]) > maxForwardedBytes || !safeValue(values[0])) {
			return name + " is too long or holds control characters"
		}
	}
	return ""
}

// safeValue reports whether v may be a header value as it is: no control
// characters (RFC 9110 §5.5: CR, LF and NUL would end or split it).
func safeValue(v string) bool {
	for i := range len(v) {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// quote quotes a name taken from a request for a message, shortened.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}
