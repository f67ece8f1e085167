// Command openapiv3 writes the OpenAPI 3 document of the API from the
// OpenAPI 2 one protoc-gen-openapiv2 generates, with kin-openapi's
// converter, and gives it the bearer scheme OpenAPI 3 has (type http, scheme
// bearer), so Swagger UI sends "Bearer " itself. `make generate` runs it.
//
// Usage: go run ./tools/openapiv3 IN.swagger.json OUT.openapi.json [EXTRA.openapi.yaml ...]
//
// Each EXTRA is an OpenAPI 3 document of endpoints the proto does not
// describe (the OAuth 2 ones, which are HTTP only); its paths, tags and
// components are merged in, and a name both define is an error.
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
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: openapiv3 IN.swagger.json OUT.openapi.json [EXTRA.openapi.yaml ...]")
		os.Exit(2)
	}
	if err := convert(os.Args[1], os.Args[2], os.Args[3:]...); err != nil {
		fmt.Fprintln(os.Stderr, "openapiv3:", err)
		os.Exit(1)
	}
}

// optionalSecurity marks, in the OpenAPI 2 document, an operation whose
// Bearer credential is optional.
const optionalSecurity = "x-security-optional"

func convert(in, out string, extras ...string) error {
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
	for _, extra := range extras {
		if err := merge(v3, extra); err != nil {
			return fmt.Errorf("%s: %w", extra, err)
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

// merge adds the paths, tags, schemas and security schemes of the OpenAPI 3
// document at path to v3.
func merge(v3 *openapi3.T, path string) error {
	extra, err := openapi3.NewLoader().LoadFromFile(path)
	if err != nil {
		return err
	}
	// Validated once merged: it may use the proto's security schemes.
	for p, item := range extra.Paths.Map() {
		if v3.Paths.Value(p) != nil {
			return fmt.Errorf("path %s is in the proto's document too", p)
		}
		v3.Paths.Set(p, item)
	}
	v3.Tags = append(v3.Tags, extra.Tags...)
	if v3.Components.Schemas == nil {
		v3.Components.Schemas = openapi3.Schemas{}
	}
	for name, schema := range extra.Components.Schemas {
		if _, ok := v3.Components.Schemas[name]; ok {
			return fmt.Errorf("schema %s is in the proto's document too", name)
		}
		v3.Components.Schemas[name] = schema
	}
	for name, scheme := range extra.Components.SecuritySchemes {
		if _, ok := v3.Components.SecuritySchemes[name]; ok {
			return fmt.Errorf("security scheme %s is in the proto's document too", name)
		}
		v3.Components.SecuritySchemes[name] = scheme
	}
	return nil
}
