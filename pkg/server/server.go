// Package server serves the API's gRPC services: over gRPC (with reflection
// and health) on one listener, and on the other through the REST gateway,
// which reaches them in-process through the same interceptors, beside the
// JWKS, the OpenAPI spec, Swagger UI and health endpoints.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"buf.build/go/protovalidate"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"

	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/httprule"
)

// Config holds the server's settings.
type Config struct {
	HTTPAddr string // e.g. ":8080"; "127.0.0.1:0" picks a free port
	// HTTPListener, if set, is served instead of listening on HTTPAddr: a
	// caller that must know the port of "127.0.0.1:0" before the server is
	// built (for the issuer) listens itself. The server closes it.
	HTTPListener    net.Listener
	GRPCAddr        string
	Issuer          string // the access tokens' iss, and the base of jwks_uri
	ShutdownTimeout time.Duration
	// TLS, if set, serves both REST and gRPC over TLS.
	TLS *tls.Config
	// JWKSMaxAge is the JWKS's Cache-Control max-age (0: 5 minutes).
	JWKSMaxAge time.Duration
	// CORSOrigins lists the browser origins allowed to call the REST API;
	// empty (the default) sends no CORS headers, so browsers refuse cross-origin calls.
	CORSOrigins []string
	// MetricsAddr, if set, serves /metrics on a listener of its own, off
	// the public port; MetricsOnHTTP serves it on HTTPAddr too.
	MetricsAddr   string
	MetricsOnHTTP bool
	// Limits; zero values take the defaults below.
	Limits Limits
}

// Limits bound what one client can hold: slow or idle connections, large
// messages, many streams.
type Limits struct {
	ReadHeaderTimeout    time.Duration // default 10s: slow headers (slowloris)
	ReadTimeout          time.Duration // default 30s: the whole request, body included
	WriteTimeout         time.Duration // default 30s: writing the response
	IdleTimeout          time.Duration // default 2m: a keep-alive connection between requests
	MaxConcurrentStreams uint32        // default 1000: gRPC streams per connection
	MaxRecvMsgBytes      int           // default 1 MiB: one gRPC request message
	// GRPCConnectionTimeout (default 10s) bounds a new gRPC connection's
	// handshake, TLS and HTTP/2 preface included: a connection that says
	// nothing is closed after it (grpc-go's own default is 120s).
	GRPCConnectionTimeout time.Duration
	// GRPCMaxConnectionIdle (default 2m) closes a gRPC connection that has
	// had no call for that long (grpc-go's own default: never).
	GRPCMaxConnectionIdle time.Duration
	// MaxHTTPConns, MaxGRPCConns and MaxMetricsConns cap the connections
	// each listener keeps open at once (default: shares of the process's
	// open-file limit, see defaultConnCaps), so that a flood of idle
	// connections on one port cannot use up the descriptors the others need.
	MaxHTTPConns, MaxGRPCConns, MaxMetricsConns int
}

func (l Limits) withDefaults() Limits {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.ReadHeaderTimeout, 10*time.Second)
	def(&l.ReadTimeout, 30*time.Second)
	def(&l.WriteTimeout, 30*time.Second)
	def(&l.IdleTimeout, 2*time.Minute)
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = 1000
	}
	if l.MaxRecvMsgBytes <= 0 {
		l.MaxRecvMsgBytes = 1 << 20
	}
	def(&l.GRPCConnectionTimeout, 10*time.Second)
	def(&l.GRPCMaxConnectionIdle, 2*time.Minute)
	caps := defaultConnCaps(processFileLimit())
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt(&l.MaxHTTPConns, caps.http)
	defInt(&l.MaxGRPCConns, caps.grpc)
	defInt(&l.MaxMetricsConns, caps.metrics)
	return l
}

// Service is one gRPC service, served over gRPC and REST.
type Service struct {
	Desc *grpc.ServiceDesc
	// Impl implements Desc.HandlerType.
	Impl any
	// Authenticate authenticates each call of the service before its
	// handler runs, by the method's full name ("/pkg.Service/Method"): it
	// returns the context the handler gets (with the caller in it) or the
	// error the client gets. Required: a service must say how its calls
	// are authenticated, so none is open by omission.
	Authenticate func(ctx context.Context, fullMethod string) (context.Context, error)
	// RegisterGateway registers the service's REST routes on mux, calling
	// through conn (see Gateway); nil for a service served over gRPC only
	// (Envoy's external authorization).
	RegisterGateway func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error
}

