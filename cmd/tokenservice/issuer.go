package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// The issuer is the service's public base URL: the access tokens' iss, and
// the base of every URL the discovery documents name (RFC 8414 section 2), so
// a client that follows them must reach this service there.

// defaultIssuer is the issuer of a service listening on httpAddr when
// --issuer is not given: http://localhost:<port> (https with TLS), with the
// address's host instead of localhost if it names one that is not a
// wildcard. A scheme's default port is left out, as RFC 3986 section 6.2.3
// normalizes it.
func defaultIssuer(httpAddr string, tls bool) (string, error) {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "", fmt.Errorf("--http-addr %q: %w", httpAddr, err)
	}
	if host == "" || isWildcard(host) {
		host = "localhost"
	}
	scheme, defaultPort := "http", "80"
	if tls {
		scheme, defaultPort = "https", "443"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}
	if port == defaultPort {
		u.Host = strings.TrimSuffix(u.Host, ":"+port)
	}
	return u.String(), nil
}

// issuerFromHTTPAddr is defaultIssuer, for an address whose port may be 0
// (a free port): it then listens, to name the port in the issuer, and
// returns the listener for the server to serve.
func issuerFromHTTPAddr(httpAddr string, tls bool) (string, net.Listener, error) {
	if _, port, err := net.SplitHostPort(httpAddr); err != nil || port != "0" {
		issuer, err := defaultIssuer(httpAddr, tls)
		return issuer, nil, err
	}
	lis, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return "", nil, fmt.Errorf("listening for HTTP: %w", err)
	}
	_, port, _ := net.SplitHostPort(lis.Addr().String())
	host, _, _ := net.SplitHostPort(httpAddr)
	issuer, err := defaultIssuer(net.JoinHostPort(host, port), tls)
	if err != nil {
		lis.Close()
		return "", nil, err
	}
	return issuer, lis, nil
}

// isWildcard reports whether host is an address that listens on every
// interface ("0.0.0.0", "::"): no client reaches the service there.
func isWildcard(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// issuerPortMismatch says what is wrong, or "", when the issuer names this
// host but another port than the one served (servedAddr, as listening): a
// client following the discovery documents (the JWKS, the token endpoint)
// would knock on the wrong port. An issuer on another host is taken to be a
// proxy's or a load balancer's public name, whose port may well differ.
func issuerPortMismatch(issuer, httpAddr, servedAddr string) string {
	u, err := url.Parse(issuer)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	_, servedPort, err := net.SplitHostPort(servedAddr)
	if err != nil {
		return ""
	}
	listenHost, _, _ := net.SplitHostPort(httpAddr)
	if !servesHost(u.Hostname(), listenHost) {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if port == servedPort {
		return ""
	}
	return fmt.Sprintf("--issuer %s names port %s, but REST is served on port %s (--http-addr %s): clients following the discovery documents to the JWKS and the token endpoint will not reach this service; leave --issuer out to derive it from --http-addr", issuer, port, servedPort, httpAddr)
}

// servesHost reports whether a client naming host reaches a listener on
// listenHost directly: host is this machine (localhost, a loopback
// address) or the very address listened on.
func servesHost(host, listenHost string) bool {
	if strings.EqualFold(host, "localhost") || strings.EqualFold(host, listenHost) {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.Equal(net.ParseIP(listenHost)))
}
