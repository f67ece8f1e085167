// Package tokenservice embeds the generated artifacts the binary serves.
package tokenservice

import _ "embed"

// OpenAPISpec is the generated OpenAPI 3 document of the REST API
// (openapi/, made from the OpenAPI 2 one by tools/openapiv3).
//
//go:embed openapi/priv/tokenservice/v1alpha1/tokenservice.openapi.json
var OpenAPISpec []byte

// SwaggerSpec is the generated OpenAPI 2 (Swagger 2.0) document, for tools
// that need that version.
//
//go:embed openapi/priv/tokenservice/v1alpha1/tokenservice.swagger.json
var SwaggerSpec []byte
