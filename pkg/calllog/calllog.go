// Package calllog says where a request came from, for its log line and for
// the limits on password attempts: the client's address, by one rule over
// gRPC, REST and the plain HTTP endpoints, and for a password attempt the
// username tried (never the password).
//
// The rule for the address: the transport's peer, never a header a client
// may send. Over REST the peer the services see is the in-process gateway
// (network InprocNetwork), which appends the HTTP client's address last to
// X-Forwarded-For (grpc-gateway's annotateContext), so that last entry is
// taken: a client-supplied X-Forwarded-For only adds entries before it.
// Behind a reverse proxy every client has the proxy's address.
package calllog

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// InprocNetwork is the network of the peer address the services see for a
// call the gateway makes in-process: it says the client's address is the
// last X-Forwarded-For entry.
const InprocNetwork = "inproc"

// ClientAddr returns the IP address of the client of the gRPC call in ctx,
// a REST call's included (see the package doc), or "" if ctx has no peer.
func ClientAddr(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if p.Addr.Network() == InprocNetwork {
		if xff := metadata.ValueFromIncomingContext(ctx, "x-forwarded-for"); len(xff) > 0 {
			last := xff[len(xff)-1]
			return strings.TrimSpace(last[strings.LastIndexByte(last, ',')+1:])
		}
		return ""
	}
	return host(p.Addr.String())
}

// RequestAddr returns the IP address of an HTTP request's client: its peer.
// X-Forwarded-For, which any client may send, is not read.
func RequestAddr(r *http.Request) string { return host(r.RemoteAddr) }

// host returns the host of a host:port address, or the address if it has
// no port.
func host(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// attempt is where a call's handler leaves the username its password
// attempt tried, for the call's log line.
type attempt struct {
	mu       sync.Mutex
	username string
}

type attemptKey struct{}

// WithAttempt returns ctx with room for the username a password attempt
// tries (SetUsername), and a function that returns it ("" if none was set).
// The logging interceptor makes room only for calls that carry a password,
// so others pay nothing.
func WithAttempt(ctx context.Context) (context.Context, func() string) {
	a := &attempt{}
	return context.WithValue(ctx, attemptKey{}, a), func() string {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.username
	}
}

// SetUsername records the username a password attempt tries, for the
// call's log line; nothing if ctx has no room (WithAttempt).
func SetUsername(ctx context.Context, username string) {
	if a, ok := ctx.Value(attemptKey{}).(*attempt); ok {
		a.mu.Lock()
		a.username = username
		a.mu.Unlock()
	}
}

// ValidRequestID reports whether a request id a client sent may be used
// (logged, recorded) as it is: 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-',
// so that a client cannot forge log lines or audit fields through it.
func ValidRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := range len(id) {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
