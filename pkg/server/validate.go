package server

import (
	"context"
	"errors"
	"strings"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// validation checks each request against the proto's buf.validate rules.
// Unlike go-grpc-middleware's interceptor, it answers a violation as a
// domain error naming the fields (google.rpc.BadRequest, by toStatus), not
// as protovalidate's own text and details, which speak its internals.
func validation(validator protovalidate.Validator) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		msg, ok := req.(proto.Message)
		if !ok {
			return handler(ctx, req)
		}
		var verr *protovalidate.ValidationError
		switch err := validator.Validate(msg); {
		case err == nil:
			return handler(ctx, req)
		case errors.As(err, &verr):
			return nil, violationsError(verr)
		default: // a rule that does not compile: the proto's fault, not the client's
			return nil, domain.Wrap(domain.KindInternal, err, "validating the request")
		}
	}
}

// violationsError turns protovalidate's violations into one domain error.
func violationsError(verr *protovalidate.ValidationError) error {
	e := &domain.Error{Kind: domain.KindInvalid}
	var msgs []string
	for _, v := range verr.Violations {
		field := protovalidate.FieldPathString(v.Proto.GetField())
		desc := describeViolation(v.Proto.GetRuleId(), v.Proto.GetMessage())
		if field == "" { // a rule on the whole message
			msgs = append(msgs, desc)
			continue
		}
		e.Fields = append(e.Fields, domain.FieldViolation{Field: field, Description: desc})
		msgs = append(msgs, field+": "+desc)
	}
	e.Message = strings.Join(msgs, "; ")
	return e
}

// describeViolation says what a rule wants in the API's words.
func describeViolation(ruleID, message string) string {
	if ruleID == "timestamp.gt_now" {
		return "must be in the future"
	}
	// protovalidate's messages speak of "value": the field is named already.
	return strings.TrimPrefix(message, "value ")
}
