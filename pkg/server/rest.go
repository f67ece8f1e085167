package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/httprule"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
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

func (c restChecks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route, vars, found, allowed := c.routes.Find(r.Method, r.URL.EscapedPath())
	switch {
	case !found && c.unknownCustomMethod(w, r):
		return
	case !found && len(allowed) > 0:
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		c.fail(w, r, http.StatusMethodNotAllowed, status.New(codes.Unimplemented,
			fmt.Sprintf("%s is not a method of %s: use %s", r.Method, r.URL.EscapedPath(), strings.Join(allowed, " or "))))
		return
	case !found:
		c.notFound(w, r)
		return
	}
	var violations []*errdetails.BadRequest_FieldViolation
	if route.Body != "" {
		body, st, httpStatus := readJSONBody(r)
		if st != nil {
			if httpStatus == http.StatusUnsupportedMediaType {
				w.Header().Set("Accept", "application/json")
			}
			c.fail(w, r, httpStatus, st)
			return
		}
		msg, ok := decode(route, vars, body)
		if !ok {
			found := checkBody(route, vars, body)
			if len(found) == 0 {
				// Nothing to name: decode it as the gateway would, and
				// answer in plain words if that fails.
				var err error
				if msg, err = decodeBody(route, body); err != nil {
					found = append(found, undecodable)
				}
			}
			violations = append(violations, found...)
		}
		if msg != nil {
			r.Body = decodedBody{Reader: bytes.NewReader(body), msg: msg}
		} else {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
	}
	if r.URL.RawQuery != "" {
		query := r.URL.Query()
		violations = append(violations, checkQuery(route, vars, query)...)
		if len(violations) == 0 && clampPageSize(query) {
			r.URL.RawQuery = query.Encode()
		}
	}
	if len(violations) > 0 {
		c.fail(w, r, http.StatusBadRequest, badRequest(violations))
		return
	}
	c.gateway.ServeHTTP(w, r)
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

// readJSONBody reads a request's body, which must be JSON (an absent
// Content-Type is taken as JSON) and within MaxBodyBytes.
func readJSONBody(r *http.Request) (body []byte, st *status.Status, httpStatus int) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, status.New(codes.InvalidArgument, fmt.Sprintf(
				"the request body must be JSON, sent with Content-Type: application/json, not %q", ct)), http.StatusUnsupportedMediaType
		}
	}
	body, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, status.New(codes.InvalidArgument, fmt.Sprintf("the request body is over %d KiB", MaxBodyBytes>>10)), http.StatusBadRequest
	case err != nil:
		return nil, status.New(codes.InvalidArgument, "the request body could not be read"), http.StatusBadRequest
	case !utf8.Valid(body):
		return nil, status.New(codes.InvalidArgument, "the request body is not valid UTF-8"), http.StatusBadRequest
	}
	return body, nil, 0
}

// decode decodes body for route as the gateway would (protojson), and
// reports whether it has nothing for checkBody to name: it decodes, and it
// cannot set a field the path gives. One decode is about half the cost of
// checkBody, which then runs only to explain a body that fails; and the
// gateway takes the message decoded here (decodedBody) rather than decode
// the body again. The message is nil for an empty body, and for a route
// whose path variables the body might name (checkBody looks).
func decode(route httprule.Route, vars map[string]string, body []byte) (proto.Message, bool) {
	if len(vars) > 0 && route.Body == "*" {
		return nil, false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, true // an empty body is an empty message
	}
	msg, err := decodeBody(route, body)
	return msg, err == nil && msg != nil
}

