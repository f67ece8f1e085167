package server

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

var testSpan = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
})

const testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"

// TestCallsCarryTheirOrigin: the handler of a call finds where it came
// from in its context (for the audit trail): over gRPC the peer and the
// user-agent; over REST (the gateway's in-process peer) the client's
// address the gateway appended to X-Forwarded-For and the User-Agent it
// passes as grpcgateway-user-agent, not a "user-agent" the client could
// slip into the metadata; the request id and the trace id either way.
func TestCallsCarryTheirOrigin(t *testing.T) {
	for _, c := range []struct {
		name string
		peer *peer.Peer
		md   metadata.MD
		want domain.Origin
	}{
		{"grpc", &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5555}},
			metadata.Pairs("user-agent", "tool/1.0 grpc-go/1.70.0", "x-request-id", "req-1"),
			domain.Origin{ClientAddress: "10.1.2.3", UserAgent: "tool/1.0 grpc-go/1.70.0", RequestID: "req-1", TraceID: testTraceID}},
		{"rest", inprocPeer,
			metadata.Pairs("x-forwarded-for", "192.0.2.9, 198.51.100.7", gatewayUserAgent, "curl/8.5.0", "user-agent", "forged", "x-request-id", "req-2"),
			domain.Origin{ClientAddress: "198.51.100.7", UserAgent: "curl/8.5.0", RequestID: "req-2", TraceID: testTraceID}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := trace.ContextWithSpanContext(peer.NewContext(metadata.NewIncomingContext(context.Background(), c.md), c.peer), testSpan)
			ctx = grpc.NewContextWithServerTransportStream(ctx, &transportStream{})
			var got domain.Origin
			_, err := requestIDInterceptor(ctx, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
				got = domain.OriginFromContext(ctx)
				return nil, nil
			})
			if err != nil || got != c.want {
				t.Errorf("origin %+v (%v), want %+v", got, err, c.want)
			}
		})
	}
}

// TestHTTPRequestsCarryTheirOrigin: the plain HTTP endpoints' (OAuth's)
// handlers find where the request came from in its context: its peer (not
// X-Forwarded-For), User-Agent, request id and trace id.
func TestHTTPRequestsCarryTheirOrigin(t *testing.T) {
	var got domain.Origin
	h := withRequestID(withOrigin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = domain.OriginFromContext(r.Context())
	})))
	r := httptest.NewRequest("POST", "/oauth2/token", nil)
	r.RemoteAddr = "203.0.113.5:40000"
	r.Header.Set("User-Agent", "oauth-client/2")
	r.Header.Set("X-Request-Id", "req-3")
	r.Header.Set("X-Forwarded-For", "10.0.0.1")
	h.ServeHTTP(httptest.NewRecorder(), r.WithContext(trace.ContextWithSpanContext(r.Context(), testSpan)))
	if want := (domain.Origin{ClientAddress: "203.0.113.5", UserAgent: "oauth-client/2", RequestID: "req-3", TraceID: testTraceID}); got != want {
		t.Errorf("origin %+v, want %+v", got, want)
	}
}