// Gateway returns a Service's RegisterGateway made of the generated
// Register<Service>HandlerClient and New<Service>Client.
func Gateway[C any](register func(context.Context, *runtime.ServeMux, C) error, newClient func(grpc.ClientConnInterface) C) func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error {
	return func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
		return register(ctx, mux, newClient(conn))
	}
}

// NoAuthentication is the Authenticate of a service that authenticates
// nothing at the door (Envoy's external authorization, whose caller is the
// proxy and which checks the credential of the request it describes).
func NoAuthentication(ctx context.Context, _ string) (context.Context, error) { return ctx, nil }

// Deps are what the server serves.
type Deps struct {
	Logger   *slog.Logger
	Services []Service
	// Started reports whether the services may be called: until it does,
	// every method of every service answers UNAVAILABLE (ErrStarting), so a
	// process can listen before its database answers.
	Started func() bool
	// Ready reports whether requests can be served now (started, database
	// answering), for /readyz and the gRPC health service.
	Ready func(context.Context) error
	// JWKS returns the public signing keys as a JWK set, or nil while they
	// are not loaded.
	JWKS func() []byte
	// Metrics, if set, serves the metrics (see Config.MetricsAddr), and
	// ObserveRPC returns the interceptor that counts and times the RPCs
	// coming by a transport ("grpc", "rest").
	Metrics    http.Handler
	ObserveRPC func(transport string) grpc.UnaryServerInterceptor
	// TracerProvider, if set, traces each HTTP request and each RPC (over
	// gRPC, and through the gateway), continuing a client's W3C trace.
	TracerProvider trace.TracerProvider
	// Routes are further HTTP endpoints (the OAuth ones, the discovery
	// documents), by http.ServeMux pattern, served beside the API.
	Routes map[string]http.Handler
	// ResponseHeaders are the (lower-case) response metadata keys the
	// services set that REST clients get as headers of the same name
	// (Tokenservice-Token-Expiration), where the gateway would otherwise
	// prefix them with Grpc-Metadata-.
	ResponseHeaders []string
}

// ErrStarting answers calls (and readiness checks) before the services are started.
var ErrStarting = &domain.Error{Kind: domain.KindUnavailable, Reason: domain.ReasonStarting,
	Message: "the service is starting: its database is not reachable yet; retry in a second"}

// Server serves gRPC and HTTP until its context ends.
type Server struct {
	Deps
	cfg        Config
	limits     Limits
	grpcServer *grpc.Server
	health     *health.Server
	httpServer *http.Server
	grpcLis    net.Listener
	httpLis    net.Listener
	// metricsServer and metricsLis are nil without a MetricsAddr.
	metricsServer *http.Server
	metricsLis    net.Listener
}

// New builds the server around the services and opens its listeners.
func New(ctx context.Context, cfg Config, deps Deps) (*Server, error) {
	interceptors, err := interceptorChain(deps)
	if err != nil {
		return nil, err
	}
	limits := cfg.Limits.withDefaults()
	if msg := capsOverFileLimit(limits, cfg.MetricsAddr != "" && deps.Metrics != nil, processFileLimit()); msg != "" {
		deps.Logger.Warn(msg)
	}
	s := &Server{Deps: deps, cfg: cfg, limits: limits, health: health.NewServer()}
	s.grpcServer = grpc.NewServer(s.grpcOptions(interceptors("grpc"))...)
	gateway, table, err := s.registerServices(ctx, s.inProcessChannel(interceptors("rest")))
	if err != nil {
		return nil, err
	}
	s.registerHealth()
	reflection.Register(s.grpcServer)
	s.httpServer = s.newHTTPServer(gateway, table)
	s.metricsServer = s.newMetricsServer()
	if err := s.openListeners(); err != nil {
		return nil, err
	}
	return s, nil
}

