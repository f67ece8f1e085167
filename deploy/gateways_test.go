package deploy

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// identityHeaders are the headers tokenservice's forward-auth endpoint
// answers with (pkg/bearer), which every gateway example copies upstream.
var identityHeaders = []string{"X-Tokenservice-User-Id", "X-Tokenservice-Username", "X-Tokenservice-Scopes", "X-Tokenservice-Token-Id"}

// forwardAuthURL checks that u is the service's forward-auth endpoint on its
// in-cluster HTTP address, with only the endpoint's own parameters.
func forwardAuthURL(t *testing.T, file, u string) {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil || parsed.Path != "/forward-auth" || parsed.Host != "tokenservice.tokenservice.svc.cluster.local:8080" {
		t.Errorf("%s: %q is not the forward-auth endpoint (%v)", file, u, err)
		return
	}
	for name := range parsed.Query() {
		if name != "scope" && name != "audience" {
			t.Errorf("%s: %q: the endpoint takes no %q", file, u, name)
		}
	}
}

// TestGatewayManifests decodes the Kubernetes gateway examples strictly:
// ingress-nginx's Ingress as Kubernetes' own type, with only annotations
// ingress-nginx knows; Traefik's Middleware against its documented
// ForwardAuth fields (Traefik's module does not build here).
func TestGatewayManifests(t *testing.T) {
	t.Run("ingress-nginx", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join("gateways", "ingress-nginx.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var ing networkingv1.Ingress
		if err := decodeStrict(raw, &ing); err != nil {
			t.Fatal(err)
		}
		if ing.Kind != "Ingress" || ing.APIVersion != "networking.k8s.io/v1" {
			t.Errorf("%s/%s", ing.APIVersion, ing.Kind)
		}
		const prefix = "nginx.ingress.kubernetes.io/"
		known := []string{"auth-url", "auth-response-headers", "auth-keepalive", "auth-method", "auth-cache-key", "auth-cache-duration"}
		for k := range ing.Annotations {
			if !strings.HasPrefix(k, prefix) || !slices.Contains(known, strings.TrimPrefix(k, prefix)) {
				t.Errorf("annotation %q is none of ingress-nginx's auth annotations", k)
			}
		}
		forwardAuthURL(t, "ingress-nginx.yaml", ing.Annotations[prefix+"auth-url"])
		if got := strings.Split(ing.Annotations[prefix+"auth-response-headers"], ","); !slices.Equal(got, identityHeaders) {
			t.Errorf("auth-response-headers %q, want %q", got, identityHeaders)
		}
	})
	t.Run("traefik", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join("gateways", "traefik-middleware.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		// Traefik's documented ForwardAuth fields (doc.traefik.io,
		// middlewares/http/forwardauth), those the example may use.
		var mw struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				ForwardAuth struct {
					Address             string   `json:"address"`
					AuthResponseHeaders []string `json:"authResponseHeaders"`
					AuthRequestHeaders  []string `json:"authRequestHeaders"`
					TrustForwardHeader  bool     `json:"trustForwardHeader"`
				} `json:"forwardAuth"`
			} `json:"spec"`
		}
		if err := decodeStrict(raw, &mw); err != nil {
			t.Fatal(err)
		}
		fa := mw.Spec.ForwardAuth
		if mw.APIVersion != "traefik.io/v1alpha1" || mw.Kind != "Middleware" || mw.Metadata.Name == "" {
			t.Errorf("%s/%s %q", mw.APIVersion, mw.Kind, mw.Metadata.Name)
		}
		forwardAuthURL(t, "traefik-middleware.yaml", fa.Address)
		if !slices.Equal(fa.AuthResponseHeaders, identityHeaders) || !slices.Equal(fa.AuthRequestHeaders, []string{"Authorization"}) || fa.TrustForwardHeader {
			t.Errorf("forwardAuth %+v", fa)
		}
	})
}
