package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/httprule"
)

// TestGatewayMarshalerErrorBodies checks that a remembered error body is
// the one the marshaler would write for that very status, never another's,
// that only refusals the server words are kept, and that the memory stays
// bounded.
func TestGatewayMarshalerErrorBodies(t *testing.T) {
	inner := &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{EmitDefaultValues: true}}
	m := newGatewayMarshaler(inner)
	statusOf := func(code codes.Code, msg, reason string) *status.Status {
		st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "tokenservice",
			Metadata: map[string]string{"scope": "tokens:read", "method": "GetToken", "other": "x"}})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	written := func(st *status.Status) []byte {
		t.Helper()
		body, err := m.Marshal(st.Proto())
		if err != nil {
			t.Fatal(err)
		}
		got := &spb.Status{}
		if err := protojson.Unmarshal(body, got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if diff := cmp.Diff(st.Proto(), got, protocmp.Transform()); diff != "" {
			t.Errorf("%v written as %s (-want +got):\n%s", st.Proto(), body, diff)
		}
		return body
	}
	a := statusOf(codes.Unauthenticated, "invalid or missing credentials", "INVALID_CREDENTIALS")
	first := written(a)
	for range 20 { // three metadata entries: one key however the map iterates
		if again := written(a); !bytes.Equal(first, again) {
			t.Fatalf("the same status twice: %s and %s", first, again)
		}
	}
	if len(m.bodies) != 1 {
		t.Fatalf("%d bodies kept for one status", len(m.bodies))
	}
	// A status differing in any part gets its own body.
	written(statusOf(codes.PermissionDenied, "invalid or missing credentials", "INVALID_CREDENTIALS"))
	written(statusOf(codes.Unauthenticated, "invalid or missing credentials!", "INVALID_CREDENTIALS"))
	written(statusOf(codes.Unauthenticated, "invalid or missing credentials", "INSUFFICIENT_SCOPE"))
	written(status.New(codes.Unauthenticated, "invalid or missing credentials"))
	if len(m.bodies) != 5 {
		t.Errorf("%d bodies kept for five statuses", len(m.bodies))
	}
	// What quotes the client (404s, 400s) is not kept; nor a body over
	// maxErrorBodyBytes, however small its wire form.
	clear(m.bodies)
	written(status.New(codes.NotFound, "no such path: /v1alpha1/x"))
	written(status.New(codes.InvalidArgument, "notes: is not a field"))
	written(status.New(codes.PermissionDenied, strings.Repeat("\x01", maxErrorBodyBytes/4)))
	if len(m.bodies) != 0 {
		t.Errorf("%d bodies kept, want none", len(m.bodies))
	}
	// Bounded, and safe from many goroutines at once (go test -race).
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range maxErrorBodies {
				written(status.New(codes.PermissionDenied, fmt.Sprintf("caller %d may not %d", g, i)))
				m.mu.RLock()
				n := len(m.bodies)
				m.mu.RUnlock()
				if n > maxErrorBodies {
					t.Errorf("%d bodies kept", n)
				}
			}
		})
	}
	wg.Wait()
	// Anything else is the marshaler's.
	body, err := m.Marshal(wrapperspb.String("hello"))
	if err != nil || string(body) != `"hello"` {
		t.Errorf("a message not a status: %s, %v", body, err)
	}
}

// TestGatewayMarshalerDecoder checks that a body restChecks decoded is
// taken as it is, and that anything else is decoded from its bytes.
func TestGatewayMarshalerDecoder(t *testing.T) {
	m := newGatewayMarshaler(&runtime.JSONPb{UnmarshalOptions: gatewayUnmarshal})
	decoded := wrapperspb.String("from restChecks")
	body := decodedBody{Reader: bytes.NewReader([]byte(`"aGVsbG8="`)), msg: decoded}

	var same wrapperspb.StringValue
	if err := m.NewDecoder(body).Decode(&same); err != nil || same.GetValue() != "from restChecks" {
		t.Errorf("the decoded message: got %q, %v", same.GetValue(), err)
	}
	// Another type than the one decoded: the bytes are decoded.
	var other wrapperspb.BytesValue
	if err := m.NewDecoder(body).Decode(&other); err != nil || string(other.GetValue()) != "hello" {
		t.Errorf("a BytesValue: got %q, %v; want the bytes' hello", other.GetValue(), err)
	}
	var plain wrapperspb.StringValue
	if err := m.NewDecoder(strings.NewReader(`"plain"`)).Decode(&plain); err != nil || plain.GetValue() != "plain" {
		t.Errorf("a plain body: got %q, %v", plain.GetValue(), err)
	}
	if decoded.GetValue() != "from restChecks" {
		t.Errorf("the decoded message was changed: %q", decoded.GetValue())
	}
}

// TestGatewayTakesTheDecodedBody checks, through the gateway's generated
// handler, that the service gets the message restChecks decoded: a body
// whose bytes say otherwise shows which one the gateway used.
func TestGatewayTakesTheDecodedBody(t *testing.T) {
	mux := newGateway(httprule.All(), nil)
	conn := &recordingConn{}
	if err := pb.RegisterTokenServiceHandlerClient(context.Background(), mux, pb.NewTokenServiceClient(conn)); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1alpha1/access-tokens", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Body = decodedBody{Reader: bytes.NewReader([]byte(`{"token":"from the bytes"}`)), msg: &pb.GetAccessTokenRequest{Token: "from restChecks"}}
	mux.ServeHTTP(httptest.NewRecorder(), req)
	got, ok := conn.req.(*pb.GetAccessTokenRequest)
	if !ok || got.GetToken() != "from restChecks" {
		t.Errorf("the service got %v, want the decoded message", conn.req)
	}
}

// recordingConn is a grpc.ClientConnInterface that keeps the request it
// is given and answers with an empty response.
type recordingConn struct{ req any }

func (c *recordingConn) Invoke(_ context.Context, _ string, args, _ any, _ ...grpc.CallOption) error {
	c.req = args
	return nil
}

func (c *recordingConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "no streams")
}

// TestGatewayMarshalerWritesWhatJSONPbWrites checks that encoding a
// message without runtime.JSONPb's copy changes no byte of what clients
// get, and that what is not a plain message is still the JSONPb's.
func TestGatewayMarshalerWritesWhatJSONPbWrites(t *testing.T) {
	j := &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{EmitDefaultValues: true}}
	reference := &runtime.HTTPBodyMarshaler{Marshaler: j}
	m := newGatewayMarshaler(j)
	for _, v := range []any{
		&pb.Token{Id: "abc", Note: "ci", Scopes: []string{"tokens:read"}, CreateTime: timestamppb.New(time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC))},
		&pb.GetAccessTokenResponse{},
		status.New(codes.NotFound, "token not found").Proto(),
		&httpbody.HttpBody{ContentType: "text/plain", Data: []byte("raw")},
		map[string]int{"not": 1},
	} {
		want, wantErr := reference.Marshal(v)
		got, err := m.Marshal(v)
		if !bytes.Equal(got, want) || (err == nil) != (wantErr == nil) {
			t.Errorf("%T: %s, %v; the JSONPb writes %s, %v", v, got, err, want, wantErr)
		}
	}
}
