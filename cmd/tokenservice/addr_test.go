package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// --addr without a port means serve's gRPC port; https:// without one, 443.
func TestParseAddr(t *testing.T) {
	for _, tc := range []struct {
		addr, target string
		tls          bool
	}{
		{"tokens.example.com", "tokens.example.com:9090", false},
		{"tokens.example.com:7000", "tokens.example.com:7000", false},
		{"10.0.0.7", "10.0.0.7:9090", false},
		{"[::1]", "[::1]:9090", false},
		{"[::1]:7000", "[::1]:7000", false},
		{"http://tokens.example.com", "tokens.example.com:9090", false},
		{"https://tokens.example.com", "tokens.example.com:443", true},
		{"https://tokens.example.com:8443", "tokens.example.com:8443", true},
		{"https://[::1]", "[::1]:443", true},
	} {
		target, tls, err := parseAddr(tc.addr)
		if err != nil || target != tc.target || tls != tc.tls {
			t.Errorf("parseAddr(%q) = %q, %v, %v; want %q, %v", tc.addr, target, tls, err, tc.target, tc.tls)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for target, want := range map[string]bool{
		"localhost:9090": true, "LOCALHOST:9090": true, "127.0.0.1:9090": true, "127.9.9.9:1": true, "[::1]:9090": true,
		"10.0.0.7:9090": false, "tokens.example.com:9090": false, "localhost.example.com:9090": false, "api.localhost:9090": false, "[::]:9090": false, "0.0.0.0:9090": false,
	} {
		if got := isLoopback(target); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", target, got, want)
		}
	}
}

// impostor is a gRPC server that records the authorization it is sent and
// refuses every call.
type impostor struct {
	addr string
	mu   sync.Mutex
	got  []string
}

func startImpostor(t *testing.T) *impostor {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	im := &impostor{addr: lis.Addr().String()}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		md, _ := metadata.FromIncomingContext(stream.Context())
		im.mu.Lock()
		im.got = append(im.got, md.Get("authorization")...)
		im.mu.Unlock()
		return status.Error(codes.Unauthenticated, "invalid or missing credentials")
	}))
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return im
}

func (im *impostor) received() string {
	im.mu.Lock()
	defer im.mu.Unlock()
	return strings.Join(im.got, " ")
}

// Plaintext goes only to this machine unless --insecure (or its variable)
// says the network is trusted: tokens and passwords cross it readable.
func TestPlaintextToAnotherMachineIsRefused(t *testing.T) {
	sh := &shell{t: t, env: map[string]string{"HOME": t.TempDir(), "TOKENSERVICE_TOKEN": "tks_AAAAAAAAAAAAAAAA_x"}}
	for _, addr := range []string{"tokens.invalid:9090", "tokens.invalid", "http://tokens.invalid", "192.0.2.1:9090"} {
		sh.want(exitUsage, "refusing plaintext to "+addr, "", "whoami", "--addr", addr)
		sh.want(exitUsage, "refusing plaintext to "+addr, password+"\n", "login", "bob", "--addr", addr)
	}
	// Allowed, the call goes out (and finds no such host).
	sh.want(exitUnreachable, "did not answer", "", "whoami", "--addr", "tokens.invalid:9090", "--insecure")
	sh.env["TOKENSERVICE_INSECURE"] = "true"
	sh.want(exitUnreachable, "did not answer", "", "whoami", "--addr", "tokens.invalid:9090")
}

// logout sends the login's token only where every other command would:
// the server it was saved for, over TLS if the login was, and never to an
// address read from a credentials file others may edit.
func TestLogoutSendsTheTokenOnlyWhereItWasSaved(t *testing.T) {
	s := startService(t, storetest.MustConfig(t, "sqlite"))
	s.mustUser(t, "bob", "human")
	im := startImpostor(t)
	sh := s.newShell(t)
	path := filepath.Join(sh.env["XDG_CONFIG_HOME"], "tokenservice", "credentials.json")
	sh.must(password+"\n", "login", "bob")
	saved, err := loadCredentials(path)
	if err != nil || saved == nil {
		t.Fatalf("the login's credentials: %v, %v", saved, err)
	}
	a := rpc{t, s.grpcCaller()}

	// TOKENSERVICE_ADDR, or --addr, naming another server.
	sh.env["TOKENSERVICE_ADDR"] = im.addr
	sh.want(exitUsage, "the login is to "+s.grpcAddr+", not "+im.addr, "", "logout")
	delete(sh.env, "TOKENSERVICE_ADDR")
	sh.want(exitUsage, "its token was not sent", "", "logout", "--addr", im.addr)
	if got := im.received(); got != "" {
		t.Fatalf("logout sent %q to another server", got)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the credentials file after a refused logout: %v", err)
	}
	if _, err := a.list(saved.Token, &pb.ListTokensRequest{}); err != nil {
		t.Fatalf("the login's token after a refused logout: %s", describe(err))
	}

	// A login over TLS: logout uses TLS too (an impostor speaking plaintext
	// at that address gets no token).
	tlsLogin := *saved
	tlsLogin.Addr, tlsLogin.TLS = im.addr, true
	if err := saveCredentials(path, &tlsLogin); err != nil {
		t.Fatal(err)
	}
	sh.want(exitUnreachable, "did not answer", "", "logout")
	sh.want(exitUsage, "went over TLS; its token was not sent and the credentials file is kept: run tokenservice logout --addr "+im.addr+" --tls", "", "logout", "--addr", im.addr)
	sh.want(exitUnreachable, "did not answer", "", "logout", "--addr", im.addr, "--tls")
	if got := im.received(); got != "" {
		t.Fatalf("logout sent %q in plaintext after a TLS login", got)
	}

	// A credentials file others may write: its address is not trusted,
	// neither by logout nor for TOKENSERVICE_TOKEN's sake.
	forged := *saved
	forged.Addr = im.addr
	if err := saveCredentials(path, &forged); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	sh.want(exitError, "nor is the address in it trusted", "", "logout")
	script := &shell{t: t, env: map[string]string{"XDG_CONFIG_HOME": sh.env["XDG_CONFIG_HOME"], "TOKENSERVICE_TOKEN": saved.Token}}
	script.want(exitError, "readable or writable by others", "", "whoami")
	if got := im.received(); got != "" {
		t.Fatalf("a token went to the address of a file others may write: %q", got)
	}
	script.must("", "whoami", "--addr", s.grpcAddr) // an address given is used, the file ignored

	// Named where it was saved, logout deletes the token and the file.
	saved.Addr = s.grpcAddr
	if err := saveCredentials(path, saved); err != nil {
		t.Fatal(err)
	}
	sh.must("", "logout", "--addr", s.grpcAddr)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the credentials file after logout: %v", err)
	}
	_, err = a.list(saved.Token, &pb.ListTokensRequest{})
	wantCode(t, "the login's token after logout", err, codes.Unauthenticated)
}
