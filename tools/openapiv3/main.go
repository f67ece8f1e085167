// Command openapiv3 writes the API's one OpenAPI document, in OpenAPI 2 and
// 3, from the OpenAPI 2 documents protoc-gen-openapiv2 generates, one per
// proto file. `make generate` runs it.
//
// Usage: go run ./tools/openapiv3 PARTS BASE OUT.swagger.json OUT.openapi.json [EXTRA.openapi.yaml ...]
//
//   - PARTS is the directory protoc-gen-openapiv2 wrote into; every
//     *.swagger.json under it is merged (paths, definitions, tags), so a
//     service in a proto file of its own is served with the rest.
//   - BASE (a path under PARTS) is the document of the file that declares
//     the API's title and security schemes (api.proto).
//   - Each operation's security and error answers come from its method's
//     access rule (pkg/access): 400 and 503 for every operation, 401 for one
//     that takes a credential, 403 for one that needs a scope or an admin,
//     415 for one with a JSON body, and those the rule declares.
//   - OpenAPI 3 is converted with kin-openapi's converter, and given the
//     bearer scheme OpenAPI 3 has (type http, scheme bearer), so Swagger UI
//     sends "Bearer " itself.
//   - Each EXTRA is an OpenAPI 3 document of endpoints the protos do not
//     describe (the OAuth 2 ones, which are HTTP only); its paths, tags and
//     components are merged in, and a name both define is an error.
//
// (protoc-gen-openapiv3, grpc-gateway's own, is alpha in v2.33 and has no
// options for per-operation responses or examples, which the spec needs;
// protoc-gen-openapiv2's allow_merge overwrites one file's paths with the
// next's.)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"

	"github.com/tokenservice/tokenservice/pkg/access"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

func main() {
	if len(os.Args) < 5 {
		fmt.Fprintln(os.Stderr, "usage: openapiv3 PARTS BASE OUT.swagger.json OUT.openapi.json [EXTRA.openapi.yaml ...]")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5:]...); err != nil {
		fmt.Fprintln(os.Stderr, "openapiv3:", err)
		os.Exit(1)
	}
}

func run(parts, base, outV2, outV3 string, extras ...string) error {
	v2, err := mergeParts(parts, base)
	if err != nil {
		return err
	}
	rules, err := access.Rules()
	if err != nil {
		return err
	}
	if err := applyRules(v2, rules); err != nil {
		return err
	}
	if err := writeJSON(outV2, v2); err != nil {
		return err
	}
	v3, err := toV3(v2)
	if err != nil {
		return err
	}
	for _, extra := range extras {
		if err := merge(v3, extra); err != nil {
			return fmt.Errorf("%s: %w", extra, err)
		}
	}
	if err := v3.Validate(context.Background()); err != nil {
		return fmt.Errorf("the OpenAPI 3 document is invalid: %w", err)
	}
	return writeJSON(outV3, v3)
}

func writeJSON(path string, doc any) error {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readV2(path string) (*openapi2.T, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc openapi2.T
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &doc, nil
}

// mergeParts merges every OpenAPI 2 document under dir into base's: paths
// (each in one file only), definitions (one name, one schema: the messages
// files share, google.rpc.Status among them, are the same in each) and tags.
func mergeParts(dir, base string) (*openapi2.T, error) {
	doc, err := readV2(filepath.Join(dir, base))
	if err != nil {
		return nil, err
	}
	if doc.Paths == nil {
		doc.Paths = map[string]*openapi2.PathItem{}
	}
	if doc.Definitions == nil {
		doc.Definitions = map[string]*openapi2.SchemaRef{}
	}
	var files []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".swagger.json") && path != filepath.Join(dir, base) {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	for _, f := range files {
		part, err := readV2(f)
		if err != nil {
			return nil, err
		}
		for p, item := range part.Paths {
			if _, ok := doc.Paths[p]; ok {
				return nil, fmt.Errorf("%s: path %s is in another proto file too", f, p)
			}
			doc.Paths[p] = item
		}
		for name, schema := range part.Definitions {
			if have, ok := doc.Definitions[name]; ok && !sameJSON(have, schema) {
				return nil, fmt.Errorf("%s: definition %s differs from another proto file's (give the message another name)", f, name)
			}
			doc.Definitions[name] = schema
		}
		for _, tag := range part.Tags {
			if doc.Tags.Get(tag.Name) == nil {
				doc.Tags = append(doc.Tags, tag)
			}
		}
	}
	return doc, nil
}

func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	var va, vb any
	return errA == nil && errB == nil && json.Unmarshal(ja, &va) == nil && json.Unmarshal(jb, &vb) == nil && reflect.DeepEqual(va, vb)
}

