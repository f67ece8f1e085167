// Package tokenservice embeds the generated artifacts the binary serves.
package tokenservice

import _ "embed"

// OpenAPISpec is the generated OpenAPI v2 spec of the REST API (openapi/).
//
//go:embed openapi/priv/tokenservice/v1alpha1/tokenservice.swagger.json
var OpenAPISpec []byte
