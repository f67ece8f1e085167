package extauthz

import (
	"context"
	"net"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/peer"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// What the check's caller says of its client is recorded only when it is
// shaped as it must be (attacker probe: any text as the address, a
// request id with a newline).
func TestOriginTakesOnlyWellFormedValues(t *testing.T) {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("192.0.2.9"), Port: 4000}})
	check := func(addr, requestID string) *authv3.CheckRequest {
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: addr}}}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Headers: map[string]string{
				"x-request-id": requestID, "user-agent": "curl/8",
				"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}}}
	}
	for _, tc := range []struct {
		name            string
		addr, requestID string
		want            domain.Origin
	}{
		{"well formed", "203.0.113.5", "req-1", domain.Origin{ClientAddress: "203.0.113.5", UserAgent: "curl/8", RequestID: "req-1", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}},
		{"not an address", "10.9.8.7 (admin VPN)", "req\nforged", domain.Origin{ClientAddress: "192.0.2.9", UserAgent: "curl/8", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}},
		{"none", "", "", domain.Origin{ClientAddress: "192.0.2.9", UserAgent: "curl/8", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}},
	} {
		if got := origin(ctx, check(tc.addr, tc.requestID)); got != tc.want {
			t.Errorf("%s: origin = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
