package server

import (
	"bytes"
	"io"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// gatewayMarshaler is the gateway's marshaler (protojson), with two
// savings on the REST path.
//
// Request bodies restChecks has decoded already (decodedBody) are taken
// as decoded, not decoded a second time.
//
// The JSON of the errors it writes (google.rpc.Status) is remembered: the
// same refusal, a bad credential
// above all, is written again and again, and its JSON (the details are
// google.protobuf.Any, which protojson resolves, decodes and encodes anew
// each time) was the largest part of a refused REST call. The key is the
// status's wire form, so a body is reused only for the same code, message
// and details; at most maxEntries bodies of at most maxBodyBytes are kept,
// and the lot is dropped when full, so varied errors cannot grow it.
type gatewayMarshaler struct {
	runtime.Marshaler
	mu     sync.RWMutex
	bodies map[string][]byte
}

const (
	maxErrorBodies    = 256
	maxErrorBodyBytes = 2048
)

func newGatewayMarshaler(m runtime.Marshaler) *gatewayMarshaler {
	return &gatewayMarshaler{Marshaler: m, bodies: map[string][]byte{}}
}

// Marshal implements runtime.Marshaler. The gateway only writes the bytes
// it gets, so one body may be handed out to many.
func (e *gatewayMarshaler) Marshal(v any) ([]byte, error) {
	st, ok := v.(*spb.Status)
	if !ok {
		return e.Marshaler.Marshal(v)
	}
	wire, err := proto.Marshal(st)
	if err != nil || len(wire) > maxErrorBodyBytes {
		return e.Marshaler.Marshal(v)
	}
	key := string(wire)
	e.mu.RLock()
	body, ok := e.bodies[key]
	e.mu.RUnlock()
	if ok {
		return body, nil
	}
	body, err = e.Marshaler.Marshal(v)
	if err != nil || len(body) > maxErrorBodyBytes {
		return body, err
	}
	e.mu.Lock()
	if len(e.bodies) >= maxErrorBodies {
		clear(e.bodies)
	}
	e.bodies[key] = body
	e.mu.Unlock()
	return body, nil
}

// NewDecoder implements runtime.Marshaler: a decodedBody's message is
// merged into the gateway's (of the same type: the route's request), and
// anything else is decoded as the gateway's marshaler decodes it.
func (e *gatewayMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	body, ok := r.(decodedBody)
	if !ok {
		return e.Marshaler.NewDecoder(r)
	}
	return runtime.DecoderFunc(func(v any) error {
		if dst, ok := v.(proto.Message); ok && dst.ProtoReflect().Descriptor() == body.msg.ProtoReflect().Descriptor() {
			proto.Merge(dst, body.msg)
			return nil
		}
		return e.Marshaler.NewDecoder(body.Reader).Decode(v)
	})
}

// decodedBody is a request body with the message restChecks decoded from
// it, for gatewayMarshaler.NewDecoder.
type decodedBody struct {
	*bytes.Reader
	msg proto.Message
}

func (decodedBody) Close() error { return nil }
