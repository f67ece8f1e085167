package server

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/rs/cors"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tokenservice/tokenservice"
	"github.com/tokenservice/tokenservice/pkg/bearer"
	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/httprule"
	"github.com/tokenservice/tokenservice/third_party/swaggerui"
)

// DefaultJWKSMaxAge is how long gateways may cache the JWKS when the
// configuration does not say.
const DefaultJWKSMaxAge = 5 * time.Minute

// MaxBodyBytes bounds a REST request body; larger bodies are refused with 400.
const MaxBodyBytes = 64 << 10

//go:embed docs
var docsFS embed.FS

// routes lists every HTTP route the service serves. Every response carries
// X-Request-Id; a path the service does not have gets the API's JSON 404.
func (s *Server) routes(gateway *runtime.ServeMux, table httprule.Table) http.Handler {
	api := restChecks{routes: table, gateway: gateway, logger: s.Logger}
	mux := http.NewServeMux()
	mux.Handle("/v1alpha1/", limitBody(api))
	mux.HandleFunc("/", api.notFound)
	mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
	for pattern, h := range s.Routes {
		mux.Handle(pattern, logRequests(s.Logger, withOrigin(h)))
	}
	mux.HandleFunc("GET /openapi.json", handleBytes("application/json", tokenservice.OpenAPISpec))
	mux.HandleFunc("GET /swagger.json", handleBytes("application/json", tokenservice.SwaggerSpec))
	mux.Handle("GET /docs/", docsHandler())
	mux.Handle("GET /docs", http.RedirectHandler("/docs/", http.StatusMovedPermanently))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeText(w, http.StatusOK, "ok\n") })
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	if s.cfg.MetricsOnHTTP && s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	return withRequestID(mux)
}

// loggedPath is the path a request's log line shows: under a route that
// takes a whole subtree (/forward-auth/, where Envoy asks with the client's
// own path after it), the route's, not the client's path, which may carry
// what a log must not.
func loggedPath(r *http.Request) string {
	if p := r.Pattern; strings.HasSuffix(p, "/") {
		if _, path, ok := strings.Cut(p, " "); ok {
			p = path
		}
		return p + "…"
	}
	return r.URL.Path
}

// logRequests logs each request h answers, as the interceptors log each
// call: one line, under the request id, with the client's address
// (calllog.RequestAddr), the status and the time taken. Nothing of the body
// or the Authorization header is logged.
func logRequests(logger *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		level := slog.LevelInfo
		if sw.status >= 500 {
			level = slog.LevelError
		}
		logger.Log(r.Context(), level, "finished request", "request_id", r.Header.Get(requestIDHTTPHeader),
			"client.address", calllog.RequestAddr(r), "http.method", r.Method, "http.path", loggedPath(r), "http.status", sw.status,
			"time_ms", float64(time.Since(start).Microseconds())/1000)
	})
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// withRequestID gives every request an id, the client's if well formed
// (X-Request-Id), and every response that id, whatever answers it: the
// gateway passes it on to the interceptors, which log under it.
func withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(requestIDHTTPHeader)
		if !validRequestID(id) {
			id = newRequestID()
			r.Header.Set(requestIDHTTPHeader, id)
		}
		w.Header().Set(requestIDHTTPHeader, id)
		h.ServeHTTP(w, r)
	})
}

// newGateway returns the grpc-gateway mux: protojson with unknown fields
// refused (a typo must not silently drop, say, an expiry), default values
// emitted but unset messages left out, the request id passed in (the HTTP
// layer has set it on the response already), and errors as errorHandler
// writes them. (The trace needs no passing: directConn hands the services
// the HTTP request's context.)
func newGateway(table httprule.Table, passHeaders []string) *runtime.ServeMux {
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newGatewayMarshaler(&runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitDefaultValues: true},
			UnmarshalOptions: gatewayUnmarshal,
		})),
		runtime.WithErrorHandler(errorHandler(table)),
		// A path variable may hold any byte, escaped: %2F stays in its
		// segment (grpc-httpjson-transcoding's rule, and httprule.Match's).
		runtime.WithUnescapingMode(runtime.UnescapingModeAllExceptReserved),
		// Only the headers the services read become metadata: the gateway
		// passes Authorization and sets X-Forwarded-For and -Host itself;
		// the others are the request id and the User-Agent (for the audit
		// trail, under grpc-gateway's own name for it); copying every
		// header (Grpc-Metadata-*, ...) cost each call for nothing.
		runtime.WithIncomingHeaderMatcher(func(key string) (string, bool) {
			if key == "User-Agent" { // canonical: the gateway canonicalizes first
				return gatewayUserAgent, true
			}
			return requestIDHeader, strings.EqualFold(key, requestIDHeader)
		}),
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			if key == retryAfterHeader || slices.Contains(passHeaders, key) {
				return textproto.CanonicalMIMEHeaderKey(key), true
			}
			if key == requestIDHeader {
				return "", false
			}
			return runtime.DefaultHeaderMatcher(key)
		}),
	)
}

