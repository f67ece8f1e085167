package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"

	"github.com/tokenservice/tokenservice/pkg/access"
)

func writePart(t *testing.T, dir, name, doc string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}

const base = `{"swagger": "2.0", "info": {"title": "T", "version": "v"}, "paths": {},
  "securityDefinitions": {"Bearer": {"type": "apiKey", "name": "Authorization", "in": "header"}}}`

func op(id string) string {
	return `{"operationId": "` + id + `", "responses": {"200": {"description": "OK"}, "default": {"description": "x", "schema": {"$ref": "#/definitions/Status"}}}}`
}

// A service in a proto file of its own is merged in; two files claiming a
// path, or naming different schemas alike, are refused.
func TestMergeParts(t *testing.T) {
	dir := t.TempDir()
	writePart(t, dir, "a/api.swagger.json", base)
	writePart(t, dir, "a/one.swagger.json", `{"swagger": "2.0", "info": {"title": "a/one.proto", "version": "x"},
		"tags": [{"name": "One"}], "paths": {"/v1/one": {"get": `+op("One_Get")+`}},
		"definitions": {"Status": {"type": "object"}}}`)
	writePart(t, dir, "b/two.swagger.json", `{"swagger": "2.0", "info": {"title": "b/two.proto", "version": "x"},
		"tags": [{"name": "Two"}], "paths": {"/v1/two": {"get": `+op("Two_Get")+`}},
		"definitions": {"Status": {"type": "object"}}}`)
	doc, err := mergeParts(dir, "a/api.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Info.Title != "T" || doc.Paths["/v1/one"] == nil || doc.Paths["/v1/two"] == nil || len(doc.Tags) != 2 || doc.SecurityDefinitions["Bearer"] == nil {
		t.Errorf("merged: title %q, paths %v, tags %v", doc.Info.Title, doc.Paths, doc.Tags)
	}

	writePart(t, dir, "c/three.swagger.json", `{"swagger": "2.0", "info": {"title": "c", "version": "x"},
		"paths": {"/v1/one": {"post": `+op("Three_Post")+`}}}`)
	if _, err := mergeParts(dir, "a/api.swagger.json"); err == nil || !strings.Contains(err.Error(), "/v1/one") {
		t.Errorf("two files with one path: %v", err)
	}
	os.Remove(filepath.Join(dir, "c/three.swagger.json"))
	writePart(t, dir, "c/three.swagger.json", `{"swagger": "2.0", "info": {"title": "c", "version": "x"},
		"definitions": {"Status": {"type": "string"}}}`)
	if _, err := mergeParts(dir, "a/api.swagger.json"); err == nil || !strings.Contains(err.Error(), "Status") {
		t.Errorf("two schemas named alike: %v", err)
	}
}

// Each operation gets the security and answers of its rule; an operation
// no rule names is refused.
func TestApplyRules(t *testing.T) {
	rules := []access.Rule{
		{Method: "/p.One/Get", Credential: access.Bearer, Scope: "x:read", Basic: true,
			Errors: []access.ErrorAnswer{{Status: 404, Description: "No such thing."}}},
		{Method: "/p.Two/Get", Credential: access.None},
	}
	dir := t.TempDir()
	writePart(t, dir, "api.swagger.json", `{"swagger": "2.0", "info": {"title": "T", "version": "v"},
		"paths": {"/v1/one": {"get": `+op("One_Get")+`}, "/v1/two": {"get": `+op("Two_Get")+`}},
		"definitions": {"Status": {"type": "object"}}}`)
	doc, err := mergeParts(dir, "api.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := applyRules(doc, rules); err != nil {
		t.Fatal(err)
	}
	answers := func(o *openapi2.Operation) string {
		var keys []string
		for k := range o.Responses.Map() {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return strings.Join(keys, " ")
	}
	one, two := doc.Paths["/v1/one"].Get, doc.Paths["/v1/two"].Get
	if got := answers(one); got != "200 400 401 403 404 503" {
		t.Errorf("a scoped bearer method answers %s", got)
	}
	if !strings.Contains(one.Responses.Value("403").Description, "x:read") {
		t.Errorf("its 403 does not name the scope: %s", one.Responses.Value("403").Description)
	}
	if one.Security == nil || len(*one.Security) != 2 {
		t.Errorf("a method taking Basic has security %v, want Bearer or Basic", one.Security)
	}
	if got := answers(two); got != "200 400 503" {
		t.Errorf("a public method answers %s", got)
	}
	if two.Security == nil || len(*two.Security) != 0 {
		t.Errorf("a public method has security %v, want none", two.Security)
	}

	if doc, err = mergeParts(dir, "api.swagger.json"); err != nil {
		t.Fatal(err)
	}
	if err := applyRules(doc, rules[:1]); err == nil || !strings.Contains(err.Error(), "Two_Get") {
		t.Errorf("an operation without a rule: %v", err)
	}
}

// An example whose code the gateway would not answer with its status is
// refused: a 404 declared with a PERMISSION_DENIED body is a typo.
func TestApplyRulesChecksExampleCodes(t *testing.T) {
	dir := t.TempDir()
	writePart(t, dir, "api.swagger.json", `{"swagger": "2.0", "info": {"title": "T", "version": "v"},
		"paths": {"/v1/one": {"get": `+op("One_Get")+`}}, "definitions": {"Status": {"type": "object"}}}`)
	for example, ok := range map[string]bool{
		`{"code": 5, "message": "not found"}`: true,
		`{"code": 7, "message": "denied"}`:    false,
	} {
		doc, err := mergeParts(dir, "api.swagger.json")
		if err != nil {
			t.Fatal(err)
		}
		err = applyRules(doc, []access.Rule{{Method: "/p.One/Get", Credential: access.Bearer,
			Errors: []access.ErrorAnswer{{Status: 404, Description: "No such thing.", Example: example}}}})
		if (err == nil) != ok {
			t.Errorf("a 404 with the example %s: %v", example, err)
		}
	}
}
