package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Issue 23's speed: nginx protecting an API with auth_request, configured
// as deploy/gateways/nginx.conf ships (its keepalive to the service), against
// the same nginx passing requests to the same API with no check. The API is
// an upstream in this process answering "ok".

// measureNginx runs gateway-nginx-open (a location with no check) and
// gateway-nginx-auth (the example's "/", an API token as the bearer) in
// turns, twice each, and puts the second's throughput of the first's in
// summary; each result's CPU per request is the service's (the check's).
func (b *bench) measureNginx(summary map[string]any) error {
	nginx, err := findNginx(b.cfg.nginx)
	if err != nil {
		return err
	}
	api, err := startOKServer()
	if err != nil {
		return err
	}
	defer api.Close()
	listen, err := freePort()
	if err != nil {
		return err
	}
	stop, err := startNginx(b.ctx, nginx, b.cfg.gatewaysDir, b.work, listen, strings.TrimPrefix(b.c.httpURL, "http://"), api.Addr().String())
	if err != nil {
		return err
	}
	defer stop()
	var open, auth float64
	for range 2 {
		open += b.measure("gateway-nginx-open", "rest", b.cfg.concurrency, getThrough(listen, "/open/orders", "")).RPS
		auth += b.measure("gateway-nginx-auth", "rest", b.cfg.concurrency, getThrough(listen, "/orders", b.fix.apiToken)).RPS
	}
	summary["nginx_auth_of_open"] = ratio(auth, open)
	return nil
}

// findNginx returns the nginx to run: path, else nginx on PATH or
// Debian's /usr/sbin/nginx.
func findNginx(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", fmt.Errorf("no nginx for the gateway scenarios (make nginx installs Debian's; -scenarios can leave them out)")
}

// startOKServer serves "ok" on a free port: the API behind the gateway.
func startOKServer() (net.Listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }))
	}()
	return l, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startNginx runs nginx with the example's server block from dir (its three
// addresses replaced, and a location /open/ with no check added), under
// work, until it listens; stop ends it and its workers.
func startNginx(ctx context.Context, nginx, dir, work, listen, service, api string) (stop func(), err error) {
	site, err := os.ReadFile(filepath.Join(dir, "nginx.conf"))
	if err != nil {
		return nil, err
	}
	identity, err := os.ReadFile(filepath.Join(dir, "tokenservice-identity.conf"))
	if err != nil {
		return nil, err
	}
	conf := string(site)
	for _, r := range [][2]string{
		{"server 127.0.0.1:8080;", "server " + service + ";"},
		{"server 127.0.0.1:9000;", "server " + api + ";"},
		{"listen 127.0.0.1:8000;", "listen " + listen + ";"},
		{"    # A route that needs a scope", "    location /open/ {\n        proxy_pass http://api;\n    }\n\n    # A route that needs a scope"},
	} {
		if !strings.Contains(conf, r[0]) {
			return nil, fmt.Errorf("%s/nginx.conf has no %q to replace", dir, r[0])
		}
		conf = strings.Replace(conf, r[0], r[1], 1)
	}
	prefix := filepath.Join(work, "nginx")
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o700); err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;" // workers would be nobody, who cannot enter the bench's directory
	}
	main := user + `
worker_processes 1;
daemon off;
pid nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    include site.conf;
}
`
	for name, content := range map[string]string{"nginx.conf": main, "site.conf": conf, "tokenservice-identity.conf": string(identity)} {
		if err := os.WriteFile(filepath.Join(prefix, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(nginx, "-p", prefix+"/", "-e", filepath.Join(prefix, "error.log"), "-c", "nginx.conf")
	return startListening(ctx, cmd, listen, filepath.Join(prefix, "nginx.log"))
}

// startListening runs cmd, its output to logPath, until it listens on
// listen; stop ends it and every process it started.
func startListening(ctx context.Context, cmd *exec.Cmd, listen, logPath string) (stop func(), err error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // nginx's workers die with it
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	for deadline := time.Now().Add(20 * time.Second); ctx.Err() == nil; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s does not listen on %s after 20s: see %s", filepath.Base(cmd.Path), listen, logPath)
		}
	}
	stop()
	return nil, ctx.Err()
}

// measureOffline puts oauth2-proxy in front of the API as a gateway that
// verifies access tokens offline (TestOfflineJWTGateway's configuration)
// and measures it with an access token (gateway-offline-jwt) in turns with
// a route it lets through unchecked (gateway-offline-open), twice each;
// summary gets the first's throughput of the second's. oauth2-proxy reads
// the discovery document and the JWKS at the bench's issuer
// (http://tokenbench.test) through the service, as its HTTP proxy.
func (b *bench) measureOffline(summary map[string]any) error {
	if b.cfg.oauth2Proxy == "" {
		return fmt.Errorf("no oauth2-proxy for the gateway-offline scenarios (make gateways builds it; -scenarios can leave them out)")
	}
	api, err := startOKServer()
	if err != nil {
		return err
	}
	defer api.Close()
	listen, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(b.cfg.oauth2Proxy,
		"--http-address="+listen, "--upstream=http://"+api.Addr().String()+"/",
		"--provider=oidc", "--oidc-issuer-url="+benchIssuer, "--client-id="+benchIssuer, "--client-secret=unused",
		"--cookie-secret=0123456789abcdef0123456789abcdef", "--cookie-secure=false", "--email-domain=*",
		"--skip-jwt-bearer-tokens=true", "--bearer-token-login-fallback=false", "--api-route=^/",
		"--pass-user-headers=true", "--skip-provider-button=true", "--skip-auth-route=^/open/",
		"--request-logging=false", "--standard-logging=false")
	cmd.Env = append(os.Environ(), "HTTP_PROXY="+b.c.httpURL, "NO_PROXY=127.0.0.1,localhost")
	stop, err := startListening(b.ctx, cmd, listen, filepath.Join(b.work, "oauth2-proxy.log"))
	if err != nil {
		return err
	}
	defer stop()
	var open, jwt float64
	for range 2 {
		open += b.measure("gateway-offline-open", "rest", b.cfg.concurrency, getThrough(listen, "/open/orders", "")).RPS
		jwt += b.measure("gateway-offline-jwt", "rest", b.cfg.concurrency, getThrough(listen, "/orders", b.fix.accessToken)).RPS
	}
	summary["offline_jwt_of_open"] = ratio(jwt, open)
	return nil
}

// gatewayClient is the bench's client of the gateways.
var gatewayClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxIdleConns: 4096}}

// getThrough returns an op that GETs path through the gateway at listen,
// with bearer as the credential unless it is "", and wants 200.
func getThrough(listen, path, bearer string) op {
	return func(ctx context.Context, _ int) error {
		req, err := http.NewRequestWithContext(ctx, "GET", "http://"+listen+path, nil)
		if err != nil {
			return err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := gatewayClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s through the gateway: %s", path, resp.Status)
		}
		return nil
	}
}
