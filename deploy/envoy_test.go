package deploy

import (
	"os"
	"strings"
	"testing"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	// The filters' typed configs, so their Any payloads decode.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
)

// TestEnvoyFilters decodes each Envoy example strictly into Envoy's own API
// (go-control-plane's generated types), so an unknown or misspelt field
// fails, then runs Envoy's validation rules (protoc-gen-validate's) on it.
func TestEnvoyFilters(t *testing.T) {
	for _, file := range []string{"envoy-jwt-authn.yaml", "envoy-ext-authz.yaml", "envoy-ext-authz-http.yaml"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var filter hcm.HttpFilter
		if err := protojson.Unmarshal(js, &filter); err != nil {
			t.Errorf("%s is not an Envoy HttpFilter: %v", file, err)
			continue
		}
		if err := filter.ValidateAll(); err != nil {
			t.Errorf("%s: %v", file, err)
		}
		inner, err := filter.GetTypedConfig().UnmarshalNew()
		if err != nil {
			t.Errorf("%s: typed_config: %v", file, err)
			continue
		}
		if v, ok := inner.(interface{ ValidateAll() error }); !ok {
			t.Errorf("%s: %T has no validation rules", file, inner)
		} else if err := v.ValidateAll(); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
}

// TestEnvoyUnderscoreAdvice: the connection manager setting the ext_authz
// example recommends is in its comment as written here, and is valid
// Envoy configuration.
func TestEnvoyUnderscoreAdvice(t *testing.T) {
	const snippet = "common_http_protocol_options:\n  headers_with_underscores_action: REJECT_REQUEST\n"
	raw, err := os.ReadFile("envoy-ext-authz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var commented strings.Builder
	for _, line := range strings.Split(snippet, "\n") {
		if line != "" {
			commented.WriteString("#   " + line + "\n")
		}
	}
	if !strings.Contains(string(raw), commented.String()) {
		t.Errorf("envoy-ext-authz.yaml does not recommend, as a comment:\n%s", commented.String())
	}
	js, err := yaml.YAMLToJSON([]byte(snippet))
	if err != nil {
		t.Fatal(err)
	}
	var m hcm.HttpConnectionManager
	if err := protojson.Unmarshal(js, &m); err != nil {
		t.Fatalf("the advice is not HttpConnectionManager configuration: %v", err)
	}
	if got := m.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction().String(); got != "REJECT_REQUEST" {
		t.Errorf("headers_with_underscores_action %s", got)
	}
}