// interceptorChain returns the interceptor chain (unaryChain) for calls
// coming by a transport ("grpc", "rest"): the same on both, but for the
// metrics' transport label. It refuses a service without an Authenticate.
func interceptorChain(deps Deps) (func(transport string) grpc.UnaryServerInterceptor, error) {
	validator, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("creating validator: %w", err)
	}
	gated := map[string]bool{}
	authenticators := map[string]func(context.Context, string) (context.Context, error){}
	for _, svc := range deps.Services {
		if svc.Authenticate == nil {
			return nil, fmt.Errorf("service %s has no Authenticate: every service says how its calls are authenticated", svc.Desc.ServiceName)
		}
		gated[svc.Desc.ServiceName] = true
		authenticators[svc.Desc.ServiceName] = svc.Authenticate
	}
	authn := authentication(authenticators)
	gate := startingGate(gated, deps.Started)
	return func(transport string) grpc.UnaryServerInterceptor {
		var observe grpc.UnaryServerInterceptor
		if deps.ObserveRPC != nil {
			observe = deps.ObserveRPC(transport)
		}
		return unaryChain(deps.Logger, validator, gate, authn, observe)
	}, nil
}

// grpcOptions are the gRPC server's options: the interceptor chain, the
// limits and keepalive policy, and TLS and tracing when configured.
func (s *Server) grpcOptions(interceptors grpc.UnaryServerInterceptor) []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.UnaryInterceptor(interceptors),
		grpc.MaxRecvMsgSize(s.limits.MaxRecvMsgBytes),
		grpc.MaxConcurrentStreams(s.limits.MaxConcurrentStreams),
		grpc.ConnectionTimeout(s.limits.GRPCConnectionTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: s.limits.GRPCMaxConnectionIdle}),
		// Clients may ping every 10s (grpc-go's minimum client keepalive
		// time), with or without calls in flight; faster pingers are sent
		// GOAWAY. Pings alone do not keep a connection from being idle.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if s.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.TLS)))
	}
	if s.TracerProvider != nil {
		opts = append(opts, grpc.StatsHandler(rpcTracing(s.TracerProvider, trace.SpanKindServer)))
	}
	return opts
}

// inProcessChannel is the channel the gateway calls the services through
// (directConn): no network hop, no goroutine, and the same interceptor
// chain as gRPC clients get.
func (s *Server) inProcessChannel(interceptors grpc.UnaryServerInterceptor) *directConn {
	var sh stats.Handler
	if s.TracerProvider != nil {
		sh = rpcTracing(s.TracerProvider, trace.SpanKindInternal)
	}
	return newDirectConn(interceptors, sh)
}

// registerServices registers each service with the gRPC server and, if it
// has a RegisterGateway, with channel and the REST gateway; it returns the
// gateway and the services' REST routes.
func (s *Server) registerServices(ctx context.Context, channel *directConn) (*runtime.ServeMux, httprule.Table, error) {
	var names []string
	for _, svc := range s.Services {
		names = append(names, svc.Desc.ServiceName)
	}
	table := httprule.ForServices(names...)
	gateway := newGateway(table, s.ResponseHeaders)
	for _, svc := range s.Services {
		s.grpcServer.RegisterService(svc.Desc, svc.Impl)
		if svc.RegisterGateway == nil {
			continue
		}
		channel.register(svc.Desc, svc.Impl)
		if err := svc.RegisterGateway(ctx, gateway, channel); err != nil {
			return nil, nil, fmt.Errorf("registering %s with the gateway: %w", svc.Desc.ServiceName, err)
		}
	}
	return gateway, table, nil
}

// registerHealth registers the gRPC health service. Every service is known
// to it from the start, not serving until watchHealth finds it ready: a
// check made before Serve's first look gets NOT_SERVING, not NotFound.
func (s *Server) registerHealth() {
	healthpb.RegisterHealthServer(s.grpcServer, s.health)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	for _, svc := range s.Services {
		s.health.SetServingStatus(svc.Desc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	}
}

// newHTTPServer builds the HTTP server of the routes (REST through gateway
// among them), with CORS, tracing when configured, and the limits.
func (s *Server) newHTTPServer(gateway *runtime.ServeMux, table httprule.Table) *http.Server {
	handler := withCORS(s.cfg.CORSOrigins, s.ResponseHeaders, s.routes(gateway, table))
	if s.TracerProvider != nil {
		handler = httpTracing(s.TracerProvider, handler)
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: s.limits.ReadHeaderTimeout,
		ReadTimeout:       s.limits.ReadTimeout,
		WriteTimeout:      s.limits.WriteTimeout,
		IdleTimeout:       s.limits.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn),
	}
}

