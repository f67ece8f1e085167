package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
	"github.com/tokenservice/tokenservice/pkg/bearer"
)

// defaultAddr is where a client looks for the server when nothing says otherwise.
const defaultAddr = "localhost:9090"

// tokenVariable holds an API token for scripts: it wins over a login's.
const tokenVariable = "TOKENSERVICE_TOKEN"

// defaultPort is the port an --addr without one means: serve's --grpc-addr default.
const defaultPort = "9090"

// clientOptions are the flags every client command takes.
type clientOptions struct {
	addr     string
	tls      bool
	caFile   string
	insecure bool
}

func clientFlags(fs *pflag.FlagSet) *clientOptions {
	o := &clientOptions{}
	fs.StringVar(&o.addr, "addr", "", "the server's gRPC address: host[:port] (port "+defaultPort+" if left out), or https://host[:port] for TLS (443) (default: the address logged in to, else "+defaultAddr+")")
	fs.BoolVar(&o.tls, "tls", false, "use TLS even though --addr does not say https://")
	fs.StringVar(&o.caFile, "tls-ca-file", "", "PEM file of the CA that signed the server's certificate (default: the system's)")
	fs.BoolVar(&o.insecure, "insecure", false, "allow plaintext (no TLS) to an address that is not this machine's: tokens and passwords then cross the network readable")
	fromEnv(fs, "addr", "tls", "tls-ca-file", "insecure")
	return o
}

// client is a connection to the server, with the caller's API token.
type client struct {
	addr     string // as given: host:port or https://host:port
	tls      bool
	conn     *grpc.ClientConn
	token    string // "" if not logged in
	username string // the login's, if the login is to this server
	basic    string // HTTP Basic credentials (RFC 7617) sent instead of the token, if set
	tokens   pb.TokenServiceClient
	users    pb.UserServiceClient
	audit    pb.AuditServiceClient
	stderr   io.Writer
	warned   bool
}

// destination is where a client command goes.
type destination struct {
	addr   string // as given, or as saved
	target string // host:port, for gRPC
	tls    bool
}

// resolve decides where a command goes: --addr (or $TOKENSERVICE_ADDR),
// else the login's address (saved, nil if there is none or it is not
// trusted), else defaultAddr. TLS if --tls, https://, or the login's address
// is used and the login went over TLS. Plaintext to an address that is not
// this machine's is refused unless --insecure.
func (o *clientOptions) resolve(saved *savedCredentials) (destination, error) {
	d := destination{addr: o.addr, tls: o.tls}
	if d.addr == "" && saved != nil {
		d.addr, d.tls = saved.Addr, d.tls || saved.TLS
	}
	if d.addr == "" {
		d.addr = defaultAddr
	}
	target, addrTLS, err := parseAddr(d.addr)
	if err != nil {
		return d, &exitErr{code: exitUsage, err: err, cmd: "tokenservice"}
	}
	d.target, d.tls = target, d.tls || addrTLS
	if !d.tls && !o.insecure && !isLoopback(target) {
		return d, &exitErr{code: exitUsage, cmd: "tokenservice", err: fmt.Errorf("refusing plaintext to %s: tokens and passwords would cross the network readable; "+
			"use https://%s or --tls, or --insecure (%s=true) for a network you trust", d.addr, target, envName("insecure"))}
	}
	return d, nil
}

// holdsTokenFor reports whether the login's token may go to d: the server
// it was saved for, over TLS if it came over TLS.
func (saved *savedCredentials) holdsTokenFor(d destination) bool {
	if saved == nil || saved.Token == "" {
		return false
	}
	target, savedTLS, err := parseAddr(saved.Addr)
	return err == nil && target == d.target && (d.tls || !(savedTLS || saved.TLS))
}

// isLoopback reports whether a host:port names this machine: a loopback IP,
// or "localhost" itself (RFC 6761, section 6.3), which /etc/hosts answers.
// Not its subdomains (dev.localhost): only some resolvers keep those on
// this machine, others ask the network's DNS, which may answer anything.
func isLoopback(target string) bool {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return false
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// connect dials the server (see resolve). The token is TOKENSERVICE_TOKEN's,
// else the login's if the login is to this address; needToken refuses to go
// on without one (login needs none). The credentials file is trusted, for
// its token and for its address, only if others cannot read or write it: a
// file someone else could edit could point the next command's token at
// their server.
func (o *clientOptions) connect(e *env, needToken bool) (*client, error) {
	path, err := credentialsPath(e.getenv)
	if err != nil {
		return nil, err
	}
	envToken := e.getenv(tokenVariable)
	saved, err := loadCredentials(path)
	if err != nil {
		if o.addr == "" || (needToken && envToken == "") {
			return nil, err
		}
		saved = nil // neither its address nor its token is used
	}
	d, err := o.resolve(saved)
	if err != nil {
		return nil, err
	}
	c := &client{addr: d.addr, tls: d.tls, token: envToken, stderr: e.stderr}
	if saved.holdsTokenFor(d) {
		c.username = saved.Username
		if needToken && c.token == "" {
			c.token = saved.Token
		}
	}
	if needToken && c.token == "" {
		where := ""
		if saved != nil {
			where = " to " + c.addr + " (the login is to " + saved.Addr + ")"
		}
		return nil, &exitErr{code: exitCredentials, err: fmt.Errorf("not logged in%s: run `tokenservice login`, or set %s", where, tokenVariable)}
	}
	return c, o.dial(c, d.target)
}

// tlsConfig is the client side of TLS: the system's roots, or those of
// caFile (--tls-ca-file) if given.
func tlsConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca-file: %w", err)
	}
	cfg.RootCAs = x509.NewCertPool()
	if !cfg.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca-file: no PEM certificate in %s", caFile)
	}
	return cfg, nil
}

