// Package extauthz is an Envoy external authorization server
// (envoy.service.auth.v3.Authorization/Check, go-control-plane's generated
// API): Envoy asks it about each request, it checks the request's
// Authorization credential (an API token or an access token) as the
// service's own methods do, and on success hands the upstream who the
// caller is in headers. Gateways that cannot verify JWTs, or that accept
// API tokens directly, put it in front of their services.
package extauthz

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/tokenservice/tokenservice/pkg/bearer"
	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

// The headers the upstream gets for an allowed request. They replace any
// the client sent, so a client cannot pass itself off as someone else; the
// same names with underscores for dashes (x_tokenservice_user_id) are
// removed too, since Envoy passes such headers on by default and CGI-style
// upstreams (WSGI, Rack, PHP: HTTP_X_TOKENSERVICE_USER_ID) read both
// spellings as one header.
const (
	HeaderUserID   = bearer.HeaderUserID
	HeaderUsername = bearer.HeaderUsername
	HeaderScopes   = bearer.HeaderScopes // space-separated
	HeaderTokenID  = bearer.HeaderTokenID
)

// ScopeExtension is the per-route context extension (Envoy's
// ext_authz_per_route check_settings.context_extensions) naming the scopes,
// separated by spaces or commas, a route's callers must hold.
const ScopeExtension = "tokenservice_scopes"

// AudienceExtension is the per-route context extension naming the audience
// (one of the service's --resources, RFC 8707) a route's access tokens must
// be minted for. Without it, an access token of any audience the service
// mints for is accepted.
const AudienceExtension = "tokenservice_audience"

// Server implements authv3.AuthorizationServer.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	tokens *tokens.Service
	// lookalikes holds, for each identity header, its other spellings.
	lookalikes map[string][]string
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// New returns a Server checking credentials with svc.
func New(svc *tokens.Service) *Server {
	lookalikes := map[string][]string{}
	for _, h := range []string{HeaderUserID, HeaderUsername, HeaderScopes, HeaderTokenID} {
		lookalikes[h] = slices.DeleteFunc(spellings(h), func(s string) bool { return s == h })
	}
	return &Server{tokens: svc, lookalikes: lookalikes}
}

// spellings returns name with each dash as a dash or an underscore, every
// combination: every header an upstream that folds the two takes for name.
// Envoy matches header names without regard to case, so case needs none.
func spellings(name string) []string {
	out := []string{name}
	for i := range len(name) {
		if name[i] != '-' {
			continue
		}
		for _, s := range out {
			out = append(out, s[:i]+"_"+s[i+1:])
		}
	}
	return out
}

// Check implements authv3.AuthorizationServer: OK with the caller's
// identity as headers, or a denial Envoy sends to the client as it is (401
// with an RFC 6750 challenge, or 403 for a scope the route needs). A
// database that does not answer is an error, so Envoy's failure_mode_allow
// decides.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	authz := req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"]
	isBearer, credential := bearer.Parse(authz)
	if !isBearer || credential == "" {
		return deny(http.StatusUnauthorized, codes.Unauthenticated, bearer.Refusal(authz)), nil
	}
	ctx = domain.NewContextWithOriginFunc(ctx, func() domain.Origin { return origin(ctx, req) })
	p, err := s.tokens.AuthenticateBearerFor(ctx, credential, audience(req.GetAttributes().GetContextExtensions()[AudienceExtension]))
	if err != nil {
		if domain.KindOf(err) == domain.KindUnauthenticated {
			return deny(http.StatusUnauthorized, codes.Unauthenticated, bearer.InvalidToken), nil
		}
		return nil, err // the database is away: UNAVAILABLE, and Envoy's failure mode decides
	}
	required := strings.FieldsFunc(req.GetAttributes().GetContextExtensions()[ScopeExtension], func(r rune) bool { return r == ' ' || r == ',' })
	for _, scope := range required {
		if !p.Allows(scope) {
			// RFC 6750 §3.1.
			return deny(http.StatusForbidden, codes.PermissionDenied, bearer.InsufficientScope(bearer.Realm, scope)), nil
		}
	}
	// The credential stays here: the upstream gets who the caller is, not
	// a long-lived secret it could leak. An identity header without a
	// value is removed rather than set (Envoy drops empty values), so a
	// client's own cannot pass.
	ok := &authv3.OkHttpResponse{HeadersToRemove: []string{"authorization"}}
	for _, h := range [][2]string{
		{HeaderUserID, p.User.ID}, {HeaderUsername, p.User.Username}, {HeaderScopes, p.Scopes.String()}, {HeaderTokenID, p.TokenID},
	} {
		ok.HeadersToRemove = append(ok.HeadersToRemove, s.lookalikes[h[0]]...)
		if h[1] == "" {
			ok.HeadersToRemove = append(ok.HeadersToRemove, h[0])
			continue
		}
		ok.Headers = append(ok.Headers, header(h[0], h[1]))
	}
	return &authv3.CheckResponse{
		Status:       &status.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}, nil
}

// origin is where the request Envoy asks about came from, for the audit
// trail: its client's address as Envoy saw it, its User-Agent, its
// x-request-id (Envoy's) and its trace id (W3C traceparent), not Envoy's
// own call's, which the server's interceptors put in the context.
func origin(ctx context.Context, req *authv3.CheckRequest) domain.Origin {
	h := req.GetAttributes().GetRequest().GetHttp().GetHeaders()
	// What the check's caller says of its client is taken only when it is
	// shaped as it must be: an IP address (else the caller's own address,
	// which no one can forge), a request id by the server's rule. Whoever
	// can call Check can still name any address: keep the gRPC port to
	// the gateways (docs/operations.md).
	o := domain.Origin{ClientAddress: calllog.ClientAddr(ctx), UserAgent: h["user-agent"]}
	if addr, err := netip.ParseAddr(req.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress()); err == nil {
		o.ClientAddress = addr.String()
	}
	if id := h["x-request-id"]; calllog.ValidRequestID(id) {
		o.RequestID = id
	}
	// traceparent: version-traceid-parentid-flags, the trace id 32 hex digits.
	if parts := strings.Split(h["traceparent"], "-"); len(parts) == 4 && len(parts[1]) == 32 && strings.Trim(parts[1], "0123456789abcdef") == "" {
		o.TraceID = parts[1]
	}
	return o
}

func header(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

func deny(httpStatus int, code codes.Code, challenge string) *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(code)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(httpStatus)},
			Headers: []*corev3.HeaderValueOption{header("www-authenticate", challenge)},
		}},
	}
}

// audience is what a route's AudienceExtension asks: its value, or any of
// the service's audiences.
func audience(ext string) tokens.Audience {
	if ext == "" {
		return tokens.AnyAudience
	}
	return tokens.Audience(ext)
}