// newMetricsServer builds the server of /metrics on a port of its own, or
// returns nil without a MetricsAddr (or metrics).
func (s *Server) newMetricsServer() *http.Server {
	if s.cfg.MetricsAddr == "" || s.Metrics == nil {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.Metrics)
	return &http.Server{Handler: mux, ReadHeaderTimeout: s.limits.ReadHeaderTimeout, ReadTimeout: s.limits.ReadTimeout,
		WriteTimeout: s.limits.WriteTimeout, IdleTimeout: s.limits.IdleTimeout, ErrorLog: s.httpServer.ErrorLog}
}

// openListeners opens the gRPC, HTTP (over TLS if configured) and, with a
// metrics server, metrics listeners, each capped at its connection limit
// (or takes Config.HTTPListener for HTTP). On failure it closes those it
// opened.
func (s *Server) openListeners() error {
	var err error
	if s.grpcLis, err = listen(s.cfg.GRPCAddr, s.limits.MaxGRPCConns); err != nil {
		return fmt.Errorf("listening for gRPC: %w", err)
	}
	if s.cfg.HTTPListener != nil {
		s.httpLis = netutil.LimitListener(s.cfg.HTTPListener, s.limits.MaxHTTPConns)
	} else if s.httpLis, err = listen(s.cfg.HTTPAddr, s.limits.MaxHTTPConns); err != nil {
		s.grpcLis.Close()
		return fmt.Errorf("listening for HTTP: %w", err)
	}
	if s.cfg.TLS != nil {
		httpTLS := s.cfg.TLS.Clone()
		httpTLS.NextProtos = []string{"h2", "http/1.1"}
		s.httpLis = tls.NewListener(s.httpLis, httpTLS)
	}
	if s.metricsServer != nil {
		if s.metricsLis, err = listen(s.cfg.MetricsAddr, s.limits.MaxMetricsConns); err != nil {
			s.Close()
			return fmt.Errorf("listening for metrics: %w", err)
		}
	}
	return nil
}

// MetricsAddr returns the address /metrics listens on, or "" if none.
func (s *Server) MetricsAddr() string {
	if s.metricsLis == nil {
		return ""
	}
	return s.metricsLis.Addr().String()
}

// HTTPAddr returns the address the REST API listens on.
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

// GRPCAddr returns the address the gRPC API listens on.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// Close closes the listeners of a server that will not Serve.
func (s *Server) Close() error {
	err := errors.Join(s.grpcLis.Close(), s.httpLis.Close())
	if s.metricsLis != nil {
		err = errors.Join(err, s.metricsLis.Close())
	}
	return err
}

// Handler returns the HTTP handler: REST, docs, spec, JWKS and health.
func (s *Server) Handler() http.Handler { return s.httpServer.Handler }

// Serve serves until ctx ends, then stops accepting new requests and lets
// in-flight ones finish, for at most ShutdownTimeout.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() { errc <- s.grpcServer.Serve(s.grpcLis) }()
	serveHTTP := func(srv *http.Server, lis net.Listener) {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}
	go serveHTTP(s.httpServer, s.httpLis)
	if s.metricsServer != nil {
		go serveHTTP(s.metricsServer, s.metricsLis)
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.watchHealth(ctx) })
	s.Logger.InfoContext(ctx, "serving", "http", s.HTTPAddr(), "grpc", s.GRPCAddr(), "metrics", s.MetricsAddr(),
		slog.Group("max_connections", "http", s.limits.MaxHTTPConns, "grpc", s.limits.MaxGRPCConns, "metrics", s.limits.MaxMetricsConns))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.Logger.Info("shutting down")
	s.health.Shutdown()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	// Both listeners stop taking new requests at once; then in-flight
	// requests on either may finish, until the shutdown timeout.
	var httpErr error
	wg.Go(func() { httpErr = s.httpServer.Shutdown(shutdownCtx) })
	if s.metricsServer != nil {
		// Scrapes are cut short: the process is going.
		wg.Go(func() { s.metricsServer.Close() })
	}
	stopped := make(chan struct{})
	go func() { s.grpcServer.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-shutdownCtx.Done():
		s.grpcServer.Stop()
	}
	wg.Wait()
	return errors.Join(serveErr, httpErr)
}

// watchHealth keeps the gRPC health status in step with the database.
func (s *Server) watchHealth(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		st := healthpb.HealthCheckResponse_SERVING
		pingCtx, cancel := context.WithTimeout(ctx, time.Second)
		if s.Ready(pingCtx) != nil {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		cancel()
		s.health.SetServingStatus("", st)
		for _, svc := range s.Services {
			s.health.SetServingStatus(svc.Desc.ServiceName, st)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
