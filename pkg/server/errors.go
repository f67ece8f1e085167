package server

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// codes maps each domain error kind to its gRPC code; the gateway maps those
// to HTTP statuses (400, 401, 403, 404, 409, 429, 503, 500).
var kindCodes = map[domain.Kind]codes.Code{
	domain.KindInternal:          codes.Internal,
	domain.KindInvalid:           codes.InvalidArgument,
	domain.KindNotFound:          codes.NotFound,
	domain.KindConflict:          codes.AlreadyExists,
	domain.KindUnauthenticated:   codes.Unauthenticated,
	domain.KindPermissionDenied:  codes.PermissionDenied,
	domain.KindUnavailable:       codes.Unavailable,
	domain.KindResourceExhausted: codes.ResourceExhausted,
}

// toStatus is the one place an error becomes what the client sees. Domain
// errors keep their client-safe message; anything else becomes "internal
// error" for the client and a log line, with the request id, for the operator.
func toStatus(ctx context.Context, logger *slog.Logger, method string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err // already a status: from validation, or from grpc itself
	}
	kind := domain.KindOf(err)
	code := kindCodes[kind]
	if wait := domain.RetryAfterOf(err); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		_ = grpc.SetHeader(ctx, metadata.Pairs(retryAfterHeader, strconv.Itoa(secs)))
	}
	switch kind {
	case domain.KindInternal, domain.KindUnavailable:
		logger.ErrorContext(ctx, "request failed", "method", method, "code", code.String(),
			"request_id", requestIDFrom(ctx), "error", err.Error())
	}
	return status.Error(code, domain.MessageOf(err))
}

// retryAfterHeader carries, in whole seconds, when a refused client may retry;
// the gateway sends it as HTTP Retry-After.
const retryAfterHeader = "retry-after"

// errorInterceptor maps the errors of everything inside it to statuses.
func errorInterceptor(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			return nil, toStatus(ctx, logger, info.FullMethod, err)
		}
		return resp, nil
	}
}
