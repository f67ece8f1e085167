package server

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// kindCodes maps each domain error kind to its gRPC code; the gateway maps
// those to HTTP statuses (400, 401, 403, 404, 409, 429, 503, 500).
var kindCodes = map[domain.Kind]codes.Code{
	domain.KindInternal:          codes.Internal,
	domain.KindInvalid:           codes.InvalidArgument,
	domain.KindNotFound:          codes.NotFound,
	domain.KindConflict:          codes.AlreadyExists,
	domain.KindUnauthenticated:   codes.Unauthenticated,
	domain.KindPermissionDenied:  codes.PermissionDenied,
	domain.KindUnavailable:       codes.Unavailable,
	domain.KindResourceExhausted: codes.ResourceExhausted,
	domain.KindAborted:           codes.Aborted,
}

// toStatus is the one place an error becomes what the client sees. Domain
// errors keep their client-safe message, with machine-readable details:
// google.rpc.BadRequest naming the fields at fault, google.rpc.ErrorInfo with
// a reason a client may branch on, google.rpc.RetryInfo with when to retry.
// Anything else becomes "internal error" for the client and a log line, with
// the request id, for the operator.
func toStatus(ctx context.Context, logger *slog.Logger, method string, err error) error {
	if err == domain.ErrUnauthenticated {
		return unauthenticated // every refused credential: built once
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status: from grpc itself
	}
	if ctx.Err() != nil && domain.KindOf(err) == domain.KindUnavailable {
		// The client's own deadline (grpc-timeout) ran out, or it went
		// away: the database did not fail, and the answer must not say
		// it did, nor log or count it as a server error (the error-ratio
		// alert counts DeadlineExceeded). The client has stopped waiting.
		return errClientGone
	}
	return newStatus(ctx, logger, method, err)
}

// errClientGone answers a call whose client stopped waiting first.
var errClientGone = status.Error(codes.Canceled, "the request's deadline passed, or its client went away, before it was answered")

// unauthenticated is domain.ErrUnauthenticated's status, the answer to
// every bad or missing credential: the same for all, so made once rather
// than on each refusal (a flood of them is the cheapest attack on a token
// service, and they should cost it as little as they can). The status is
// never changed once made (the gateway and grpc copy what they send).
var unauthenticated = newStatus(context.Background(), slog.New(slog.DiscardHandler), "", domain.ErrUnauthenticated)

// newStatus builds the status of a domain error (or of any other, as
// "internal error").
func newStatus(ctx context.Context, logger *slog.Logger, method string, err error) error {
	kind := domain.KindOf(err)
	code := kindCodes[kind]
	st := status.New(code, domain.MessageOf(err))
	var details []protoadapt.MessageV1
	if fields := domain.FieldsOf(err); len(fields) > 0 && kind == domain.KindInvalid {
		br := &errdetails.BadRequest{}
		for _, f := range fields {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f.Field, Description: f.Description})
		}
		details = append(details, br)
	}
	if reason := domain.ReasonOf(err); reason != "" && kind != domain.KindInternal {
		details = append(details, &errdetails.ErrorInfo{Reason: reason, Domain: errorDomain, Metadata: domain.MetadataOf(err)})
	}
	wait := domain.RetryAfterOf(err)
	if wait == 0 && kind == domain.KindUnavailable {
		wait = unavailableRetryAfter
	}
	if wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		_ = grpc.SetHeader(ctx, metadata.Pairs(retryAfterHeader, strconv.Itoa(secs)))
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(secs) * time.Second)})
	}
	switch kind {
	case domain.KindInternal, domain.KindUnavailable:
		logger.ErrorContext(ctx, "request failed", "method", method, "code", code.String(),
			"request_id", requestIDFrom(ctx), "error", err.Error())
	}
	if len(details) > 0 {
		if withDetails, err := st.WithDetails(details...); err == nil {
			st = withDetails
		}
	}
	return st.Err()
}

// unavailableRetryAfter is when a client may retry an UNAVAILABLE answer
// that names no time of its own (the database dropped or did not answer,
// a cluster node failed over): RFC 9110 §10.2.3's Retry-After on the 503.
const unavailableRetryAfter = time.Second

// errorDomain is the ErrorInfo domain of this service's reasons (AIP-193).
const errorDomain = "tokenservice"

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
