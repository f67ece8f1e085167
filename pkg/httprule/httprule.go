// Package httprule reads the REST routes of the API from the proto: each
// method's google.api.http annotation as a Route that matches request paths.
// The server checks requests and answers 404 and 405 with it; gatewayclient
// builds requests with it; so neither copies the routes by hand.
package httprule

import (
	"net/http"
	"net/url"
	"sort"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Route is one method's HTTP rule.
type Route struct {
	Verb     string // GET, POST, ...
	Template string // /v1alpha1/tokens/{token_id}, /v1alpha1/users/{user_id}:changePassword
	// Body is "*" (the request's fields not in the path), a field name, or
	// "" (no body: the fields not in the path come from the query).
	Body   string
	Method protoreflect.MethodDescriptor

	segments   []string // the template's, a variable as "{field}"
	suffix     string   // the custom verb, with its ":"
	fullMethod string
}

// FullMethod returns the gRPC name of the route's method: /pkg.Service/Method.
func (r Route) FullMethod() string { return r.fullMethod }

// Table is the routes of a set of services.
type Table []Route

// ForServices returns the routes of the named services' methods, as
// registered in protoregistry.GlobalFiles; a method without an HTTP rule has none.
func ForServices(names ...string) Table {
	var t Table
	for _, name := range names {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			continue
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			continue
		}
		for i := range sd.Methods().Len() {
			m := sd.Methods().Get(i)
			rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
			if r, ok := fromRule(rule); ok {
				r.Method = m
				r.fullMethod = "/" + string(sd.FullName()) + "/" + string(m.Name())
				t = append(t, r)
			}
		}
	}
	return t
}

// All returns the routes of every service in protoregistry.GlobalFiles.
func All() Table {
	var names []string
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			names = append(names, string(f.Services().Get(i).FullName()))
		}
		return true
	})
	return ForServices(names...)
}

func fromRule(rule *annotations.HttpRule) (Route, bool) {
	r := Route{Body: rule.GetBody()}
	switch p := rule.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		r.Verb, r.Template = http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		r.Verb, r.Template = http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		r.Verb, r.Template = http.MethodPut, p.Put
	case *annotations.HttpRule_Patch:
		r.Verb, r.Template = http.MethodPatch, p.Patch
	case *annotations.HttpRule_Delete:
		r.Verb, r.Template = http.MethodDelete, p.Delete
	default:
		return Route{}, false
	}
	path := r.Template
	// A custom verb follows the last segment, outside any variable (AIP-136).
	if i := strings.LastIndexByte(path, ':'); i > strings.LastIndexByte(path, '}') {
		path, r.suffix = path[:i], path[i:]
	}
	for _, seg := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if strings.HasPrefix(seg, "{") {
			name, _, _ := strings.Cut(strings.Trim(seg, "{}"), "=")
			seg = "{" + name + "}"
		}
		r.segments = append(r.segments, seg)
	}
	return r, true
}

// Match reports whether path (escaped, as on the wire) is the route's, and
// returns its variables, unescaped, by field name.
func (r Route) Match(escapedPath string) (map[string]string, bool) {
	path, ok := strings.CutSuffix(escapedPath, r.suffix)
	if !ok {
		return nil, false
	}
	// Segment by segment, without splitting the path: every request is
	// matched against the routes in turn.
	rest := strings.TrimPrefix(path, "/")
	var vars map[string]string
	for i, seg := range r.segments {
		part, tail, more := strings.Cut(rest, "/")
		if more != (i < len(r.segments)-1) {
			return nil, false // fewer or more segments than the template
		}
		rest = tail
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			v, err := url.PathUnescape(part)
			if err != nil || v == "" {
				return nil, false
			}
			if vars == nil {
				vars = map[string]string{}
			}
			vars[strings.TrimSuffix(name, "}")] = v
			continue
		}
		if part != seg {
			return nil, false
		}
	}
	return vars, true
}

// Find returns the route for a request's method and escaped path, with its
// variables. If none matches, allowed lists the methods the path does have
// (empty: the path is unknown).
func (t Table) Find(verb, escapedPath string) (route Route, vars map[string]string, found bool, allowed []string) {
	for _, r := range t {
		v, ok := r.Match(escapedPath)
		if !ok {
			continue
		}
		if r.Verb == verb {
			return r, v, true, nil
		}
		allowed = append(allowed, r.Verb)
	}
	sort.Strings(allowed)
	return Route{}, nil, false, allowed
}

// CustomMethods returns the routes with a custom method (AIP-136) whose
// path escapedPath has, but for the custom method its last segment names:
// for /v1alpha1/tokens/abc:rotat, the route of /v1alpha1/tokens/{token_id}:rotate.
// None if the last segment names no custom method (has no ':').
func (t Table) CustomMethods(escapedPath string) []Route {
	i := strings.LastIndexByte(escapedPath, ':')
	if i < 0 || i < strings.LastIndexByte(escapedPath, '/') {
		return nil
	}
	var out []Route
	for _, r := range t {
		if r.suffix == "" {
			continue
		}
		if _, ok := r.Match(escapedPath[:i] + r.suffix); ok {
			out = append(out, r)
		}
	}
	return out
}

// CustomMethod returns the route's custom method with its ':' (":rotate"),
// or "" if it has none.
func (r Route) CustomMethod() string { return r.suffix }

// ByMethod returns the route of a method, by its full name.
func (t Table) ByMethod(fullMethod string) (Route, bool) {
	for _, r := range t {
		if r.FullMethod() == fullMethod {
			return r, true
		}
	}
	return Route{}, false
}
