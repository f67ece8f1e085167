package app_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/tokenservice/tokenservice/pkg/access"
	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/gatewayclient"
	"github.com/tokenservice/tokenservice/pkg/httprule"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// servedMethods asks the running server, through gRPC reflection, which
// services it serves, and returns the full name of every method of each
// (but the health and reflection services).
func servedMethods(t *testing.T, conn *grpc.ClientConn) []protoreflect.MethodDescriptor {
	t.Helper()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var methods []protoreflect.MethodDescriptor
	for _, s := range resp.GetListServicesResponse().GetService() {
		switch s.GetName() {
		case "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection":
			continue
		}
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(s.GetName()))
		if err != nil {
			t.Fatalf("served service %s: %v", s.GetName(), err)
		}
		sd := d.(protoreflect.ServiceDescriptor)
		for i := range sd.Methods().Len() {
			methods = append(methods, sd.Methods().Get(i))
		}
	}
	return methods
}

func fullName(m protoreflect.MethodDescriptor) string {
	return "/" + string(m.Parent().FullName()) + "/" + string(m.Name())
}

// callEvery calls every method, with a minimal request and the
// Authorization header (if any), over gRPC and REST, and returns the codes by
// transport and method.
func callEvery(t *testing.T, methods []protoreflect.MethodDescriptor, conns map[string]grpc.ClientConnInterface, authorization string) map[string]codes.Code {
	t.Helper()
	got := map[string]codes.Code{}
	for call, err := range callEveryErr(t, methods, conns, authorization) {
		got[call] = status.Code(err)
	}
	return got
}

// callEveryErr is callEvery returning the errors.
func callEveryErr(t *testing.T, methods []protoreflect.MethodDescriptor, conns map[string]grpc.ClientConnInterface, authorization string) map[string]error {
	t.Helper()
	got := map[string]error{}
	for transport, conn := range conns {
		for _, m := range methods {
			if _, ok := httprule.All().ByMethod(fullName(m)); !ok && transport == "rest" {
				continue // a gRPC-only service (Envoy's ext_authz)
			}
			out, err := protoregistry.GlobalTypes.FindMessageByName(m.Output().FullName())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if authorization != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
			}
			err = conn.Invoke(ctx, fullName(m), apptest.MinimalRequest(t, m), out.New().Interface())
			cancel()
			got[transport+" "+fullName(m)] = err
		}
	}
	return got
}

// Until the database answers, every method of every service the server
// registers answers UNAVAILABLE, over gRPC and REST; once it does, every
// method reaches its implementation (none is left UNIMPLEMENTED).
func TestStartingGateCoversEveryMethod(t *testing.T) {
	cfg := apptest.Config(t, "mysql")
	var proxy *storetest.Proxy
	cfg.Store, proxy = storetest.MustMySQLViaProxy(t)
	cfg.Store.QueryTimeout = 500 * time.Millisecond
	proxy.Cut()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	methods := servedMethods(t, conn)
	if len(methods) < 5 {
		t.Fatalf("the server serves only %d methods", len(methods))
	}
	conns := map[string]grpc.ClientConnInterface{"grpc": conn, "rest": gatewayclient.New("http://"+a.HTTPAddr(), http.DefaultClient)}
	for call, code := range callEvery(t, methods, conns, "") {
		if code != codes.Unavailable {
			t.Errorf("%s before the database answered: %v, want UNAVAILABLE", call, code)
		}
	}

	proxy.Restore()
	for deadline := time.Now().Add(15 * time.Second); a.Ready(ctx) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not ready 15s after the database came back: %v", a.Ready(ctx))
		}
	}
	// With an admin's bearer, so that authentication lets every call reach
	// its method: none may be left unimplemented.
	bearer := apptest.MustUserToken(t, a, users.CreateInput{Username: "root", Password: "a password long enough", Admin: true})
	for call, code := range callEvery(t, methods, conns, "Bearer "+bearer) {
		if code == codes.Unavailable || code == codes.Unimplemented || code == codes.Internal || code == codes.Unauthenticated ||
			code == codes.PermissionDenied {
			t.Errorf("%s once ready, as an admin: %v: the call did not reach a working implementation", call, code)
		}
	}
}

