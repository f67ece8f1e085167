package server

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tokenservice/tokenservice/pkg/calllog"
)

// logCalls logs each call when it finishes, as one "finished call" line
// with the fields and levels of go-grpc-middleware's logging interceptor
// (protocol, grpc.component, grpc.service, grpc.method, grpc.method_type,
// peer.address, grpc.start_time, grpc.request.deadline, grpc.code,
// grpc.error, grpc.time_ms; the level by code from
// logging.DefaultServerCodeToLevel), led by the request id and the trace id,
// and naming the source: client.address, the client's IP address as
// calllog.ClientAddr has it (the HTTP client's for a REST call, whose
// transport peer is the in-process gateway), and for a password attempt
// user.name, the username tried.
//
// It is ours rather than that interceptor because that one builds, formats
// and merges (quadratically) its fields on every call, before it knows the
// line's level: a tenth of a REST call's CPU spent even at --log-level warn,
// where the lines of successful calls are dropped. This asks the logger
// first, and builds the line only when it will be written.
func logCalls(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		var username func() string
		if carriesPassword(ctx, req) {
			ctx, username = calllog.WithAttempt(ctx)
		}
		resp, err := handler(ctx, req)
		code := status.Code(err)
		level := slog.Level(logging.DefaultServerCodeToLevel(code))
		if !logger.Enabled(ctx, level) {
			return resp, err
		}
		service, method, _ := strings.Cut(strings.TrimPrefix(info.FullMethod, "/"), "/")
		attrs := make([]slog.Attr, 0, 16)
		attrs = append(attrs, slog.String("request_id", requestIDFrom(ctx)))
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
		}
		attrs = append(attrs,
			slog.String("protocol", "grpc"),
			slog.String("grpc.component", "server"),
			slog.String("grpc.service", service),
			slog.String("grpc.method", method),
			slog.String("grpc.method_type", "unary"),
		)
		client := calllog.ClientAddr(ctx)
		if p, ok := peer.FromContext(ctx); ok {
			addr := p.Addr.String()
			if p.Addr.Network() == calllog.InprocNetwork {
				addr = client // the gateway's peer, the HTTP client (it has no port)
			}
			attrs = append(attrs, slog.String("peer.address", addr))
		}
		attrs = append(attrs, slog.String("client.address", client))
		if username != nil {
			if name := username(); name != "" {
				attrs = append(attrs, slog.String("user.name", name))
			}
		}
		attrs = append(attrs, slog.String("grpc.start_time", start.Format(time.RFC3339)))
		if d, ok := ctx.Deadline(); ok {
			attrs = append(attrs, slog.String("grpc.request.deadline", d.Format(time.RFC3339)))
		}
		attrs = append(attrs, slog.String("grpc.code", code.String()))
		if err != nil {
			attrs = append(attrs, slog.String("grpc.error", err.Error()))
		}
		// Milliseconds with microseconds, as go-grpc-middleware writes
		// them (it goes through a float32: above 16 s its last digit may
		// differ from this).
		ms := float64(time.Since(start).Microseconds()) / 1000
		attrs = append(attrs, slog.String("grpc.time_ms", strconv.FormatFloat(ms, 'f', -1, 64)))
		logger.LogAttrs(ctx, level, "finished call", attrs...)
		return resp, err
	}
}

// carriesPassword reports whether a request carries a password to check
// (CreateToken's password, ChangePassword's old password): a password
// attempt, whose log line names the username tried. CreateUser's password
// is a new one, and names none.
func carriesPassword(ctx context.Context, req any) bool {
	// DeleteToken and RotateToken take a password as HTTP Basic credentials.
	if a := metadata.ValueFromIncomingContext(ctx, "authorization"); len(a) == 1 && len(a[0]) > 6 && strings.EqualFold(a[0][:6], "basic ") {
		return true
	}
	switch r := req.(type) {
	case interface{ GetOldPassword() string }:
		return r.GetOldPassword() != ""
	case interface {
		GetUsername() string
		GetPassword() string
	}:
		return r.GetPassword() != ""
	}
	return false
}
