package sso

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// checkIssuer accepts an https URL, or http on a loopback host (a provider
// on the same machine: tests, development).
func checkIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("sso: the issuer %q is not a URL without query or fragment", issuer)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("sso: the issuer must be an https URL (http only on a loopback address), not %q", issuer)
}

// BoundedClient returns the HTTP client the provider is reached with: each
// exchange within timeout, each answer at most maxBytes (a longer one is
// an error, not a truncated document), and no redirect followed (a
// provider's endpoints answer where its discovery says they are).
func BoundedClient(timeout time.Duration, maxBytes int64) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: limitedTransport{base: http.DefaultTransport, max: maxBytes},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("the identity provider redirected: not followed")
		},
	}
}

type limitedTransport struct {
	base http.RoundTripper
	max  int64
}

func (t limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: t.max}
	return resp, nil
}

// errTooLarge is what reading past the limit returns.
var errTooLarge = errors.New("the identity provider's answer is too large")

type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body at the limit from a longer one.
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			return 0, errTooLarge
		}
		return b.ReadCloser.Read(p)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
