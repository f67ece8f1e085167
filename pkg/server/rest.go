package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/httprule"
)

// restChecks stands in front of the gateway. It matches each request to a
// route from the proto's HTTP annotations and checks what the gateway would
// decode, so that a mistake gets an answer in the API's terms, naming the
// field as the client spelt it: an unknown path is a JSON 404, a known path
// with another method 405 with Allow, a body that is not JSON 415, and an
// unknown or ill-typed field or query parameter 400 with a
// google.rpc.BadRequest. What passes goes to the gateway, its body as the
// message decoded here (decodedBody).
//
// A request it answers never reaches the interceptors, so it logs it
// itself, as logRequests does: one "finished request" line naming the
// client.
type restChecks struct {
	routes  httprule.Table
	gateway *runtime.ServeMux
	logger  *slog.Logger
}

// ServeHTTP matches r to its route (matchRoute), reads its body (takeBody)
// and checks its query parameters (checkQuery), names every field at fault
// in them in one 400, and passes a request with none to the gateway, a page
// size too large for its field taken as the maximum (clampPageSize).
func (c restChecks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route, vars, ok := c.matchRoute(w, r)
	if !ok {
		return
	}
	var violations []*errdetails.BadRequest_FieldViolation
	if route.Body != "" {
		if violations, ok = c.takeBody(w, r, route, vars); !ok {
			return
		}
	}
	var query url.Values
	if r.URL.RawQuery != "" {
		query = r.URL.Query()
		violations = append(violations, checkQuery(route, vars, query)...)
	}
	if len(violations) > 0 {
		c.fail(w, r, http.StatusBadRequest, badRequest(violations))
		return
	}
	if clampPageSize(query) {
		r.URL.RawQuery = query.Encode()
	}
	c.gateway.ServeHTTP(w, r)
}

// matchRoute finds r's route and path variables; when r has none, it
// answers (404, or 405 with Allow) and reports false.
func (c restChecks) matchRoute(w http.ResponseWriter, r *http.Request) (httprule.Route, map[string]string, bool) {
	route, vars, found, allowed := c.routes.Find(r.Method, r.URL.EscapedPath())
	switch {
	case found:
		return route, vars, true
	case c.unknownCustomMethod(w, r): // answered
	case len(allowed) > 0:
		c.methodNotAllowed(w, r, allowed)
	default:
		c.notFound(w, r)
	}
	return httprule.Route{}, nil, false
}

// unknownCustomMethod answers, with a 404 naming the custom methods
// (AIP-136) the path has, a request whose last segment names another one,
// a misspelt ":rotat" say, and reports whether it did. Without it such a
// path is the resource's own ({token_id} takes "abc:rotat"), whose methods
// a 405 would offer.
func (c restChecks) unknownCustomMethod(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.EscapedPath()
	customs := c.routes.CustomMethods(path)
	if len(customs) == 0 {
		return false
	}
	known := make([]string, len(customs))
	for i, route := range customs {
		if strings.HasSuffix(path, route.CustomMethod()) {
			return false // a known one, with another HTTP method: 405
		}
		known[i] = route.Verb + " " + route.CustomMethod()
	}
	sort.Strings(known)
	i := strings.LastIndexByte(path, ':')
	c.fail(w, r, http.StatusNotFound, status.New(codes.NotFound, fmt.Sprintf("%s is not a custom method of %s; it has %s",
		path[i:], path[:i], strings.Join(known, ", "))))
	return true
}

// methodNotAllowed answers a known path asked with another method: 405,
// with Allow listing the methods it has.
func (c restChecks) methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed []string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	c.fail(w, r, http.StatusMethodNotAllowed, status.New(codes.Unimplemented,
		fmt.Sprintf("%s is not a method of %s: use %s", r.Method, r.URL.EscapedPath(), strings.Join(allowed, " or "))))
}

// notFound answers a path the API does not have with the API's JSON error.
func (c restChecks) notFound(w http.ResponseWriter, r *http.Request) {
	c.fail(w, r, http.StatusNotFound, status.New(codes.NotFound,
		fmt.Sprintf("no such path: %s; the API's paths are in /openapi.json and /docs", r.URL.EscapedPath())))
}

// fail writes st as the gateway writes errors, with the HTTP status given.
func (c restChecks) fail(w http.ResponseWriter, r *http.Request, httpStatus int, st *status.Status) {
	_, marshaler := runtime.MarshalerForRequest(c.gateway, r)
	runtime.HTTPError(r.Context(), c.gateway, marshaler, w, r, &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: st.Err()})
	if c.logger != nil && c.logger.Enabled(r.Context(), slog.LevelInfo) {
		c.logger.LogAttrs(r.Context(), slog.LevelInfo, "finished request", slog.String("request_id", r.Header.Get(requestIDHTTPHeader)),
			slog.String("client.address", calllog.RequestAddr(r)), slog.String("http.method", r.Method),
			slog.String("http.path", r.URL.EscapedPath()), slog.Int("http.status", httpStatus), slog.String("error", st.Message()))
	}
}

// badRequest is an INVALID_ARGUMENT naming each field at fault.
func badRequest(violations []*errdetails.BadRequest_FieldViolation) *status.Status {
	msgs := make([]string, len(violations))
	for i, v := range violations {
		msgs[i] = v.Field + ": " + v.Description
	}
	st := status.New(codes.InvalidArgument, strings.Join(msgs, "; "))
	if withDetails, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: violations}); err == nil {
		return withDetails
	}
	return st
}
