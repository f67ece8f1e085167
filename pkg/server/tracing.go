package server

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/stats"

	"github.com/tokenservice/tokenservice/pkg/telemetry"
)

// httpTracing wraps h in a span per request, continuing the client's W3C
// trace (traceparent); health probes are not traced.
func httpTracing(tp trace.TracerProvider, h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "http",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(telemetry.Propagator),
		// Semantic conventions: "{method}" when the route is not known
		// (the gateway routes inside; paths carry IDs, too many names), and
		// "HTTP" for a method not in RFC 9110: the client chooses it.
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			switch r.Method {
			case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
				http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
				return r.Method
			}
			return "HTTP"
		}),
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/healthz" && r.URL.Path != "/readyz" }),
	)
}

// rpcTracing is otelgrpc's stats handler: a span per RPC, named after its
// method, continuing the caller's trace; health checks are not traced. The
// gateway's in-process calls are internal spans under the HTTP request's.
func rpcTracing(tp trace.TracerProvider, kind trace.SpanKind) stats.Handler {
	return otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(telemetry.Propagator),
		otelgrpc.WithSpanKind(kind),
		otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool {
			return !strings.HasPrefix(info.FullMethodName, "/grpc.health.v1.")
		}),
	)
}