// optionalSecurity marks, in the OpenAPI 2 document, an operation whose
// Bearer credential is optional (OpenAPI 2 cannot say so; toV3 does).
const optionalSecurity = "x-security-optional"

// statusSchema is the body of every error answer: google.rpc.Status.
const statusSchema = "#/definitions/Status"

// The answers every operation may give.
var (
	invalid = errorAnswer{400, "The request is invalid: the message says what to fix; a google.rpc.BadRequest names each field at fault.",
		`{"code": 3, "message": "expireTime: must be in the future", "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "expireTime", "description": "must be in the future"}]}]}`}
	unavailable = errorAnswer{503, "The service is starting or its database does not answer: retry after the seconds Retry-After (and the google.rpc.RetryInfo) gives.",
		errorExample(codes.Unavailable, "the database is unavailable: retry shortly", domain.ReasonUnavailable)}
	notJSON = errorAnswer{415, "The body is not JSON: send it with Content-Type: application/json.",
		`{"code": 3, "message": "the request body must be JSON, sent with Content-Type: application/json, not \"text/plain\"", "details": []}`}
	unauthenticatedExample = errorExample(codes.Unauthenticated, domain.ErrUnauthenticated.Message, domain.ReasonInvalidCredentials)
)

type errorAnswer struct {
	status              int
	description, sample string
}

// applyRules gives each operation the security and error answers of its
// method's access rule, found by its operationId (Service_Method).
func applyRules(doc *openapi2.T, rules []access.Rule) error {
	byOperation := map[string]access.Rule{}
	for _, r := range rules {
		service, method, _ := strings.Cut(strings.TrimPrefix(r.Method, "/"), "/")
		byOperation[service[strings.LastIndex(service, ".")+1:]+"_"+method] = r
	}
	for p, item := range doc.Paths {
		for verb, op := range item.Operations() {
			r, ok := byOperation[op.OperationID]
			if !ok {
				return fmt.Errorf("%s %s: no method's access rule names operation %q", verb, p, op.OperationID)
			}
			op.Responses.Delete("default") // the generator's catch-all: the answers follow
			op.Security = security(r)
			if r.Credential == access.BearerOrPasswordInBody || r.Credential == access.APIToken {
				if op.Extensions == nil {
					op.Extensions = map[string]any{}
				}
				op.Extensions[optionalSecurity] = true
			}
			answers := []errorAnswer{invalid, unavailable}
			if a, ok := unauthenticated(r); ok {
				answers = append(answers, a)
			}
			if a, ok := forbidden(r); ok {
				answers = append(answers, a)
			}
			if slices.ContainsFunc(op.Parameters, func(p *openapi2.Parameter) bool { return p.In == "body" }) {
				answers = append(answers, notJSON)
			}
			for _, e := range r.Errors {
				if e.Status != 403 { // folded into forbidden's
					answers = append(answers, errorAnswer{e.Status, e.Description, e.Example})
				}
			}
			for _, a := range answers {
				key := strconv.Itoa(a.status)
				if op.Responses.Value(key) != nil {
					return fmt.Errorf("%s: answer %s declared twice", r.Method, key)
				}
				resp := &openapi2.Response{Description: a.description, Schema: &openapi2.SchemaRef{Ref: statusSchema}}
				if a.sample != "" {
					var v any
					if err := json.Unmarshal([]byte(a.sample), &v); err != nil {
						return fmt.Errorf("%s: answer %s's example is not JSON: %w", r.Method, key, err)
					}
					if err := checkExampleCode(a.status, v); err != nil {
						return fmt.Errorf("%s: answer %s's example: %w", r.Method, key, err)
					}
					resp.Examples = map[string]any{"application/json": v}
				}
				op.Responses.Set(key, resp)
			}
		}
	}
	if _, ok := doc.Definitions["Status"]; !ok {
		return fmt.Errorf("no definition of google.rpc.Status: protoc-gen-openapiv2 writes one with its default errors (buf.gen.yaml)")
	}
	return nil
}

