package server

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tokenservice/tokenservice/pkg/calllog"
)

// directConn is the gateway's way to the services: a
// grpc.ClientConnInterface that calls a method's handler in the caller's
// goroutine, through the same unary interceptor chain gRPC clients get. It
// replaces an in-process channel (grpchan's inprocgrpc), which ran each call
// on a new goroutine (whose stack then grew through the interceptors) behind
// a channel, and cloned the request and the response: the gateway made both
// for this one call, so the copies bought nothing. The server side sees
// what a gRPC server would: the metadata as incoming, an "inproc" peer, a
// transport stream for SetHeader and SetTrailer, and the same stats handler
// calls (tracing); the HTTP request's deadline and cancellation, and its
// context values (its span among them) stay, as context.WithTimeout needs
// to find its parent's cancellation without a goroutine.
type directConn struct {
	methods     map[string]directMethod // by full method name
	interceptor grpc.UnaryServerInterceptor
	stats       stats.Handler // nil: none
}

type directMethod struct {
	impl    any
	handler func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error)
}

var _ grpc.ClientConnInterface = (*directConn)(nil)

func newDirectConn(interceptor grpc.UnaryServerInterceptor, sh stats.Handler) *directConn {
	return &directConn{methods: map[string]directMethod{}, interceptor: interceptor, stats: sh}
}

// register adds desc's unary methods, served by impl.
func (c *directConn) register(desc *grpc.ServiceDesc, impl any) {
	for _, m := range desc.Methods {
		c.methods["/"+desc.ServiceName+"/"+m.MethodName] = directMethod{impl: impl, handler: m.Handler}
	}
}

// inprocAddr is the peer address the services see for a REST call; its
// network, calllog.InprocNetwork, tells calllog.ClientAddr to take the
// client's address from the X-Forwarded-For the gateway appends.
type inprocAddr struct{}

func (inprocAddr) Network() string { return calllog.InprocNetwork }
func (inprocAddr) String() string  { return "0" }

var inprocPeer = &peer.Peer{Addr: inprocAddr{}}

// Invoke implements grpc.ClientConnInterface.
func (c *directConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.methods[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	in, ok := args.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "request %T is not a proto message", args)
	}
	out, ok := reply.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "response %T is not a proto message", reply)
	}

	sctx := ctx
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		sctx = metadata.NewIncomingContext(sctx, md)
	}
	sctx = peer.NewContext(sctx, inprocPeer)
	stream := &transportStream{method: method}
	sctx = grpc.NewContextWithServerTransportStream(sctx, stream)
	if c.stats != nil {
		sctx = c.stats.TagRPC(sctx, &stats.RPCTagInfo{FullMethodName: method})
		c.stats.HandleRPC(sctx, &stats.Begin{BeginTime: time.Now()})
	}

	// The handler decodes into a message of its own: the gateway's is
	// merged in (a message the size of a request; no serialization).
	dec := func(v any) error {
		proto.Merge(v.(proto.Message), in)
		return nil
	}
	resp, err := m.handler(m.impl, sctx, dec, c.interceptor)
	if err == nil {
		if r, ok := resp.(proto.Message); ok && r != nil {
			proto.Merge(out, r)
		} else {
			err = status.Errorf(codes.Internal, "handler returned neither error nor response message")
		}
	}
	if c.stats != nil {
		c.stats.HandleRPC(sctx, &stats.End{EndTime: time.Now(), Error: err})
	}
	header, trailer := stream.result()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = trailer
		}
	}
	return err
}

// NewStream implements grpc.ClientConnInterface: the services have no
// streaming methods, and the gateway calls none.
func (c *directConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "streaming is not served through the gateway")
}

// transportStream collects what a handler sets with grpc.SetHeader,
// grpc.SendHeader and grpc.SetTrailer.
type transportStream struct {
	method string
	mu     sync.Mutex
	header metadata.MD
	trail  metadata.MD
}

func (s *transportStream) Method() string { return s.method }

func (s *transportStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header = join(s.header, md)
	return nil
}

func (s *transportStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *transportStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trail = join(s.trail, md)
	return nil
}

// join adds md's values to into's, as metadata.Join does, without
// copying into first: the stream's own MD, handed out by result once the
// handler has returned (a handler does not set headers after it returns:
// grpc's own transport refuses them then).
func join(into, md metadata.MD) metadata.MD {
	if into == nil {
		into = make(metadata.MD, len(md))
	}
	for k, v := range md {
		into[k] = append(into[k], v...)
	}
	return into
}

func (s *transportStream) result() (header, trailer metadata.MD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.header == nil {
		s.header = metadata.MD{}
	}
	if s.trail == nil {
		s.trail = metadata.MD{}
	}
	return s.header, s.trail
}
