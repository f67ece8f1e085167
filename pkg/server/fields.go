package server

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

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

// unknownField says a body field is unknown and what the message has.
func unknownField(msg protoreflect.MessageDescriptor, vars map[string]string, key string) string {
	names := jsonNames(msg, vars, "")
	return fmt.Sprintf("is not a field of this request%s; the fields are %s", didYouMean(names, key), strings.Join(names, ", "))
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