// dial connects c to target.
func (o *clientOptions) dial(c *client, target string) error {
	creds := insecure.NewCredentials()
	if c.tls {
		cfg, err := tlsConfig(o.caFile)
		if err != nil {
			return err
		}
		creds = credentials.NewTLS(cfg)
	}
	var err error
	if c.conn, err = grpc.NewClient(target, grpc.WithTransportCredentials(creds), grpc.WithUnaryInterceptor(c.warnOfExpiry)); err != nil {
		return &exitErr{code: exitUsage, err: fmt.Errorf("--addr %q: %w", c.addr, err), cmd: "tokenservice"}
	}
	c.tokens, c.users, c.audit = pb.NewTokenServiceClient(c.conn), pb.NewUserServiceClient(c.conn), pb.NewAuditServiceClient(c.conn)
	return nil
}

// parseAddr turns --addr into a gRPC target and whether it asks for TLS. A
// host without a port means serve's gRPC port; https:// without one, 443.
func parseAddr(addr string) (target string, useTLS bool, err error) {
	if !strings.Contains(addr, "://") {
		return withPort(addr, defaultPort), false, nil
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", false, fmt.Errorf("--addr %q: want host:port or https://host:port", addr)
	}
	switch u.Scheme {
	case "https", "grpcs":
		return withPort(u.Host, "443"), true, nil
	case "http", "grpc":
		return withPort(u.Host, defaultPort), false, nil
	}
	return "", false, fmt.Errorf("--addr %q: the scheme must be https:// (TLS) or http://", addr)
}

// withPort adds port to a host that has none ("host", "[::1]", "::1").
func withPort(hostport, port string) string {
	if _, _, err := net.SplitHostPort(hostport); err == nil {
		return hostport
	}
	host := strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
	return net.JoinHostPort(host, port)
}

func (c *client) close() { c.conn.Close() }

// expiryWarning is how close to its expiry a credential is warned of.
const expiryWarning = 7 * 24 * time.Hour

// warnOfExpiry tells the user, once, on stderr, when the server says the
// credential sent expires within expiryWarning.
func (c *client) warnOfExpiry(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var header metadata.MD
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&header))...)
	if v := header.Get(bearer.TokenExpirationHeader); len(v) == 1 && !c.warned {
		if at, perr := time.Parse(time.RFC3339, v[0]); perr == nil && time.Until(at) < expiryWarning {
			c.warned = true
			fmt.Fprintf(c.stderr, "warning: the token this command uses expires %s (in %s): log in again before then (tokenservice login), or make its replacement (tokenservice token create)\n",
				at.Local().Format(time.RFC3339), time.Until(at).Round(time.Minute))
		}
	}
	return err
}

// callTimeout bounds one call: a server that does not answer is an error, not a hang.
const callTimeout = 30 * time.Second

// call returns a context for one call, carrying the API token.
func (c *client) call(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(parent, callTimeout)
	if c.basic != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Basic "+c.basic)
	} else if c.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	}
	return ctx, cancel
}

// usePassword makes the client's calls authenticate with a username and
// password (HTTP Basic, RFC 7617) rather than its token.
func (c *client) usePassword(username, password string) {
	c.basic = base64.StdEncoding.EncodeToString([]byte(username + ":" + password))
}

