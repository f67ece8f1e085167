// Command apitable writes the README's table of the API's methods (route,
// credential, scope) and its table of the scopes they need, from each
// method's google.api.http route (pkg/httprule) and access rule
// (pkg/access), between the README's markers. `make generate` runs it, and
// `make check-generate` fails when the README's tables are stale, so a
// method added to a proto appears in them with no hand edit.
//
// Usage: go run ./tools/apitable README.md
package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tokenservice/tokenservice/pkg/access"
	"github.com/tokenservice/tokenservice/pkg/httprule"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: apitable README.md")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "apitable:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	readme, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := rewrite(readme)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}

// rewrite returns readme with the text between each pair of markers
// replaced by the table it names.
func rewrite(readme []byte) ([]byte, error) {
	rules, err := access.Rules()
	if err != nil {
		return nil, err
	}
	for name, table := range map[string]string{"api-table": methodTable(rules, httprule.All()), "scope-table": scopeTable(rules)} {
		if readme, err = replaceBetween(readme, name, table); err != nil {
			return nil, err
		}
	}
	return readme, nil
}

// The markers around a generated table.
func markers(name string) (begin, end string) {
	return fmt.Sprintf("<!-- BEGIN %s: make generate writes this table from the protos' routes and access rules; edit those, not this -->\n", name),
		fmt.Sprintf("<!-- END %s -->", name)
}

func replaceBetween(doc []byte, name, content string) ([]byte, error) {
	begin, end := markers(name)
	i := bytes.Index(doc, []byte(begin))
	j := bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		return nil, fmt.Errorf("no %q ... %q markers, in that order", strings.TrimSpace(begin), end)
	}
	return slices.Concat(doc[:i+len(begin)], []byte(content), doc[j:]), nil
}

// methodTable is one row per method: its name, REST route, the credential
// it takes and the scope it needs.
func methodTable(rules []access.Rule, routes httprule.Table) string {
	var b strings.Builder
	b.WriteString("| method | REST | credential | scope |\n| --- | --- | --- | --- |\n")
	for _, r := range rules {
		route, ok := routes.ByMethod(r.Method)
		if !ok {
			continue // gRPC only
		}
		scope := "none"
		if r.Scope != "" {
			scope = "`" + r.Scope + "`"
		}
		fmt.Fprintf(&b, "| %s | `%s %s` | %s | %s |\n", r.Name(), route.Verb, restTemplate(route), credential(r), scope)
	}
	return b.String()
}

// restTemplate writes a route's template with its variables named as the
// REST API names them (the fields' JSON names): {token_id} as {tokenId}.
func restTemplate(route httprule.Route) string {
	var b strings.Builder
	rest := route.Template
	for {
		open, end := strings.IndexByte(rest, '{'), strings.IndexByte(rest, '}')
		if open < 0 || end < open {
			b.WriteString(rest)
			return b.String()
		}
		name := rest[open+1 : end]
		if f := route.Method.Input().Fields().ByName(protoreflect.Name(name)); f != nil {
			name = f.JSONName()
		}
		b.WriteString(rest[:open] + "{" + name + "}")
		rest = rest[end+1:]
	}
}

func credential(r access.Rule) string {
	var s string
	switch r.Credential {
	case access.None:
		return "none: public"
	case access.APIToken:
		return "the API token, in the body or as the bearer"
	case access.BearerOrPasswordInBody:
		s = "a bearer, or `username` + `password` in the body"
	default:
		s = "a bearer"
		if r.Basic {
			s += ", or a password as HTTP Basic"
		}
	}
	if r.AdminOnly {
		s += " (an admin's)"
	}
	return s
}

// scopeTable is one row per scope a method needs, with those methods.
func scopeTable(rules []access.Rule) string {
	byScope := map[string][]string{}
	for _, r := range rules {
		if r.Scope != "" {
			byScope[r.Scope] = append(byScope[r.Scope], r.Name())
		}
	}
	var b strings.Builder
	b.WriteString("| scope | lets a credential call |\n| --- | --- |\n")
	for _, scope := range slices.Sorted(maps.Keys(byScope)) {
		fmt.Fprintf(&b, "| `%s` | %s |\n", scope, strings.Join(byScope[scope], ", "))
	}
	return b.String()
}
