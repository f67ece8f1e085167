package api

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2/options"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tokenservice/tokenservice/pkg/domain"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// TestPoliciesTakeBasicAsTheSpecSays: a method takes a password as HTTP
// Basic exactly when its OpenAPI security (in the proto) offers the Basic
// scheme, so the spec a client reads and the server agree.
func TestPoliciesTakeBasicAsTheSpecSays(t *testing.T) {
	for _, svc := range []struct {
		desc     protoreflect.ServiceDescriptor
		policies map[string]policy
	}{
		{pb.File_priv_tokenservice_v1alpha1_tokenservice_proto.Services().ByName("TokenService"), tokenPolicies},
		{pb.File_priv_tokenservice_v1alpha1_tokenservice_proto.Services().ByName("UserService"), userPolicies},
	} {
		methods := svc.desc.Methods()
		for i := range methods.Len() {
			m := methods.Get(i)
			full := "/" + string(svc.desc.FullName()) + "/" + string(m.Name())
			pol, ok := svc.policies[full]
			if !ok {
				t.Errorf("%s has no policy", full)
				continue
			}
			op, _ := proto.GetExtension(m.Options(), options.E_Openapiv2Operation).(*options.Operation)
			specBasic := false
			for _, req := range op.GetSecurity() {
				if _, ok := req.GetSecurityRequirement()["Basic"]; ok {
					specBasic = true
				}
			}
			if pol.basic != specBasic {
				t.Errorf("%s: the policy takes Basic %t, the spec says %t", full, pol.basic, specBasic)
			}
		}
	}
}

// TestCallerRefusesBadBasicCredentials: Basic credentials that do not
// decode, or sent to a method that takes none, are refused saying how to
// send a credential, before any password is checked (Deps is empty: a
// check would panic).
func TestCallerRefusesBadBasicCredentials(t *testing.T) {
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	for name, tc := range map[string]struct {
		authorization string
		takesBasic    bool
		want          error
	}{
		"not base64":             {"Basic !!!", true, errBadBasic},
		"no colon":               {basic("alice"), true, errBadBasic},
		"no username":            {basic(":secret"), true, errBadBasic},
		"a username too long":    {basic(strings.Repeat("u", 65) + ":secret"), true, errBadBasic},
		"a password too long":    {basic("alice:" + strings.Repeat("p", domain.MaxPasswordBytes+1)), true, errBadBasic},
		"Basic where none taken": {basic("alice:secret"), false, errBasicNotTaken},
		"two credentials":        {"", true, domain.ErrUnauthenticated},
	} {
		md := metadata.Pairs("authorization", tc.authorization)
		if tc.authorization == "" {
			md = metadata.Pairs("authorization", basic("a:b"), "authorization", "Bearer x")
		}
		_, err := caller(metadata.NewIncomingContext(context.Background(), md), Deps{}, tc.takesBasic, false)
		if err != tc.want {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
