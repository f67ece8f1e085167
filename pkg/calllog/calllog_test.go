package calllog_test

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/tokenservice/tokenservice/pkg/calllog"
)

type inproc struct{}

func (inproc) Network() string { return calllog.InprocNetwork }
func (inproc) String() string  { return "0" }

// TestClientAddr checks the one rule: the transport's peer; through the
// in-process gateway, the last X-Forwarded-For entry (the gateway's),
// never one a client wrote.
func TestClientAddr(t *testing.T) {
	tcp := func(ip string) *peer.Peer { return &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 5000}} }
	cases := []struct {
		name string
		p    *peer.Peer
		xff  []string
		want string
	}{
		{"gRPC peer", tcp("192.0.2.1"), nil, "192.0.2.1"},
		{"gRPC peer, IPv6", tcp("2001:db8::1"), nil, "2001:db8::1"},
		{"gRPC peer with a header it wrote", tcp("192.0.2.1"), []string{"198.51.100.1"}, "192.0.2.1"},
		{"REST", &peer.Peer{Addr: inproc{}}, []string{"203.0.113.9"}, "203.0.113.9"},
		{"REST, the client's header first", &peer.Peer{Addr: inproc{}}, []string{"198.51.100.1, 203.0.113.9"}, "203.0.113.9"},
		{"REST, the client's header as another value", &peer.Peer{Addr: inproc{}}, []string{"198.51.100.1", "203.0.113.9"}, "203.0.113.9"},
		{"REST without the gateway's entry", &peer.Peer{Addr: inproc{}}, nil, ""},
		{"no peer", nil, []string{"198.51.100.1"}, ""},
	}
	for _, tc := range cases {
		ctx := context.Background()
		if tc.p != nil {
			ctx = peer.NewContext(ctx, tc.p)
		}
		if tc.xff != nil {
			md := metadata.MD{"x-forwarded-for": tc.xff}
			ctx = metadata.NewIncomingContext(ctx, md)
		}
		if got := calllog.ClientAddr(ctx); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}

	r := httptest.NewRequest("POST", "/oauth2/token", nil)
	r.RemoteAddr = "[2001:db8::2]:4000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := calllog.RequestAddr(r); got != "2001:db8::2" {
		t.Errorf("RequestAddr: %q, want the peer's 2001:db8::2", got)
	}
}

// TestSetUsername checks that a username reaches the call's log line only
// where the logging interceptor made room for it.
func TestSetUsername(t *testing.T) {
	calllog.SetUsername(context.Background(), "nobody") // no room: nothing, no panic
	ctx, username := calllog.WithAttempt(context.Background())
	if got := username(); got != "" {
		t.Errorf("before SetUsername: %q", got)
	}
	calllog.SetUsername(ctx, "lena")
	if got := username(); got != "lena" {
		t.Errorf("username %q, want lena", got)
	}
}
