// Package gatewayclient calls the API's REST gateway as a gRPC client would
// call the service: Conn is a grpc.ClientConnInterface that turns each call,
// by full method name, into the HTTP request the method's google.api.http
// annotation describes, and the answer back into the response message or a
// gRPC status error. Generated clients (pb.NewTokenServiceClient(conn)) then
// run unchanged over REST, so one test, benchmark or script covers both
// transports, and the routes come from the proto, not from a copy.
package gatewayclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // error details in Status bodies resolve
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tokenservice/tokenservice/pkg/httprule"
)

// Conn calls methods over REST. It is safe for concurrent use.
type Conn struct {
	base   string
	client *http.Client
	routes httprule.Table
	check  func(*http.Request, *http.Response, []byte)
}

var _ grpc.ClientConnInterface = (*Conn)(nil)

// Option configures a Conn.
type Option func(*Conn)

// WithCheck has check see every exchange, with the response body read.
func WithCheck(check func(req *http.Request, resp *http.Response, body []byte)) Option {
	return func(c *Conn) { c.check = check }
}

// New returns a Conn to the gateway at baseURL (http://host:port) for every
// method in the registered proto files that has an HTTP rule.
func New(baseURL string, client *http.Client, opts ...Option) *Conn {
	c := &Conn{base: strings.TrimSuffix(baseURL, "/"), client: client, routes: httprule.All()}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Route returns the HTTP method, the path with its query, and the JSON body
// (nil: none) that call fullMethod with req over REST: the fields in the
// rule's path go there, then the body's, and the rest into the query.
func (c *Conn) Route(fullMethod string, req proto.Message) (verb, pathAndQuery string, body []byte, err error) {
	r, ok := c.routes.ByMethod(fullMethod)
	if !ok {
		return "", "", nil, status.Errorf(codes.Unimplemented, "%s has no HTTP rule", fullMethod)
	}
	rest := proto.Clone(req)
	path, err := expand(r.Template, rest.ProtoReflect())
	if err != nil {
		return "", "", nil, err
	}
	if r.Body == "*" {
		body, err = protojson.Marshal(rest)
		return r.Verb, path, body, err
	}
	if r.Body != "" {
		fd := rest.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(r.Body))
		if fd == nil || fd.Message() == nil {
			return "", "", nil, fmt.Errorf("%s: body field %q is not a message field", fullMethod, r.Body)
		}
		if body, err = protojson.Marshal(rest.ProtoReflect().Get(fd).Message().Interface()); err != nil {
			return "", "", nil, err
		}
		rest.ProtoReflect().Clear(fd)
	}
	q, err := query(rest)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return r.Verb, path, body, err
}

// expand fills the template's {field} variables from m, clearing each field
// it uses, so what is left goes into the body or the query.
func expand(template string, m protoreflect.Message) (string, error) {
	var b strings.Builder
	for {
		open := strings.IndexByte(template, '{')
		if open < 0 {
			b.WriteString(template)
			return b.String(), nil
		}
		end := strings.IndexByte(template[open:], '}')
		if end < 0 {
			return "", fmt.Errorf("unclosed variable in %q", template)
		}
		b.WriteString(template[:open])
		name, _, _ := strings.Cut(template[open+1:open+end], "=")
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return "", fmt.Errorf("path variable %q is no field of %s", name, m.Descriptor().FullName())
		}
		b.WriteString(url.PathEscape(fmt.Sprint(m.Get(fd).Interface())))
		m.Clear(fd)
		template = template[open+end+1:]
	}
}

// query encodes the set fields of m as query parameters named as in JSON
// (lowerCamelCase), as the gateway reads them.
func query(m proto.Message) (url.Values, error) {
	q := url.Values{}
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	// Numbers as protojson wrote them: as float64s, 1000000 would print 1e+06.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil {
		return nil, err
	}
	var add func(key string, v any)
	add = func(key string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, sub := range v {
				add(key+"."+k, sub)
			}
		case []any:
			for _, e := range v {
				add(key, e)
			}
		case string:
			q.Add(key, v)
		case bool:
			q.Add(key, strconv.FormatBool(v))
		default:
			q.Add(key, fmt.Sprint(v))
		}
	}
	for k, v := range fields {
		add(k, v)
	}
	return q, nil
}

// NewRequest returns the HTTP request that calls fullMethod with req, with
// the outgoing metadata of ctx as headers (authorization, x-request-id).
func (c *Conn) NewRequest(ctx context.Context, fullMethod string, req proto.Message) (*http.Request, error) {
	verb, path, body, err := c.Route(fullMethod, req)
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(ctx, verb, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	for k, vs := range md {
		for _, v := range vs {
			hreq.Header.Add(k, v)
		}
	}
	return hreq, nil
}

// Invoke implements grpc.ClientConnInterface: it calls method over REST and
// fills reply from a 200 answer, or returns the error answer's Status. The
// grpc.Header call option gets the response headers.
func (c *Conn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	hreq, err := c.NewRequest(ctx, method, args.(proto.Message))
	if err != nil {
		return err
	}
	resp, err := c.client.Do(hreq)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	if c.check != nil {
		c.check(hreq, resp, body)
	}
	for _, o := range opts {
		if h, ok := o.(grpc.HeaderCallOption); ok {
			md := metadata.MD{}
			for k, vs := range resp.Header {
				md.Append(k, vs...)
			}
			*h.HeaderAddr = md
		}
	}
	if resp.StatusCode == http.StatusOK {
		return protojson.Unmarshal(body, reply.(proto.Message))
	}
	var st spb.Status
	if err := protojson.Unmarshal(body, &st); err != nil {
		return status.Errorf(codes.Unknown, "HTTP %d without a Status body: %s", resp.StatusCode, body)
	}
	return status.ErrorProto(&st)
}

// NewStream implements grpc.ClientConnInterface: the gateway serves no streams.
func (c *Conn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "gatewayclient: streams are not served over REST")
}
