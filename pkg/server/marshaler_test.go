package server

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestGatewayMarshalerErrorBodies checks that a remembered error body is the one the
// marshaler would write for that very status, never another's, and that
// the memory stays bounded.
func TestGatewayMarshalerErrorBodies(t *testing.T) {
	inner := &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{EmitDefaultValues: true}}
	e := newGatewayMarshaler(inner)
	statusOf := func(code codes.Code, msg, reason string) *status.Status {
		st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "tokenservice", Metadata: map[string]string{"scope": "tokens:read"}})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	unmarshal := func(body []byte) *status.Status {
		t.Helper()
		var got = status.New(codes.OK, "").Proto()
		if err := protojson.Unmarshal(body, got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		return status.FromProto(got)
	}
	a := statusOf(codes.Unauthenticated, "invalid or missing credentials", "INVALID_CREDENTIALS")
	first, err := e.Marshal(a.Proto())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := e.Marshal(a.Proto())
	if !bytes.Equal(first, again) || len(e.bodies) != 1 {
		t.Fatalf("the same status twice: %s and %s, %d bodies kept", first, again, len(e.bodies))
	}
	// A status differing in any part gets its own body.
	for _, other := range []*status.Status{
		statusOf(codes.PermissionDenied, "invalid or missing credentials", "INVALID_CREDENTIALS"),
		statusOf(codes.Unauthenticated, "invalid or missing credentials!", "INVALID_CREDENTIALS"),
		statusOf(codes.Unauthenticated, "invalid or missing credentials", "INSUFFICIENT_SCOPE"),
		status.New(codes.Unauthenticated, "invalid or missing credentials"),
	} {
		body, err := e.Marshal(other.Proto())
		if err != nil {
			t.Fatal(err)
		}
		got := unmarshal(body)
		if got.Code() != other.Code() || got.Message() != other.Message() || fmt.Sprint(got.Details()) != fmt.Sprint(other.Details()) {
			t.Errorf("%v: written as %s", other.Proto(), body)
		}
	}
	if got := unmarshal(first); got.Message() != a.Message() {
		t.Errorf("the first body became %s", first)
	}
	// Bounded: many different errors keep at most maxErrorBodies, and a
	// large one is not kept.
	for i := range 3 * maxErrorBodies {
		if _, err := e.Marshal(status.New(codes.NotFound, fmt.Sprintf("token %d not found", i)).Proto()); err != nil {
			t.Fatal(err)
		}
		if len(e.bodies) > maxErrorBodies {
			t.Fatalf("%d bodies kept", len(e.bodies))
		}
	}
	clear(e.bodies)
	if _, err := e.Marshal(status.New(codes.InvalidArgument, strings.Repeat("x", maxErrorBodyBytes)).Proto()); err != nil {
		t.Fatal(err)
	}
	if len(e.bodies) != 0 {
		t.Errorf("a body over %d bytes was kept", maxErrorBodyBytes)
	}
	// Anything else is the marshaler's.
	body, err := e.Marshal(wrapperspb.String("hello"))
	if err != nil || string(body) != `"hello"` || len(e.bodies) != 0 {
		t.Errorf("a message not a status: %s, %v, %d bodies", body, err, len(e.bodies))
	}
}

// TestGatewayMarshalerDecoder checks that a body restChecks decoded is
// taken as it is, and that anything else is decoded from its bytes.
func TestGatewayMarshalerDecoder(t *testing.T) {
	m := newGatewayMarshaler(&runtime.JSONPb{UnmarshalOptions: gatewayUnmarshal})
	decoded := wrapperspb.String("from restChecks")
	body := decodedBody{Reader: bytes.NewReader([]byte(`"from the bytes"`)), msg: decoded}

	var same wrapperspb.StringValue
	if err := m.NewDecoder(body).Decode(&same); err != nil || same.GetValue() != "from restChecks" {
		t.Errorf("the decoded message: got %q, %v", same.GetValue(), err)
	}
	// Another type than the one decoded: the bytes are decoded.
	body.Reader = bytes.NewReader([]byte(`"from the bytes"`))
	var other wrapperspb.BytesValue
	if err := m.NewDecoder(body).Decode(&other); err == nil {
		t.Errorf("a BytesValue from a JSON string that is not base64: %q, no error", other.GetValue())
	}
	var plain wrapperspb.StringValue
	if err := m.NewDecoder(strings.NewReader(`"plain"`)).Decode(&plain); err != nil || plain.GetValue() != "plain" {
		t.Errorf("a plain body: got %q, %v", plain.GetValue(), err)
	}
	if decoded.GetValue() != "from restChecks" {
		t.Errorf("the decoded message was changed: %q", decoded.GetValue())
	}
}