// A key propagation delay shorter than the JWKS max-age plus the reload
// interval is refused: a gateway could meet a key before it can fetch it.
func TestKeyPropagationDelayIsChecked(t *testing.T) {
	cfg := apptest.Config(t, "sqlite")
	cfg.Server.JWKSMaxAge, cfg.KeyReloadInterval = 5*time.Minute, time.Minute
	cfg.KeyRotation.PropagationDelay = 5*time.Minute + 59*time.Second
	if _, err := app.New(context.Background(), cfg); err == nil {
		t.Fatal("a propagation delay under max-age plus reload was accepted")
	}
	cfg.KeyRotation.PropagationDelay = 6 * time.Minute
	apptest.MustStart(t, cfg)
}

// TestEveryMethodKeepsItsAccessRule walks every method the server serves,
// over gRPC and REST, and checks each against the access rule its proto
// declares (pkg/access): without a credential, only a public method is
// reached; with a credential lacking the method's scope, the call is
// refused naming it (INSUFFICIENT_SCOPE); a method only an admin may call
// refuses anyone else; a password as HTTP Basic is taken only where the rule
// says. A method added to a proto is walked with no change here. (No
// method of today's protos is public or admin-only: those branches check
// the first that is; TestGuardAppliesTheRule tries both kinds of rule.)
func TestEveryMethodKeepsItsAccessRule(t *testing.T) {
	a := apptest.MustStart(t, apptest.Config(t, "sqlite"))
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conns := map[string]grpc.ClientConnInterface{"grpc": conn, "rest": gatewayclient.New("http://"+a.HTTPAddr(), http.DefaultClient)}
	rules := map[string]access.Rule{}
	var methods []protoreflect.MethodDescriptor
	for _, m := range servedMethods(t, conn) {
		if m.Parent().ParentFile().Package() != access.Package {
			continue // Envoy's ext_authz: its caller is the proxy
		}
		r, err := access.Of(m)
		if err != nil {
			t.Fatal(err)
		}
		rules[fullName(m)] = r
		methods = append(methods, m)
	}
	if len(methods) < 5 {
		t.Fatalf("the server serves only %d of the API's methods", len(methods))
	}
	ruleOf := func(call string) access.Rule {
		_, method, _ := strings.Cut(call, " ")
		return rules[method]
	}

	for call, err := range callEveryErr(t, methods, conns, "") {
		if public := ruleOf(call).Credential == access.None; public == (status.Code(err) == codes.Unauthenticated) {
			t.Errorf("%s without a credential: %v (public: %t)", call, err, public)
		}
	}

	// A token with a scope no method of the API needs.
	narrow := apptest.MustUserToken(t, a, users.CreateInput{Username: "narrow", Password: "a password long enough"}, domain.ScopeIntrospect)
	for call, err := range callEveryErr(t, methods, conns, "Bearer "+narrow) {
		r := ruleOf(call)
		switch {
		case r.Scope != "" && r.Credential != access.APIToken:
			if reason := apptest.Reason(err); status.Code(err) != codes.PermissionDenied || reason != domain.ReasonInsufficientScope ||
				!strings.Contains(status.Convert(err).Message(), r.Scope) {
				t.Errorf("%s without its scope %s: %v (reason %q), want PERMISSION_DENIED naming it", call, r.Scope, err, reason)
			}
		case r.Credential != access.APIToken && status.Code(err) == codes.Unauthenticated:
			t.Errorf("%s needs no scope, yet a valid token was refused: %v", call, err)
		}
	}

	person := apptest.MustUserToken(t, a, users.CreateInput{Username: "person", Password: "a password long enough"})
	for call, err := range callEveryErr(t, methods, conns, "Bearer "+person) {
		if r := ruleOf(call); r.AdminOnly && apptest.Reason(err) != domain.ReasonAdminRequired {
			t.Errorf("%s, only an admin's, called by another: %v", call, err)
		}
	}

	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("person:a wrong password"))
	for call, err := range callEveryErr(t, methods, conns, basic) {
		r := ruleOf(call)
		msg := status.Convert(err).Message()
		switch {
		case r.Credential == access.None || r.Credential == access.APIToken:
		case r.Basic && (status.Code(err) != codes.Unauthenticated || strings.Contains(msg, "takes no password")):
			t.Errorf("%s takes a password as HTTP Basic; a wrong one: %v, want UNAUTHENTICATED", call, err)
		case !r.Basic && !strings.Contains(msg, "takes no password"):
			t.Errorf("%s takes no password as HTTP Basic, yet was sent one: %v, want told so", call, err)
		}
	}
}
