// Package apptest starts the application, as serve builds it, inside a test
// or benchmark, on a fresh database.
package apptest

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/server"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
	"github.com/tokenservice/tokenservice/pkg/tokens"
	"github.com/tokenservice/tokenservice/pkg/users"
)

// Config returns a configuration for tests: a fresh database for driver,
// free loopback ports, and argon2id parameters cheap enough to run often.
func Config(tb testing.TB, driver string) app.Config {
	tb.Helper()
	return app.Config{
		Store:                       storetest.MustConfig(tb, driver),
		Server:                      server.Config{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Issuer: "http://tokenservice.test", ShutdownTimeout: 5 * time.Second},
		Minter:                      auth.MinterConfig{Issuer: "http://tokenservice.test", Audience: "http://tokenservice.test", Lifetime: time.Minute},
		PasswordParams:              auth.Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1},
		MaxConcurrentPasswordHashes: 2,
	}
}

// MustStart builds and runs the application, waits until it is ready, and
// stops it when the test ends.
func MustStart(tb testing.TB, cfg app.Config) *app.App {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); a.Ready(ctx) != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("not ready within 10s: %v", a.Ready(ctx))
		}
	}
	return a
}

// MinimalRequest returns a request for m with its required string fields
// (the REST path's ids among them) set, and nothing else.
func MinimalRequest(t testing.TB, m protoreflect.MethodDescriptor) proto.Message {
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

// MustUserToken creates the user (as the operator) and an API token of it
// with the scopes (none: every scope), and returns the token's plaintext.
func MustUserToken(tb testing.TB, a *app.App, u users.CreateInput, scopes ...string) string {
	tb.Helper()
	ctx := context.Background()
	user, err := a.Users().Create(ctx, users.Operator(), u)
	if err != nil {
		tb.Fatal(err)
	}
	plaintext, _, err := a.Tokens().Create(ctx, &domain.Principal{User: user, AllScopes: true}, tokens.CreateInput{Scopes: scopes})
	if err != nil {
		tb.Fatal(err)
	}
	return plaintext
}

// Reason returns the google.rpc.ErrorInfo reason of a status error, or "".
func Reason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}