// gatewayUnmarshal is how the gateway decodes request bodies: unknown
// fields refused.
var gatewayUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: false}

// errorHandler writes the JSON google.rpc.Status body as the gateway does,
// with the fields at fault named as REST clients spell them (JSON names), and
// with an RFC 6750 challenge on 401s.
func errorHandler(table httprule.Table) runtime.ErrorHandlerFunc {
	return func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
		if method, ok := runtime.RPCMethod(ctx); ok && status.Code(err) == codes.InvalidArgument {
			if route, ok := table.ByMethod(method); ok {
				err = withJSONFieldNames(err, route.Method.Input())
			}
		}
		switch status.Code(err) {
		case codes.Unauthenticated:
			w = challengeWriter{ResponseWriter: w, challenge: bearer.PasswordRefusal(r.Header.Get("Authorization"))}
		case codes.PermissionDenied:
			if scope, ok := insufficientScope(err); ok {
				// RFC 6750 §3.1.
				w = challengeWriter{ResponseWriter: w, challenge: bearer.InsufficientScope(bearer.Realm, scope)}
			}
		}
		runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
	}
}

// insufficientScope returns the scope an INSUFFICIENT_SCOPE error names.
func insufficientScope(err error) (string, bool) {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == domain.ReasonInsufficientScope {
			scope := info.GetMetadata()["scope"]
			return scope, domain.ValidScopeName(scope)
		}
	}
	return "", false
}

// challengeWriter sets WWW-Authenticate as the status is written: the
// gateway's default handler puts the error message there, which is no challenge.
type challengeWriter struct {
	http.ResponseWriter
	challenge string
}

func (w challengeWriter) WriteHeader(code int) {
	w.Header().Set("WWW-Authenticate", w.challenge)
	w.ResponseWriter.WriteHeader(code)
}

// withCORS answers cross-origin requests from the allowed origins only; with
// none it adds nothing.
func withCORS(origins, passHeaders []string, h http.Handler) http.Handler {
	if len(origins) == 0 {
		return h
	}
	exposed := []string{requestIDHTTPHeader, "Retry-After", "WWW-Authenticate"}
	for _, key := range passHeaders {
		exposed = append(exposed, textproto.CanonicalMIMEHeaderKey(key))
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodDelete},
		AllowedHeaders: []string{"Authorization", "Content-Type", requestIDHTTPHeader},
		ExposedHeaders: exposed,
		MaxAge:         600,
	}).Handler(h)
}

// limitBody bounds a body at MaxBodyBytes: reading more fails, and
// readJSONBody (bodydecode.go) answers 400 saying the body is too large.
func limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		h.ServeHTTP(w, r)
	})
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	jwks := s.JWKS()
	if jwks == nil {
		w.Header().Set("Retry-After", "1")
		writeText(w, http.StatusServiceUnavailable, "not ready: signing keys not loaded yet\n")
		return
	}
	maxAge := s.cfg.JWKSMaxAge
	if maxAge <= 0 {
		maxAge = DefaultJWKSMaxAge
	}
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(maxAge/time.Second)))
	handleBytes("application/json", jwks)(w, r)
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if err := s.Ready(r.Context()); err != nil {
		w.Header().Set("Retry-After", "1")
		writeText(w, http.StatusServiceUnavailable, "not ready: "+domain.MessageOf(err)+"\n")
		return
	}
	writeText(w, http.StatusOK, "ready\n")
}

func docsHandler() http.Handler {
	assets, _ := fs.Sub(swaggerui.Dist, "dist")
	pages, _ := fs.Sub(docsFS, "docs")
	mux := http.NewServeMux()
	mux.Handle("/docs/assets/", http.StripPrefix("/docs/assets/", http.FileServerFS(assets)))
	mux.Handle("/docs/", http.StripPrefix("/docs/", http.FileServerFS(pages)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
	})
}

func handleBytes(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Write(body)
	}
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	w.Write([]byte(body))
}
