package server

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"buf.build/go/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

// unaryChain is the one interceptor chain, outermost first, that every call
// passes, over gRPC and over REST (the gateway's directConn runs it too):
// metrics (observe, if not nil: it sees the status the client gets, a panic's
// included), panics to errors, request id, logging, error mapping, the
// starting gate, authentication, validation.
func unaryChain(logger *slog.Logger, validator protovalidate.Validator, gate, authn, observe grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	if observe == nil {
		observe = func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(ctx, req)
		}
	}
	return chain(
		observe,
		recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
			logger.ErrorContext(ctx, "panic", "request_id", requestIDFrom(ctx), "panic", p, "stack", string(debug.Stack()))
			return status.Error(codes.Internal, "internal error")
		})),
		requestIDInterceptor,
		logCalls(logger),
		errorInterceptor(logger),
		gate,
		authn,
		validation(validator),
	)
}

// authentication authenticates each call by its service's Authenticate
// (Service), found by the call's full method name. Of the services the
// server adds itself, the health service is open; any other call is refused,
// so a service registered some other way is never open by omission.
func authentication(authenticators map[string]func(context.Context, string) (context.Context, error)) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		service := serviceOf(info.FullMethod)
		switch authenticate := authenticators[service]; {
		case authenticate != nil:
			var err error
			if ctx, err = authenticate(ctx, info.FullMethod); err != nil {
				return nil, err
			}
		case service != healthpb.Health_ServiceDesc.ServiceName:
			return nil, domain.ErrUnauthenticated
		}
		return handler(ctx, req)
	}
}

// startingGate answers every method of the gated services with ErrStarting
// until started reports true; other services (health, reflection) pass.
func startingGate(gated map[string]bool, started func() bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !started() && gated[serviceOf(info.FullMethod)] {
			return nil, ErrStarting
		}
		return handler(ctx, req)
	}
}

// serviceOf returns the service of a full method name, "/pkg.Service/Method".
func serviceOf(fullMethod string) string {
	service, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return service
}

// chain composes interceptors, the first outermost.
func chain(interceptors ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		next := handler
		for i := len(interceptors) - 1; i >= 0; i-- {
			ic, inner := interceptors[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, inner) }
		}
		return next(ctx, req)
	}
}

type requestIDKey struct{}

// requestIDHeader carries the request id: taken from the client when well
// formed, else made up, and always sent back.
const requestIDHeader = "x-request-id"

// requestIDHTTPHeader is its name over HTTP, in canonical form: a header
// set or read by another spelling is canonicalized on each call.
const requestIDHTTPHeader = "X-Request-Id"

// validRequestID reports whether a client's request id is used as it is
// (calllog.ValidRequestID); anything else is replaced.
func validRequestID(id string) bool { return calllog.ValidRequestID(id) }

// requestIDInterceptor takes or makes the call's request id, sends it
// back, and puts it in the context with where the call came from
// (domain.Origin, for the audit trail), worked out only if asked.
func requestIDInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	id := ""
	if v := metadata.ValueFromIncomingContext(ctx, requestIDHeader); len(v) == 1 && validRequestID(v[0]) {
		id = v[0]
	} else {
		id = newRequestID()
	}
	_ = grpc.SetHeader(ctx, metadata.MD{requestIDHeader: {id}})
	ctx = context.WithValue(ctx, requestIDKey{}, id)
	peerCtx := ctx
	return handler(domain.NewContextWithOriginFunc(ctx, func() domain.Origin { return callOrigin(peerCtx, id) }), req)
}

// gatewayUserAgent is the metadata key the gateway passes a REST client's
// User-Agent under (grpc-gateway's own name for it); a gRPC client's is
// "user-agent".
const gatewayUserAgent = "grpcgateway-user-agent"

// callOrigin returns where the call in ctx came from: the client's address
// (calllog.ClientAddr), its user agent (over REST the HTTP client's, which
// the gateway passes on), the request id and the trace id, if traced.
func callOrigin(ctx context.Context, requestID string) domain.Origin {
	o := domain.Origin{ClientAddress: calllog.ClientAddr(ctx), RequestID: requestID}
	key := "user-agent"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil && p.Addr.Network() == calllog.InprocNetwork {
		key = gatewayUserAgent
	}
	if ua := metadata.ValueFromIncomingContext(ctx, key); len(ua) > 0 {
		o.UserAgent = ua[0]
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		o.TraceID = sc.TraceID().String()
	}
	return o
}

// withOrigin puts where an HTTP request came from in its context, for the
// plain HTTP endpoints (OAuth's): as callOrigin, from the request itself.
// withRequestID has set its request id.
func withOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := domain.NewContextWithOriginFunc(r.Context(), func() domain.Origin {
			o := domain.Origin{ClientAddress: calllog.RequestAddr(r), UserAgent: r.Header.Get("User-Agent"), RequestID: r.Header.Get(requestIDHTTPHeader)}
			if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
				o.TraceID = sc.TraceID().String()
			}
			return o
		})
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func newRequestID() string { return rand.Text()[:16] }

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