// decodeBody decodes body as the message route's body holds; the message
// is nil for an empty body, or a route whose body holds no message.
func decodeBody(route httprule.Route, body []byte) (proto.Message, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	desc := bodyMessage(route)
	if desc == nil {
		return nil, nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(desc.FullName())
	if err != nil {
		return nil, nil
	}
	msg := mt.New().Interface()
	if err := gatewayUnmarshal.Unmarshal(body, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// bodyMessage is the message a route's body holds: the request ("*") or
// the message field the rule names; nil if the rule names no message field.
func bodyMessage(route httprule.Route) protoreflect.MessageDescriptor {
	if route.Body == "*" {
		return route.Method.Input()
	}
	if fd := route.Method.Input().Fields().ByName(protoreflect.Name(route.Body)); fd != nil {
		return fd.Message()
	}
	return nil
}

// decodedBody is a request body with the message decode made of it: the
// gateway's decoder (gatewayMarshaler.NewDecoder) takes the message.
type decodedBody struct {
	*bytes.Reader
	msg proto.Message
}

func (decodedBody) Close() error { return nil }

// parseInteger parses an integer field's text and says, if it does not fit,
// what the field takes.
func parseInteger(kind protoreflect.Kind, text string) (uint64, string) {
	switch kind {
	case protoreflect.Uint32Kind:
		n, err := strconv.ParseUint(text, 10, 32)
		if err != nil {
			return 0, fmt.Sprintf("must be a whole number from 0 to %d", uint32(math.MaxUint32))
		}
		return n, ""
	case protoreflect.Uint64Kind:
		n, err := strconv.ParseUint(text, 10, 64)
		if err != nil {
			return 0, fmt.Sprintf("must be a whole number from 0 to %d", uint64(math.MaxUint64))
		}
		return n, ""
	default:
		if _, err := strconv.ParseInt(text, 10, 64); err != nil {
			return 0, "must be a whole number"
		}
		return 0, ""
	}
}

// checkQuery checks the query parameters against the request message's
// fields that are neither in the path nor in the body. Nested fields are
// named with dots, as the gateway reads them.
func checkQuery(route httprule.Route, vars map[string]string, query url.Values) []*errdetails.BadRequest_FieldViolation {
	var out []*errdetails.BadRequest_FieldViolation
	msg := route.Method.Input()
	for _, key := range sortedKeys(query) {
		if len(out) == maxQueryViolations {
			break // enough to fix the request by; a flood of names gets no bigger answer
		}
		fd := fieldByPath(msg, key)
		if fd == nil || inPath(vars, fd) || route.Body == "*" || string(fd.Name()) == route.Body {
			out = append(out, &errdetails.BadRequest_FieldViolation{Field: clipName(key), Description: unknownQuery(route, vars, key)})
			continue
		}
		for _, v := range query[key] {
			if desc := checkQueryValue(fd, v); desc != "" {
				out = append(out, &errdetails.BadRequest_FieldViolation{Field: key, Description: desc})
			}
		}
		if len(query[key]) > 1 && !fd.IsList() {
			out = append(out, &errdetails.BadRequest_FieldViolation{Field: key, Description: "must be given once"})
		}
	}
	return out
}

// maxQueryViolations bounds the query parameters one answer names.
const maxQueryViolations = 10

// maxNameBytes bounds a client's parameter name as an answer (and the
// log) repeats it: no field's name is near it.
const maxNameBytes = 64

// clipName is a client's parameter name as an answer repeats it: cut to
// maxNameBytes (on a rune boundary), marked as cut.
func clipName(name string) string {
	if len(name) <= maxNameBytes {
		return name
	}
	cut := maxNameBytes
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut] + "…"
}

func inPath(vars map[string]string, fd protoreflect.FieldDescriptor) bool {
	_, ok := vars[string(fd.Name())]
	return ok
}

func checkQueryValue(fd protoreflect.FieldDescriptor, v string) string {
	if fd.Name() == "page_size" {
		if !wholeNumber(v) {
			return fmt.Sprintf("must be a whole number: 0 (or none) for pages of %d; more than %d is taken as %d",
				pagetoken.DefaultPageSize, pagetoken.MaxPageSize, pagetoken.MaxPageSize)
		}
		return ""
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		if _, err := strconv.ParseBool(v); err != nil {
			return "must be true or false"
		}
	case protoreflect.Uint32Kind, protoreflect.Int32Kind, protoreflect.Uint64Kind, protoreflect.Int64Kind:
		_, desc := parseInteger(fd.Kind(), v)
		return desc
	case protoreflect.MessageKind:
		if isWellKnown(fd.Message()) {
			// As the gateway reads it: the value as a JSON string.
			quoted, _ := json.Marshal(v) // a string: cannot fail
			return checkWellKnown(fd.Message(), quoted)
		}
	}
	return ""
}

// wholeNumber reports whether v is digits only, as many as there are.
func wholeNumber(v string) bool {
	for i := range len(v) {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return v != ""
}

// clampPageSize takes a page size too large for the field (uint32) as the
// maximum, as AIP-158 has a page size above the maximum coerced to it (the
// service clamps those that fit), and reports whether it changed query.
func clampPageSize(query url.Values) bool {
	changed := false
	for _, key := range []string{"pageSize", "page_size"} {
		for i, v := range query[key] {
			if _, err := strconv.ParseUint(v, 10, 32); err != nil && wholeNumber(v) {
				query[key][i], changed = strconv.Itoa(pagetoken.MaxPageSize), true
			}
		}
	}
	return changed
}

// fieldByName finds a field by its JSON name or its proto name, as protojson does.
func fieldByName(msg protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if fd := msg.Fields().ByJSONName(name); fd != nil {
		return fd
	}
	return msg.Fields().ByName(protoreflect.Name(name))
}

// fieldByPath finds a dotted field path.
func fieldByPath(msg protoreflect.MessageDescriptor, path string) protoreflect.FieldDescriptor {
	var fd protoreflect.FieldDescriptor
	for _, part := range strings.Split(path, ".") {
		if msg == nil {
			return nil
		}
		if fd = fieldByName(msg, part); fd == nil {
			return nil
		}
		msg = fd.Message()
	}
	return fd
}

// unknownField says a body field is unknown and what the message has.
func unknownField(msg protoreflect.MessageDescriptor, vars map[string]string, key string) string {
	names := jsonNames(msg, vars, "")
	return fmt.Sprintf("is not a field of this request%s; the fields are %s", didYouMean(names, key), strings.Join(names, ", "))
}

func unknownQuery(route httprule.Route, vars map[string]string, key string) string {
	if route.Body == "*" {
		return "is not a query parameter of this method: its fields go in the JSON body"
	}
	names := jsonNames(route.Method.Input(), vars, route.Body)
	if len(names) == 0 {
		return "is not a query parameter of this method, which takes none"
	}
	return fmt.Sprintf("is not a query parameter of this method%s; the parameters are %s", didYouMean(names, key), strings.Join(names, ", "))
}

// jsonNames lists a message's fields by JSON name, but for those in the
// path and the body field.
func jsonNames(msg protoreflect.MessageDescriptor, vars map[string]string, bodyField string) []string {
	var names []string
	for i := range msg.Fields().Len() {
		fd := msg.Fields().Get(i)
		if _, inPath := vars[string(fd.Name())]; inPath || string(fd.Name()) == bodyField {
			continue
		}
		names = append(names, fd.JSONName())
	}
	return names
}

// didYouMean suggests the name key was likely meant to be: the one whose
// letters, case and underscores aside, are at most two edits away (and
// fewer than a third of them), if there is exactly one closest.
func didYouMean(names []string, key string) string {
	if len(key) > maxNameBytes {
		return "" // far from every name; and the distance costs len(key) times each name
	}
	fold := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	best, bestDist, ties := "", 3, 0
	for _, n := range names {
		d := editDistance(fold(n), fold(key))
		if d > len(fold(n))/3 {
			continue
		}
		switch {
		case d < bestDist:
			best, bestDist, ties = n, d, 0
		case d == bestDist:
			ties++
		}
	}
	if best == "" || ties > 0 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// withJSONFieldNames renames the fields of an error's google.rpc.BadRequest
// from proto names (as the service names them, and gRPC clients spell them)
// to JSON names (as REST clients spell them), in the details and in the
// message, which lists them.
func withJSONFieldNames(err error, msg protoreflect.MessageDescriptor) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return err
	}
	p := st.Proto()
	renamed := false
	for i, d := range p.GetDetails() {
		var br errdetails.BadRequest
		if d.UnmarshalTo(&br) != nil {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			if name := jsonPath(msg, v.GetField()); name != v.GetField() {
				p.Message = strings.ReplaceAll(p.Message, v.GetField()+": ", name+": ")
				v.Field, renamed = name, true
			}
		}
		if renamed {
			if packed, err := anypb.New(&br); err == nil {
				p.Details[i] = packed
			}
		}
	}
	return status.ErrorProto(p)
}

// jsonPath turns a dotted proto field path into JSON names, as far as the
// message has the fields.
func jsonPath(msg protoreflect.MessageDescriptor, path string) string {
	parts := strings.Split(path, ".")
	for i, part := range parts {
		if msg == nil {
			break
		}
		fd := msg.Fields().ByName(protoreflect.Name(part))
		if fd == nil {
			break
		}
		parts[i] = fd.JSONName()
		msg = fd.Message()
	}
	return strings.Join(parts, ".")
}
