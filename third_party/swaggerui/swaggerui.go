// Package swaggerui embeds Swagger UI's browser assets, copied unchanged from
// the npm package swagger-ui-dist 5.35.0 (see README.md), so /docs needs no CDN.
package swaggerui

import "embed"

// Dist holds dist/: swagger-ui-bundle.js, swagger-ui.css, favicons, licenses.
//
//go:embed dist
var Dist embed.FS
