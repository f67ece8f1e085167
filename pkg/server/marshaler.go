package server

import (
	"io"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/httpbody"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// gatewayMarshaler is the gateway's marshaler (protojson) with three
// savings on the REST path: a request body restChecks has decoded
// (decodedBody) is taken as decoded, not decoded again; a message is
// encoded straight into the bytes returned (runtime.JSONPb encodes it,
// then copies it into a bytes.Buffer); and the JSON of the refusals it
// writes is remembered.
//
// A refusal (a bad credential above all) is written again and again, and
// its JSON was the largest part of a refused REST call: its details are
// google.protobuf.Any, which protojson resolves, decodes and encodes anew
// each time. Only refusals whose text the server writes (codes
// rememberedCodes) are kept, not 400s and 404s that quote what the client
// sent; the key is the status's deterministic wire form, so a body is
// reused only for the same code, message and details; at most
// maxErrorBodies bodies of at most maxErrorBodyBytes are kept, and the lot
// is dropped when full.
type gatewayMarshaler struct {
	runtime.Marshaler                          // runtime.HTTPBodyMarshaler over the JSONPb
	encode            protojson.MarshalOptions // the JSONPb's
	mu                sync.RWMutex
	bodies            map[string][]byte
}

const (
	maxErrorBodies    = 256
	maxErrorBodyBytes = 2048
)

// rememberedCodes are the codes of the refusals whose bodies are kept.
var rememberedCodes = map[codes.Code]bool{
	codes.Unauthenticated:   true,
	codes.PermissionDenied:  true,
	codes.ResourceExhausted: true,
	codes.Unavailable:       true,
}

func newGatewayMarshaler(j *runtime.JSONPb) *gatewayMarshaler {
	return &gatewayMarshaler{Marshaler: &runtime.HTTPBodyMarshaler{Marshaler: j}, encode: j.MarshalOptions, bodies: map[string][]byte{}}
}

// Marshal implements runtime.Marshaler. The gateway only writes the bytes
// it gets, so one body may be handed out to many.
func (m *gatewayMarshaler) Marshal(v any) ([]byte, error) {
	st, ok := v.(*spb.Status)
	if !ok || !rememberedCodes[codes.Code(st.GetCode())] {
		return m.marshal(v)
	}
	wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(st)
	if err != nil || len(wire) > maxErrorBodyBytes {
		return m.marshal(v)
	}
	key := string(wire)
	m.mu.RLock()
	body, ok := m.bodies[key]
	m.mu.RUnlock()
	if ok {
		return body, nil
	}
	body, err = m.marshal(v)
	if err != nil || len(body) > maxErrorBodyBytes {
		return body, err
	}
	m.mu.Lock()
	if len(m.bodies) >= maxErrorBodies {
		clear(m.bodies)
	}
	m.bodies[key] = body
	m.mu.Unlock()
	return body, nil
}

// marshal encodes a message with protojson, as runtime.JSONPb does but
// without its copy; anything else (an HttpBody, a value that is not a
// message) is the wrapped marshaler's.
func (m *gatewayMarshaler) marshal(v any) ([]byte, error) {
	if p, ok := v.(proto.Message); ok {
		if _, isBody := p.(*httpbody.HttpBody); !isBody {
			return m.encode.Marshal(p)
		}
	}
	return m.Marshaler.Marshal(v)
}

// NewDecoder implements runtime.Marshaler: a decodedBody's message is
// merged into the gateway's (of the same type: the route's request), and
// anything else is decoded as the gateway's marshaler decodes it.
func (m *gatewayMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	body, ok := r.(decodedBody)
	if !ok {
		return m.Marshaler.NewDecoder(r)
	}
	return runtime.DecoderFunc(func(v any) error {
		if dst, ok := v.(proto.Message); ok && dst.ProtoReflect().Descriptor() == body.msg.ProtoReflect().Descriptor() {
			proto.Merge(dst, body.msg)
			return nil
		}
		return m.Marshaler.NewDecoder(body.Reader).Decode(v)
	})
}
