package issuers

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Issuer is one trusted issuer.
type Issuer struct {
	// URL is the issuer identifier, compared exactly with a token's iss and
	// with the issuer its discovery document names.
	URL string
	// JWKSFile, if set, is a local JWKS read instead of fetching discovery
	// and keys (a Kubernetes cluster whose keys are not reachable: mount
	// the key set as a ConfigMap). It is read again on an unknown kid at
	// most once per Config.RefreshInterval, so a rotated file is picked up.
	JWKSFile string
}

// ParseList reads the operator's list of trusted issuers (the flag or its
// environment variable): comma-separated entries, each `URL` or
// `URL=JWKS_FILE`, spaces around entries ignored. An empty or blank s is an
// empty list. Each URL must be https, or http on a loopback host
// (127.0.0.0/8, ::1, localhost), with no userinfo, query or fragment; a
// URL may appear once (a trailing slash does not make another). Errors name
// the entry.
func ParseList(s string) ([]Issuer, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var list []Issuer
	seen := make(map[string]string) // URL without a trailing slash -> entry
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("trusted issuer %d is empty (a stray comma?)", i+1)
		}
		// A URL here has no query, so its first "=" ends it; a file name
		// may hold "=" of its own.
		u, file, hasFile := strings.Cut(entry, "=")
		u, file = strings.TrimSpace(u), strings.TrimSpace(file)
		if hasFile && file == "" {
			return nil, fmt.Errorf("trusted issuer %q: no JWKS file after \"=\"", entry)
		}
		if err := checkIssuerURL(u); err != nil {
			return nil, fmt.Errorf("trusted issuer %q: %w", entry, err)
		}
		// Two spellings that differ only by a trailing slash fetch the same
		// discovery document, which can name only one of them.
		key := strings.TrimSuffix(u, "/")
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("trusted issuer %q: %s is already listed (as %q)", entry, u, prev)
		}
		seen[key] = entry
		list = append(list, Issuer{URL: u, JWKSFile: file})
	}
	return list, nil
}

// checkIssuerURL applies ParseList's rules to one issuer URL. RFC 8414 §2
// and OpenID Connect Discovery 1.0 §3 make an issuer an https URL with no
// query or fragment; keys fetched in plaintext are keys anyone on the path
// chooses, so http is allowed only where the path is this machine.
func checkIssuerURL(raw string) error {
	if raw == "" {
		return errors.New("no URL")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("not an https URL")
	case u.Opaque != "" || u.Host == "":
		return errors.New("not an absolute URL with a host (https://host/...)")
	case u.User != nil:
		return errors.New("a URL with a user name or password is not allowed")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("an issuer URL has no query (\"?\")")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("an issuer URL has no fragment (\"#\")")
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return errors.New("http is allowed only on a loopback host (127.0.0.0/8, ::1, localhost); use https")
	}
	return nil
}

// checkKeysURL applies the rules for a jwks_uri named by issuer's discovery
// document: https, or http on a loopback host when the issuer itself is
// http on a loopback host (a sidecar, a test).
func checkKeysURL(issuer, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Opaque != "" || u.Host == "":
		return errors.New("its jwks_uri is not an absolute URL")
	case u.User != nil:
		return errors.New("its jwks_uri has a user name or password")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()) && strings.HasPrefix(issuer, "http://"):
		return nil
	}
	return errors.New("its jwks_uri is not https")
}

// isLoopback says whether host is localhost (RFC 6761 §6.3) or a loopback
// IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
