package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/tokenservice/tokenservice/pkg/httprule"
)

// checkBody checks a JSON body against the route's request message and
// names, in plain words, each field the gateway's decoder (protojson) would
// refuse: unknown and duplicated fields, values of the wrong type, null
// items, half a surrogate pair, times and durations in another form. A
// body it finds nothing in that still does not decode gets undecodable.
func checkBody(route httprule.Route, vars map[string]string, body []byte) []*errdetails.BadRequest_FieldViolation {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil // an empty body is an empty message
	}
	if !json.Valid(body) {
		return []*errdetails.BadRequest_FieldViolation{{Field: "body", Description: "is not valid JSON" + jsonErrorAt(body)}}
	}
	msg := bodyMessage(route)
	if msg == nil {
		return nil // no fields to name: the gateway's decoder speaks
	}
	if route.Body != "*" {
		vars = nil // the path's variables are the request's, not the body field's
	}
	return checkObject("", msg, vars, body)
}

// undecodable answers a body that protojson refuses for a reason checkBody
// has no words for: never protojson's own text, which speaks of its
// internals.
var undecodable = &errdetails.BadRequest_FieldViolation{Field: "body",
	Description: "is not a request this method takes: its fields and their types are in /openapi.json and /docs"}

// jsonErrorAt says where a JSON syntax error is, for people: line and column.
func jsonErrorAt(body []byte) string {
	var syntax *json.SyntaxError
	if err := json.Unmarshal(body, new(any)); errors.As(err, &syntax) {
		line := 1 + bytes.Count(body[:syntax.Offset], []byte("\n"))
		col := int(syntax.Offset) - bytes.LastIndexByte(body[:syntax.Offset], '\n') - 1
		return fmt.Sprintf(" (at line %d, column %d)", line, col)
	}
	return " (it ends too soon)"
}

// member is one name and value of a JSON object.
type member struct {
	key   string
	value json.RawMessage
}

// members returns a JSON object's members in order, a repeated name as
// often as it is given (encoding/json keeps the last; protojson refuses
// the body), or false if raw is not an object.
func members(raw json.RawMessage) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, member{key, v})
	}
	return out, true
}

// checkObject checks a JSON object's keys and values against a message.
// vars are the route's path variables: fields of the top-level message that
// the path gives, and the body may not.
func checkObject(prefix string, msg protoreflect.MessageDescriptor, vars map[string]string, raw json.RawMessage) []*errdetails.BadRequest_FieldViolation {
	obj, ok := members(raw)
	if !ok {
		return []*errdetails.BadRequest_FieldViolation{{Field: strings.TrimSuffix(prefix, ".") + orBody(prefix), Description: "must be a JSON object"}}
	}
	sort.SliceStable(obj, func(i, j int) bool { return obj[i].key < obj[j].key })
	var out []*errdetails.BadRequest_FieldViolation
	given := map[protoreflect.Name]string{} // the key each field was first given by
	for _, m := range obj {
		fd := fieldByName(msg, m.key)
		if fd == nil || inPath(vars, fd) {
			out = append(out, &errdetails.BadRequest_FieldViolation{Field: prefix + m.key, Description: unknownField(msg, vars, m.key)})
			continue
		}
		// protojson refuses a field given twice, by one name or by its
		// JSON and its proto name.
		if first, twice := given[fd.Name()]; twice {
			desc := "is given twice: give it once"
			if first != m.key {
				desc = fmt.Sprintf("is given twice, as %s and as %s: give it once", first, m.key)
			}
			out = append(out, &errdetails.BadRequest_FieldViolation{Field: prefix + m.key, Description: desc})
			continue
		}
		given[fd.Name()] = m.key
		if desc := checkJSONValue(prefix+m.key, fd, m.value, &out); desc != "" {
			out = append(out, &errdetails.BadRequest_FieldViolation{Field: prefix + m.key, Description: desc})
		}
	}
	return out
}

func orBody(prefix string) string {
	if prefix == "" {
		return "body"
	}
	return ""
}

