// Command openapiv3 writes the OpenAPI 3 document of the API from the
// OpenAPI 2 one protoc-gen-openapiv2 generates, with kin-openapi's
// converter, and gives it the bearer scheme OpenAPI 3 has (type http, scheme
// bearer), so Swagger UI sends "Bearer " itself. `make generate` runs it.
//
// Usage: go run ./tools/openapiv3 IN.swagger.json OUT.openapi.json
//
// (protoc-gen-openapiv3, grpc-gateway's own, is alpha in v2.33 and has no
// options for per-operation responses or examples, which the spec needs.)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: openapiv3 IN.swagger.json OUT.openapi.json")
		os.Exit(2)
	}
	if err := convert(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "openapiv3:", err)
		os.Exit(1)
	}
}

// optionalSecurity marks, in the OpenAPI 2 document, an operation whose
// Bearer credential is optional.
const optionalSecurity = "x-security-optional"

func convert(in, out string) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var v2 openapi2.T
	if err := json.Unmarshal(b, &v2); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	v3, err := openapi2conv.ToV3(&v2)
	if err != nil {
		return fmt.Errorf("converting %s: %w", in, err)
	}
	// OpenAPI 2 knows only API keys: an HTTP bearer scheme lets clients
	// (and Swagger UI's Authorize) take the token alone and add "Bearer ".
	bearer, ok := v3.Components.SecuritySchemes["Bearer"]
	if !ok || bearer.Value == nil {
		return fmt.Errorf("%s has no Bearer security scheme", in)
	}
	bearer.Value = &openapi3.SecurityScheme{
		Type:         "http",
		Scheme:       "bearer",
		BearerFormat: "tks_ API token or JWT access token",
		Description:  "An API token (tks_...) or an access token from POST /v1alpha1/access-tokens. Clients send it as \"Authorization: Bearer <token>\".",
	}
	// OpenAPI 2, as protoc-gen-openapiv2 writes it, cannot say that a
	// bearer is optional; operations that take a credential in the body
	// instead say so with x-security-optional, and OpenAPI 3 says it with an
	// empty requirement beside the Bearer one.
	for _, item := range v3.Paths.Map() {
		for _, op := range item.Operations() {
			if optional, _ := op.Extensions[optionalSecurity].(bool); optional {
				op.Security = &openapi3.SecurityRequirements{{"Bearer": []string{}}, {}}
				delete(op.Extensions, optionalSecurity)
			}
		}
	}
	if err := v3.Validate(context.Background()); err != nil {
		return fmt.Errorf("the OpenAPI 3 document is invalid: %w", err)
	}
	doc, err := json.MarshalIndent(v3, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(doc, '\n'), 0o644)
}
