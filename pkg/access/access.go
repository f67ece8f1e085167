// Package access reads the access rule each RPC declares in the protos,
// beside its google.api.http route:
//
//	option (priv.tokenservice.v1alpha1.access) = {credential: CREDENTIAL_BEARER scope: "tokens:read"};
//
// It is the one declaration of who may call a method: pkg/api authenticates
// each call by it, tools/openapiv3 writes each operation's security and
// error answers from it, and the tests that walk every method, and the one
// that checks the README's scope table, read it here.
package access

import (
	"cmp"
	"fmt"
	"path"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// Package is the proto package of the API's services.
const Package = "priv.tokenservice.v1alpha1"

// Credential says how a method's caller proves who it is.
type Credential int

// The credentials a method may take (the proto's Credential enum).
const (
	Undeclared             Credential = iota // no rule: every call is refused
	None                                     // public
	Bearer                                   // an API token or an access token as the bearer (or HTTP Basic, if Rule.Basic)
	BearerOrPasswordInBody                   // a bearer, or a username and password in the body
	APIToken                                 // an API token, in the body or as the bearer: the method reads it itself
)

// Rule is one method's access rule.
type Rule struct {
	// Method is the method's full name, "/package.Service/Method".
	Method     string
	Credential Credential
	// Scope is the scope the caller's credential must carry; "" for none.
	Scope string
	// Basic: the method also takes a person's password as HTTP Basic
	// credentials (RFC 7617) instead of a bearer.
	Basic bool
	// AdminOnly: only an admin may call the method.
	AdminOnly bool
	// ChangesCredentials: the method makes or changes lasting credentials,
	// so the caller's API token is read from the database, not a cache.
	ChangesCredentials bool
	// Errors are the error answers the method declares beyond those every
	// method gives and those the rule implies (see the proto's Access).
	Errors []ErrorAnswer
}

// ErrorAnswer is an error a method answers, as the OpenAPI document lists it.
type ErrorAnswer struct {
	Status      int
	Description string
	Example     string // a google.rpc.Status as JSON, or ""
}

// Name is the method's short name ("GetToken").
func (r Rule) Name() string { return path.Base(r.Method) }

// Services returns the API's services, sorted by full name: every service of
// the proto package Package, whichever file declares it.
func Services() []protoreflect.ServiceDescriptor {
	var services []protoreflect.ServiceDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage(Package, func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			services = append(services, f.Services().Get(i))
		}
		return true
	})
	slices.SortFunc(services, func(a, b protoreflect.ServiceDescriptor) int {
		return cmp.Compare(a.FullName(), b.FullName())
	})
	return services
}

// Rules returns the rule of every method of the API's services (services
// by name, methods in declaration order), or an error naming a method that declares none (or an
// unknown credential): the server refuses to start with one, rather than
// serve a method nobody said how to authenticate.
func Rules() ([]Rule, error) {
	var rules []Rule
	for _, svc := range Services() {
		for i := range svc.Methods().Len() {
			r, err := Of(svc.Methods().Get(i))
			if err != nil {
				return nil, err
			}
			rules = append(rules, r)
		}
	}
	return rules, nil
}

// Of returns the rule a method declares.
func Of(md protoreflect.MethodDescriptor) (Rule, error) {
	method := fmt.Sprintf("/%s/%s", md.Parent().FullName(), md.Name())
	if !proto.HasExtension(md.Options(), pb.E_Access) {
		return Rule{}, fmt.Errorf("%s declares no access rule: give it option (%s) = {credential: ...}", method, pb.E_Access.TypeDescriptor().FullName())
	}
	a := proto.GetExtension(md.Options(), pb.E_Access).(*pb.Access)
	r := Rule{Method: method, Scope: a.GetScope(), Basic: a.GetBasic(), AdminOnly: a.GetAdminOnly(), ChangesCredentials: a.GetChangesCredentials()}
	switch a.GetCredential() {
	case pb.Credential_CREDENTIAL_NONE:
		r.Credential = None
	case pb.Credential_CREDENTIAL_BEARER:
		r.Credential = Bearer
	case pb.Credential_CREDENTIAL_BEARER_OR_PASSWORD_IN_BODY:
		r.Credential = BearerOrPasswordInBody
	case pb.Credential_CREDENTIAL_API_TOKEN:
		r.Credential = APIToken
	default:
		return Rule{}, fmt.Errorf("%s declares the credential %v: choose one", method, a.GetCredential())
	}
	// The guard checks no scope, password or admin where it does not
	// resolve the caller itself: a rule asking for one there would be
	// silently unenforced, so it is refused.
	switch {
	case r.Credential == None && (r.Scope != "" || r.Basic || r.AdminOnly || r.ChangesCredentials):
		return Rule{}, fmt.Errorf("%s is public (CREDENTIAL_NONE) yet asks for a scope, a password or an admin", method)
	case r.Credential == APIToken && (r.Scope != "" || r.Basic || r.AdminOnly || r.ChangesCredentials):
		return Rule{}, fmt.Errorf("%s reads its API token itself (CREDENTIAL_API_TOKEN): the guard cannot check a scope, a password or an admin for it", method)
	case r.Credential == BearerOrPasswordInBody && (r.Basic || r.AdminOnly):
		return Rule{}, fmt.Errorf("%s takes a password in its body (CREDENTIAL_BEARER_OR_PASSWORD_IN_BODY): the guard cannot check HTTP Basic or an admin for it", method)
	}
	for _, e := range a.GetErrors() {
		r.Errors = append(r.Errors, ErrorAnswer{Status: int(e.GetStatus()), Description: e.GetDescription(), Example: e.GetExample()})
	}
	return r, nil
}

// InsufficientScopeMessage is what a caller whose credential lacks the scope
// a method needs is told (and the OpenAPI document's example of it).
func InsufficientScopeMessage(scope, method string) string {
	return fmt.Sprintf("the credential lacks the scope %q, which %s needs: use a token that has it", scope, path.Base(method))
}

// AdminRequiredMessage is what a caller who is not an admin is told by a
// method only an admin may call.
func AdminRequiredMessage(method string) string {
	return fmt.Sprintf("only an admin may call %s", path.Base(method))
}