// fail turns a call's error into what the user reads, with the exit code
// that tells refused credentials and an unreachable server apart (nil stays nil).
func (c *client) fail(err error) error {
	if err == nil {
		return nil
	}
	orig := status.Convert(err)
	st := status.New(orig.Code(), inCLIWords(orig))
	switch st.Code() {
	case codes.Unauthenticated:
		if c.basic != "" { // --password: the login is not what was refused
			return &exitErr{code: exitCredentials, err: errors.New("wrong username or password")}
		}
		return &exitErr{code: exitCredentials, err: fmt.Errorf("%s: log in again (tokenservice login) or check %s", safe(st.Message()), tokenVariable)}
	case codes.ResourceExhausted:
		// The server's words point at Retry-After, which a CLI user does
		// not see: say the wait its RetryInfo carries.
		for _, d := range orig.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil && strings.Contains(st.Message(), "Retry-After") {
				msg, _, _ := strings.Cut(safe(st.Message()), ": retry after")
				return fmt.Errorf("%s: retry in %s", msg, ri.GetRetryDelay().AsDuration().Round(time.Second))
			}
		}
	case codes.PermissionDenied:
		// The CLI sends a password as HTTP Basic when told --password.
		msg := strings.ReplaceAll(safe(st.Message()), "your password (HTTP Basic)", "your password (--password)")
		return &exitErr{code: exitCredentials, err: errors.New(msg)}
	case codes.Unavailable, codes.DeadlineExceeded:
		msg := safe(st.Message())
		switch {
		case strings.Contains(msg, "server preface"):
			// An HTTP/1 server answered: --addr names the REST port.
			msg = "it does not speak gRPC (is that the REST address? The CLI talks to the gRPC one, serve's --grpc-addr, 9090 by default)"
		case strings.Contains(msg, "connection refused"):
			msg = "nothing listens there (connection refused): is serve running, and is --addr (or TOKENSERVICE_ADDR) its --grpc-addr?"
		}
		return &exitErr{code: exitUnreachable, err: fmt.Errorf("the server at %s did not answer: %s", c.addr, msg)}
	}
	return errors.New(safe(st.Message()))
}

// flagOf names the API's request fields as the CLI's user knows them: the
// flag (or argument) that fills each.
var flagOf = map[string]string{
	"expire_time":   "--expires-in",
	"grace_period":  "--grace-period",
	"note":          "--note",
	"scopes":        "--scope",
	"user_id":       "--user",
	"expire_before": "--expiring-within",
	"token_id":      "the token ID",
	"username":      "the username",
	"password":      "the password",
	"new_password":  "the new password",
	"old_password":  "the current password",
	// audit list's
	"actor_id":        "--actor-id",
	"subject_user_id": "--subject-user-id",
	"action":          "--action",
	"start_time":      "--since",
	"end_time":        "--until",
}

// inCLIWords returns a refusal's message with the fields it names (its
// google.rpc.BadRequest) said as the CLI's flags: "--expires-in: must be in
// the future", not "expire_time: ...".
func inCLIWords(st *status.Status) string {
	var parts []string
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			name, ok := flagOf[v.GetField()]
			if !ok {
				return st.Message()
			}
			parts = append(parts, name+": "+v.GetDescription())
		}
	}
	if len(parts) == 0 {
		return st.Message()
	}
	return strings.Join(parts, "; ")
}

// userID returns the ID of the user named: a username, or "me"; "" stays
// "" (the API's "you").
func (c *client) userID(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	u, err := c.user(ctx, name)
	return u.GetId(), err
}

// user returns the user named: a username, or "me".
func (c *client) user(ctx context.Context, name string) (*pb.User, error) {
	call, cancel := c.call(ctx)
	defer cancel()
	if name == "me" {
		resp, err := c.users.GetUser(call, &pb.GetUserRequest{UserId: "me"})
		return resp.GetUser(), c.fail(err)
	}
	resp, err := c.users.ListUsers(call, &pb.ListUsersRequest{Username: name})
	if err != nil {
		return nil, c.fail(err)
	}
	if len(resp.GetUsers()) != 1 {
		return nil, fmt.Errorf("no user %q that you may see", name)
	}
	return resp.GetUsers()[0], nil
}

// savedCredentials are what login keeps.
type savedCredentials struct {
	Addr     string `json:"addr"`
	TLS      bool   `json:"tls,omitempty"` // --tls at login
	Username string `json:"username"`
	Token    string `json:"token"`
}

// credentialsPath is $XDG_CONFIG_HOME/tokenservice/credentials.json, with
// $HOME/.config for an unset or relative XDG_CONFIG_HOME (XDG Base
// Directory Specification).
func credentialsPath(getenv func(string) string) (string, error) {
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set: no place for the credentials")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "tokenservice", "credentials.json"), nil
}

// loadCredentials reads the credentials file: nil if there is none. A file
// others may read is refused: the token in it is as good as a password.
func loadCredentials(path string) (*savedCredentials, error) {
	info, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if mode := info.Mode().Perm(); mode&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable or writable by others (mode %04o): refusing to use the token or the address in it; "+
			"log out (tokenservice logout --addr ADDR, naming the server you logged in to: it revokes the token and deletes the file) and log in again", path, mode)
	}
	return readCredentials(path)
}

// readCredentials reads the credentials file whatever its mode.
func readCredentials(path string) (*savedCredentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c savedCredentials
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// saveCredentials writes the file, mode 0600 in a 0700 directory, whole or
// not at all.
func saveCredentials(path string, c *savedCredentials) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// parseLifetime reads a duration flag (flag is its name, for the message):
// a Go duration, or whole days ("30d"); 0 means none.
func parseLifetime(flag, s string) (time.Duration, error) {
	bad := fmt.Errorf("%s %q: want a duration such as 30d, 12h or 90m", flag, s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, bad
	}
	return d, nil
}
