package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenservice/tokenservice/pkg/store/storetest"
)

// mustCertificate writes a self-signed certificate for 127.0.0.1 and its key,
// returning their paths and a pool that trusts it.
func mustCertificate(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tokenservice test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := mustCertificate(t)
	s := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_TLS_CERT", certFile, "TOKENSERVICE_TLS_KEY", keyFile)
	httpsURL := strings.Replace(s.httpURL, "http://", "https://", 1)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := client.Get(httpsURL + "/readyz")
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Errorf("HTTPS /readyz: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	if resp, err := http.Get(s.httpURL + "/readyz"); err == nil && resp.StatusCode == http.StatusOK {
		t.Error("plain HTTP is served next to TLS")
	}

	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{}); err != nil {
		t.Errorf("gRPC over TLS: %v", err)
	}
	// The harness's plaintext connection must not get through.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if _, err := grpc_health_v1.NewHealthClient(s.grpcConn).Check(ctx2, &grpc_health_v1.HealthCheckRequest{}); err == nil {
		t.Error("plaintext gRPC is served next to TLS")
	}

	for _, env := range [][]string{{"TOKENSERVICE_TLS_CERT", certFile}, {"TOKENSERVICE_TLS_CERT", certFile, "TOKENSERVICE_TLS_KEY", filepath.Join(t.TempDir(), "missing.pem")}} {
		e := map[string]string{"TOKENSERVICE_DB_DSN": filepath.Join(t.TempDir(), "x.db"), "TOKENSERVICE_HTTP_ADDR": "127.0.0.1:0", "TOKENSERVICE_GRPC_ADDR": "127.0.0.1:0", "TOKENSERVICE_METRICS_ADDR": "127.0.0.1:0"}
		for i := 0; i+1 < len(env); i += 2 {
			e[env[i]] = env[i+1]
		}
		var out strings.Builder
		if err := run(context.Background(), []string{"tokenservice", "serve"}, func(k string) string { return e[k] }, strings.NewReader(""), &out, &out); err == nil {
			t.Errorf("serve with %v started", env)
		}
	}
}

// The client commands use TLS when the address says https:// or --tls asks,
// trusting --tls-ca-file (else the system's CAs).
func TestClientOverTLS(t *testing.T) {
	certFile, keyFile, _ := mustCertificate(t)
	s := startService(t, storetest.MustConfig(t, "sqlite"), "TOKENSERVICE_TLS_CERT", certFile, "TOKENSERVICE_TLS_KEY", keyFile)
	s.mustUser(t, "tess", "human")
	sh := s.newShell(t)
	sh.env["TOKENSERVICE_ADDR"] = "https://" + s.grpcAddr
	sh.want(exitUnreachable, "certificate", password+"\n", "login", "tess") // not signed by a CA the system trusts
	sh.env["TOKENSERVICE_TLS_CA_FILE"] = certFile
	sh.must(password+"\n", "login", "tess")
	if out := sh.must("", "whoami"); !strings.Contains(out, "tess") {
		t.Errorf("whoami over TLS: %q", out)
	}
	sh.must("", "whoami", "--addr", s.grpcAddr, "--tls")
	// The login's token, got over TLS, is never sent in plaintext.
	sh.want(exitCredentials, "not logged in to "+s.grpcAddr, "", "whoami", "--addr", s.grpcAddr)
	sh.env["TOKENSERVICE_TOKEN"] = "tks_AAAAAAAAAAAAAAAA_x"
	sh.want(exitUnreachable, "did not answer", "", "whoami", "--addr", s.grpcAddr) // plaintext to a TLS server
	sh.want(exitUsage, "scheme", "", "whoami", "--addr", "ftp://"+s.grpcAddr)

	// healthcheck of a serve with its own TLS: https from serve's variables,
	// trusting --tls-ca-file.
	hc := &shell{t: t, env: map[string]string{"TOKENSERVICE_HTTP_ADDR": strings.TrimPrefix(s.httpURL, "http://"), "TOKENSERVICE_TLS_CERT": certFile}}
	hc.want(1, "certificate", "", "healthcheck")
	hc.must("", "healthcheck", "--tls-ca-file", certFile)
}