// checkExampleCode checks that an example google.rpc.Status carries the
// gRPC code the gateway answers the HTTP status for (runtime.HTTPStatusFromCode),
// or, for a 415, which the REST checks answer before the gateway, INVALID_ARGUMENT.
func checkExampleCode(httpStatus int, example any) error {
	code, _ := example.(map[string]any)["code"].(float64)
	got := runtime.HTTPStatusFromCode(codes.Code(code))
	if codes.Code(code) == codes.InvalidArgument && httpStatus == 415 {
		got = 415
	}
	if got != httpStatus {
		return fmt.Errorf("its code %v is answered with HTTP %d, not %d", codes.Code(code), got, httpStatus)
	}
	return nil
}

func security(r access.Rule) *openapi2.SecurityRequirements {
	s := openapi2.SecurityRequirements{}
	if r.Credential != access.None {
		s = append(s, map[string][]string{"Bearer": {}})
	}
	if r.Basic {
		s = append(s, map[string][]string{"Basic": {}})
	}
	return &s
}

func unauthenticated(r access.Rule) (errorAnswer, bool) {
	const oneAnswer = " (missing, malformed, wrong, expired or deleted: one answer for all), with a WWW-Authenticate: Bearer challenge."
	switch r.Credential {
	case access.None:
		return errorAnswer{}, false
	case access.APIToken:
		return errorAnswer{401, "No valid API token, in the body or as the bearer" + oneAnswer, unauthenticatedExample}, true
	case access.BearerOrPasswordInBody:
		return errorAnswer{401, "No valid credential: a bearer, or a username and password in the body" + oneAnswer, unauthenticatedExample}, true
	}
	d := "No valid credential" + oneAnswer
	if r.Basic {
		d = "No valid credential: a bearer, or a username and password as HTTP Basic credentials" + oneAnswer
	}
	return errorAnswer{401, d, unauthenticatedExample}, true
}

// forbidden is the 403 answer: the rule's own reasons (a scope, an admin)
// and those the method declares.
func forbidden(r access.Rule) (errorAnswer, bool) {
	var reasons []string
	example := ""
	for _, e := range r.Errors {
		if e.Status == 403 {
			reasons = append(reasons, strings.TrimSuffix(e.Description, "."))
			example = e.Example
		}
	}
	if r.Scope != "" {
		reasons = append(reasons, fmt.Sprintf("the credential lacks the scope %s (INSUFFICIENT_SCOPE)", r.Scope))
		if example == "" {
			example = errorExample(codes.PermissionDenied, access.InsufficientScopeMessage(r.Scope, r.Method), domain.ReasonInsufficientScope)
		}
	}
	if r.AdminOnly {
		reasons = append(reasons, "the caller is not an admin (ADMIN_REQUIRED)")
		if example == "" {
			example = errorExample(codes.PermissionDenied, access.AdminRequiredMessage(r.Method), domain.ReasonAdminRequired)
		}
	}
	if len(reasons) == 0 {
		return errorAnswer{}, false
	}
	d := strings.Join(reasons, "; or ")
	return errorAnswer{403, strings.ToUpper(d[:1]) + d[1:] + ".", example}, true
}

// errorExample is the google.rpc.Status the server answers with, as JSON.
func errorExample(code codes.Code, message, reason string) string {
	b, _ := json.Marshal(map[string]any{"code": int(code), "message": message, "details": []any{map[string]string{
		"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "tokenservice"}}})
	return string(b)
}

// toV3 converts the OpenAPI 2 document to OpenAPI 3.
func toV3(v2 *openapi2.T) (*openapi3.T, error) {
	v3, err := openapi2conv.ToV3(v2)
	if err != nil {
		return nil, fmt.Errorf("converting to OpenAPI 3: %w", err)
	}
	// OpenAPI 2 knows only API keys: an HTTP bearer scheme lets clients
	// (and Swagger UI's Authorize) take the token alone and add "Bearer ".
	bearer, ok := v3.Components.SecuritySchemes["Bearer"]
	if !ok || bearer.Value == nil {
		return nil, fmt.Errorf("the document has no Bearer security scheme")
	}
	bearer.Value = &openapi3.SecurityScheme{
		Type:         "http",
		Scheme:       "bearer",
		BearerFormat: "tks_ API token or JWT access token",
		Description:  "An API token (tks_...) or an access token from POST /v1alpha1/access-tokens. Clients send it as \"Authorization: Bearer <token>\".",
	}
	// An optional bearer is an empty requirement beside the Bearer one.
	for _, item := range v3.Paths.Map() {
		for _, op := range item.Operations() {
			if optional, _ := op.Extensions[optionalSecurity].(bool); optional {
				op.Security = &openapi3.SecurityRequirements{{"Bearer": []string{}}, {}}
				delete(op.Extensions, optionalSecurity)
			}
		}
	}
	return v3, nil
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
