package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

func TestUserCommands(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		s := startService(t, storetest.MustConfig(t, driver))
		a := rpc{t, s.grpcCaller()}
		s.mustUser(t, "frank", "admin")
		s.mustUser(t, "frank-bot", "machine:frank")

		out, err := s.cli(t, "", "user", "list")
		if err != nil || !strings.Contains(out, "frank-bot") || !strings.Contains(out, "machine") {
			t.Errorf("user list: %v\n%s", err, out)
		}
		for name, tc := range map[string]struct{ stdin, args string }{
			"short password":         {"short\n", "user create gina"},
			"duplicate username":     {password + "\n", "user create frank"},
			"bad username":           {password + "\n", "user create Gina!"},
			"machine with no owner":  {"", "user create --machine --owner nobody bot2"},
			"machine owning machine": {"", "user create --machine --owner frank-bot bot3"},
			"password from a flag":   {"", "user create --password hunter22 gina"},
			"machine set-password":   {password + "\n", "user set-password frank-bot"},
		} {
			if out, err := s.cli(t, tc.stdin, strings.Fields(tc.args)...); err == nil {
				t.Errorf("%s: succeeded:\n%s", name, out)
			}
		}

		old := a.login("frank")
		if out, err := s.cli(t, "a brand new password\n", "user", "set-password", "frank"); err != nil {
			t.Fatalf("set-password: %v\n%s", err, out)
		}
		_, err = a.create("", &pb.CreateTokenRequest{Username: "frank", Password: password})
		wantCode(t, "the old password after set-password", err, codes.Unauthenticated)
		if _, err := a.create("", &pb.CreateTokenRequest{Username: "frank", Password: "a brand new password"}); err != nil {
			t.Errorf("the new password: %s", describe(err))
		}

		if out, err := s.cli(t, "", "user", "delete", "frank"); err != nil {
			t.Fatalf("delete: %v\n%s", err, out)
		}
		_, err = a.list(old, &pb.ListTokensRequest{})
		wantCode(t, "a deleted user's token", err, codes.Unauthenticated)
		if out, _ := s.cli(t, "", "user", "list"); strings.Contains(out, "frank") {
			t.Errorf("deleted users still listed:\n%s", out)
		}
	})
}

func TestMaxTokenLifetime(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_MAX_TOKEN_LIFETIME", "1h")
	a := rpc{t, s.grpcCaller()}
	s.mustUser(t, "hank", "human")
	created := a.mustCreate("", &pb.CreateTokenRequest{Username: "hank", Password: password})
	if d := time.Until(created.GetMetadata().GetExpireTime().AsTime()); d < 59*time.Minute || d > time.Hour {
		t.Errorf("a token without expire_time expires in %v, want the 1h maximum", d)
	}
	_, err := a.create(created.GetToken(), &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(2 * time.Hour))})
	wantCode(t, "expire_time past the maximum", err, codes.InvalidArgument)
	if _, err := a.create(created.GetToken(), &pb.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(30 * time.Minute))}); err != nil {
		t.Errorf("expire_time within the maximum: %s", describe(err))
	}
}

// Every serve flag is in the README's configuration table, with its variable.
func TestREADMEListsEveryServeFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	if err := run(context.Background(), []string{"tokenservice", "serve", "--help"}, func(string) string { return "" }, strings.NewReader(""), io.Discard, &help); err != nil && !errors.Is(err, errHelp) {
		t.Fatal(err)
	}
	flags := regexp.MustCompile(`(?m)^  --([a-z-]+)  \[([A-Z_]+)\]`).FindAllStringSubmatch(help.String(), -1)
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in serve --help:\n%s", len(flags), help.String())
	}
	for _, f := range flags {
		if !bytes.Contains(readme, []byte("`--"+f[1]+"`")) || !bytes.Contains(readme, []byte("`"+f[2]+"`")) {
			t.Errorf("README.md's configuration table lacks --%s (%s)", f[1], f[2])
		}
	}
}
