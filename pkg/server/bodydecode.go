package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/tokenservice/tokenservice/pkg/httprule"
)

// takeBody reads r's body for route and hands it on to the gateway: as
// the message decoded here (decodedBody) when there is one, else as the
// bytes read. It returns the fields at fault in it; a body it cannot read
// (not JSON: 415; too large, unreadable, not UTF-8: 400) it answers
// itself, and reports false.
func (c restChecks) takeBody(w http.ResponseWriter, r *http.Request, route httprule.Route, vars map[string]string) ([]*errdetails.BadRequest_FieldViolation, bool) {
	body, st, httpStatus := readJSONBody(r)
	if st != nil {
		if httpStatus == http.StatusUnsupportedMediaType {
			w.Header().Set("Accept", "application/json")
		}
		c.fail(w, r, httpStatus, st)
		return nil, false
	}
	msg, violations := decodeOrExplain(route, vars, body)
	if msg != nil {
		r.Body = decodedBody{Reader: bytes.NewReader(body), msg: msg}
	} else {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	return violations, true
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

// decodeOrExplain decodes body for route, or names what is wrong with it:
// the fields checkBody finds at fault, or, when it finds none and the
// gateway's decoder still refuses the body, undecodable. The message is
// nil when there are violations, and when decode gives none.
func decodeOrExplain(route httprule.Route, vars map[string]string, body []byte) (proto.Message, []*errdetails.BadRequest_FieldViolation) {
	if msg, ok := decode(route, vars, body); ok {
		return msg, nil
	}
	if violations := checkBody(route, vars, body); len(violations) > 0 {
		return nil, violations
	}
	// Nothing to name: decode it as the gateway would, and answer in
	// plain words if that fails.
	msg, err := decodeBody(route, body)
	if err != nil {
		return nil, []*errdetails.BadRequest_FieldViolation{undecodable}
	}
	return msg, nil
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
