package app_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/app/apptest"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/gatewayclient"
	"github.com/tokenservice/tokenservice/pkg/httprule"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
	"github.com/tokenservice/tokenservice/pkg/tokens"
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

// minimalRequest returns a request for m with its required string fields
// (the REST path's ids among them) set, and nothing else.
func minimalRequest(t *testing.T, m protoreflect.MethodDescriptor) proto.Message {
	t.Helper()
	in, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
	if err != nil {
		t.Fatal(err)
	}
	req := in.New()
	fields := req.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		behaviors, _ := proto.GetExtension(fd.Options(), annotations.E_FieldBehavior).([]annotations.FieldBehavior)
		if fd.Kind() == protoreflect.StringKind && slices.Contains(behaviors, annotations.FieldBehavior_REQUIRED) {
			req.Set(fd, protoreflect.ValueOfString("x"))
		}
	}
	return req.Interface()
}

// callEvery calls every method, with a minimal request and bearer (if
// any), over gRPC and REST, and returns the codes by transport and method.
func callEvery(t *testing.T, methods []protoreflect.MethodDescriptor, conns map[string]grpc.ClientConnInterface, bearer string) map[string]codes.Code {
	t.Helper()
	got := map[string]codes.Code{}
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
			if bearer != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer)
			}
			err = conn.Invoke(ctx, fullName(m), minimalRequest(t, m), out.New().Interface())
			cancel()
			got[transport+" "+fullName(m)] = status.Code(err)
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
	bearer := mustBearer(t, a, users.NewUser{Username: "root", Password: "a password long enough", Admin: true})
	for call, code := range callEvery(t, methods, conns, bearer) {
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

// mustBearer creates the user and returns an API token of it with every
// scope.
func mustBearer(tb testing.TB, a *app.App, u users.NewUser) string {
	tb.Helper()
	ctx := context.Background()
	user, err := a.Users().Create(ctx, users.Operator(), u)
	if err != nil {
		tb.Fatal(err)
	}
	plaintext, _, err := a.Tokens().CreateToken(ctx, &domain.Principal{User: user, AllScopes: true}, tokens.CreateInput{})
	if err != nil {
		tb.Fatal(err)
	}
	return plaintext
}
