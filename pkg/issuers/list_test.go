package issuers

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseListAccepts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Issuer
	}{
		{"", nil},
		{"  ", nil},
		{"https://token.actions.githubusercontent.com", []Issuer{{URL: "https://token.actions.githubusercontent.com"}}},
		{" https://gitlab.com , https://kubernetes.default.svc.cluster.local=/etc/jwks/keys.json ", []Issuer{
			{URL: "https://gitlab.com"},
			{URL: "https://kubernetes.default.svc.cluster.local", JWKSFile: "/etc/jwks/keys.json"},
		}},
		{"https://example.com/path/=/etc/a=b.json", []Issuer{{URL: "https://example.com/path/", JWKSFile: "/etc/a=b.json"}}},
		{"http://127.0.0.1:8080,http://[::1]:9000,http://localhost,http://127.9.9.9/x", []Issuer{
			{URL: "http://127.0.0.1:8080"}, {URL: "http://[::1]:9000"}, {URL: "http://localhost"}, {URL: "http://127.9.9.9/x"},
		}},
	} {
		got, err := ParseList(tc.in)
		if err != nil {
			t.Errorf("ParseList(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseList(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParseListRefuses(t *testing.T) {
	for _, tc := range []struct {
		in, entry, why string
	}{
		{"http://example.com", "http://example.com", "loopback"},
		{"http://10.0.0.1", "http://10.0.0.1", "loopback"},
		{"http://localhost.evil.com", "http://localhost.evil.com", "loopback"},
		{"ftp://example.com", "ftp://example.com", "https"},
		{"example.com", "example.com", "https"},
		{"https://", "https://", "host"},
		{"https://example.com?x=1", "https://example.com?x=1", "query"},
		{"https://example.com?", "https://example.com?", "query"},
		{"https://example.com#a", "https://example.com#a", "fragment"},
		{"https://example.com#", "https://example.com#", "fragment"},
		{"https://user:pw@example.com", "https://user:pw@example.com", "password"},
		{"https://a.example,https://a.example", "https://a.example", "already listed"},
		{"https://a.example,https://a.example/", "https://a.example/", "already listed"},
		{"https://a.example,,https://b.example", "2", "empty"},
		{"https://a.example=", "https://a.example=", "no JWKS file"},
		{"=/etc/keys.json", "=/etc/keys.json", "no URL"},
	} {
		_, err := ParseList(tc.in)
		if err == nil {
			t.Errorf("ParseList(%q): no error", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.entry) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("ParseList(%q): %q, want it to name %q and say %q", tc.in, err, tc.entry, tc.why)
		}
	}
}

func TestNewRefusesWhatParseListRefuses(t *testing.T) {
	// A Config built by hand gets the same rules as the operator's list.
	for _, u := range []string{"http://example.com", "https://example.com?x", ""} {
		if _, err := New(Config{Issuers: []Issuer{{URL: u}}}); err == nil {
			t.Errorf("New with issuer %q: no error", u)
		}
	}
	if _, err := New(Config{Issuers: []Issuer{{URL: "https://a.example"}, {URL: "https://a.example"}}}); err == nil {
		t.Error("New with an issuer twice: no error")
	}
}

func TestURLsAndTrusted(t *testing.T) {
	s := mustSet(t, nil, Config{}, Issuer{URL: "https://b.example"}, Issuer{URL: "https://a.example/"})
	if diff := cmp.Diff([]string{"https://b.example", "https://a.example/"}, s.URLs()); diff != "" {
		t.Errorf("URLs (-want +got):\n%s", diff)
	}
	for iss, want := range map[string]bool{
		"https://b.example": true, "https://a.example/": true,
		"https://a.example": false, "https://B.example": false, "https://b.example/": false, "": false,
	} {
		if got := s.Trusted(iss); got != want {
			t.Errorf("Trusted(%q) = %v, want %v", iss, got, want)
		}
	}
}
