package access_test

import (
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/access"
)

// method builds a method that declares rule (none if nil).
func method(t *testing.T, rule *pb.Access) protoreflect.MethodDescriptor {
	t.Helper()
	opts := &descriptorpb.MethodOptions{}
	if rule != nil {
		proto.SetExtension(opts, pb.E_Access, rule)
	}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:        proto.String("trial.proto"),
		Package:     proto.String("trial"),
		Syntax:      proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("M")}},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("S"), Method: []*descriptorpb.MethodDescriptorProto{{
			Name: proto.String("Do"), InputType: proto.String(".trial.M"), OutputType: proto.String(".trial.M"), Options: opts,
		}}}},
	}, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Services().Get(0).Methods().Get(0)
}

// A rule is read as declared; one the guard could not enforce in full, or
// none at all, is refused (and with it the server's start).
func TestOf(t *testing.T) {
	for name, tc := range map[string]struct {
		rule    *pb.Access
		want    access.Rule
		refused string // a part of the error; "" for none
	}{
		"bearer with a scope": {rule: &pb.Access{Credential: pb.Credential_CREDENTIAL_BEARER, Scope: "x:read", Basic: true, AdminOnly: true,
			Errors: []*pb.ErrorAnswer{{Status: 404, Description: "No such thing."}}},
			want: access.Rule{Method: "/trial.S/Do", Credential: access.Bearer, Scope: "x:read", Basic: true, AdminOnly: true,
				Errors: []access.ErrorAnswer{{Status: 404, Description: "No such thing."}}}},
		"public":                            {rule: &pb.Access{Credential: pb.Credential_CREDENTIAL_NONE}, want: access.Rule{Method: "/trial.S/Do", Credential: access.None}},
		"password in the body with a scope": {rule: &pb.Access{Credential: pb.Credential_CREDENTIAL_BEARER_OR_PASSWORD_IN_BODY, Scope: "x:write"}, want: access.Rule{Method: "/trial.S/Do", Credential: access.BearerOrPasswordInBody, Scope: "x:write"}},
		"no rule":                           {refused: "declares no access rule"},
		"credential unspecified":            {rule: &pb.Access{Scope: "x:read"}, refused: "choose one"},
		"public with a scope":               {rule: &pb.Access{Credential: pb.Credential_CREDENTIAL_NONE, Scope: "x:read"}, refused: "public"},
		"public, admins only":               {rule: &pb.Access{Credential: pb.Credential_CREDENTIAL_NONE, AdminOnly: true}, refused: "public"},
		"an API token with a scope":         {rule: &pb.Access{Credential: pb.Credential_CREDENTIAL_API_TOKEN, Scope: "x:read"}, refused: "CREDENTIAL_API_TOKEN"},
		"an API token, admins only":         {rule: &pb.Access{Credential: pb.Credential_CREDENTIAL_API_TOKEN, AdminOnly: true}, refused: "CREDENTIAL_API_TOKEN"},
		"password in the body, admins only": {rule: &pb.Access{Credential: pb.Credential_CREDENTIAL_BEARER_OR_PASSWORD_IN_BODY, AdminOnly: true}, refused: "IN_BODY"},
		"password in the body and as Basic": {rule: &pb.Access{Credential: pb.Credential_CREDENTIAL_BEARER_OR_PASSWORD_IN_BODY, Basic: true}, refused: "IN_BODY"},
		"an unknown credential":             {rule: &pb.Access{Credential: 99}, refused: "choose one"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := access.Of(method(t, tc.rule))
			switch {
			case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
				t.Errorf("%v, want refused with %q", err, tc.refused)
			case tc.refused == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.refused == "" && !reflect.DeepEqual(got, tc.want):
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Every method of the API's services declares a rule the guard can
// enforce, and the services are found in every proto file of the package.
func TestRules(t *testing.T) {
	rules, err := access.Rules()
	if err != nil {
		t.Fatal(err)
	}
	methods := 0
	for _, svc := range access.Services() {
		methods += svc.Methods().Len()
	}
	if methods < 5 || len(rules) != methods {
		t.Errorf("%d rules for %d methods", len(rules), methods)
	}
}
