package server

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tokenservice/tokenservice/pkg/httprule"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
)

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

// checkQueryValue says what is wrong with one value of a query parameter
// ("" if nothing), read as the gateway reads it.
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

// unknownQuery says a query parameter is unknown and what the method takes.
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

// inPath reports whether the route's path gives the field.
func inPath(vars map[string]string, fd protoreflect.FieldDescriptor) bool {
	_, ok := vars[string(fd.Name())]
	return ok
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

// sortedKeys returns m's keys in order: an answer names parameters in a
// stable order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
