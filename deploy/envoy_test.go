package deploy

import (
	"os"
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
	for _, file := range []string{"envoy-jwt-authn.yaml", "envoy-ext-authz.yaml"} {
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