// checkJSONValue says what is wrong with a field's JSON value ("" if
// nothing), adding violations of nested fields to out.
func checkJSONValue(name string, fd protoreflect.FieldDescriptor, raw json.RawMessage, out *[]*errdetails.BadRequest_FieldViolation) string {
	if string(raw) == "null" {
		return "" // protojson: the field is left unset
	}
	if fd.IsList() {
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return "must be a JSON array"
		}
		for i, item := range items {
			itemName := fmt.Sprintf("%s[%d]", name, i)
			var desc string
			switch {
			case string(item) == "null": // protojson refuses null in a list
				desc = "must not be null: leave the item out"
			case fd.Kind() == protoreflect.MessageKind && !isWellKnown(fd.Message()):
				*out = append(*out, checkObject(itemName+".", fd.Message(), nil, item)...)
			default:
				desc = checkScalar(fd, item)
			}
			if desc != "" {
				*out = append(*out, &errdetails.BadRequest_FieldViolation{Field: itemName, Description: desc})
			}
		}
		return ""
	}
	if fd.Kind() == protoreflect.MessageKind && !isWellKnown(fd.Message()) {
		*out = append(*out, checkObject(name+".", fd.Message(), nil, raw)...)
		return ""
	}
	return checkScalar(fd, raw)
}

func isWellKnown(m protoreflect.MessageDescriptor) bool {
	return m.FullName().Parent() == "google.protobuf"
}

// checkScalar says what is wrong with a scalar (or well-known type) value.
func checkScalar(fd protoreflect.FieldDescriptor, raw json.RawMessage) string {
	var s string
	isString := len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil
	switch fd.Kind() {
	case protoreflect.StringKind:
		if !isString {
			return "must be a string"
		}
		if loneSurrogate(raw) {
			return `must be Unicode text: it has half of a UTF-16 surrogate pair (such as "\ud800") without the other half`
		}
	case protoreflect.BoolKind:
		if string(raw) != "true" && string(raw) != "false" {
			return "must be true or false"
		}
	case protoreflect.Uint32Kind, protoreflect.Int32Kind, protoreflect.Uint64Kind, protoreflect.Int64Kind:
		text := string(raw)
		if isString { // protojson takes 64-bit integers as strings too
			text = s
		}
		if _, desc := parseInteger(fd.Kind(), text); desc != "" {
			return desc
		}
	case protoreflect.MessageKind:
		return checkWellKnown(fd.Message(), raw)
	}
	return ""
}

// Hints that say what a well-known type looks like in JSON (the proto3
// JSON mapping, https://protobuf.dev/programming-guides/json/).
const (
	timestampHint = "must be a time in RFC 3339 form, in UTC or with an offset, such as 2030-01-02T15:04:05Z"
	durationHint  = `must be a duration in seconds such as "3600s" (an hour) or "90.5s", from "-315576000000s" to "315576000000s"`
)

// checkWellKnown says what is wrong with the JSON of a well-known type,
// decoding it as the gateway would.
func checkWellKnown(md protoreflect.MessageDescriptor, raw json.RawMessage) string {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil || gatewayUnmarshal.Unmarshal(raw, mt.New().Interface()) == nil {
		return ""
	}
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		return timestampHint
	case "google.protobuf.Duration":
		return durationHint
	}
	return "is not a valid " + string(md.Name())
}

// loneSurrogate reports whether a JSON string's \u escapes hold half of a
// UTF-16 surrogate pair without the other half: no Unicode character (RFC
// 8259 §8.2), which protojson refuses and encoding/json quietly makes
// U+FFFD.
func loneSurrogate(raw []byte) bool {
	escaped := func(i int) (rune, bool) { // the \u escape (four hex digits) at raw[i:]
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r, ok := escaped(i)
		if !ok {
			i++ // another escape, \\ among them: skip what it escapes
			continue
		}
		i += 5
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r >= 0xdc00 { // a second half first
			return true
		}
		if lo, ok := escaped(i + 1); !ok || lo < 0xdc00 || lo > 0xdfff {
			return true
		}
		i += 6
	}
	return false
}
