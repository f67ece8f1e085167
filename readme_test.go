package tokenservice_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/access"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/pagetoken"
)

// The README states facts the code decides; these keep them the same.
func TestREADMEMatchesTheCode(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for what, want := range map[string]string{
		"the secret-scanner regex": auth.TokenPattern,
		"the default page size":    "50 a page by default",
		"the maximum page size":    "at most 250",
		"the note bound":           "at most 256 characters",
		"the password minimum":     "at least 8 characters",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not state %s: %q", what, want)
		}
	}
	if pagetoken.DefaultPageSize != 50 || pagetoken.MaxPageSize != 250 || domain.MinPasswordLen != 8 {
		t.Error("a limit changed: update README.md and this test together")
	}
}

// Every test the README's reliability section names exists.
func TestREADMEReliabilityNamesRealTests(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Reliability\n")
	if !ok {
		t.Fatal("README.md has no Reliability section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	defined := map[string]bool{}
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		for _, m := range regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)\w+)\(`).FindAllStringSubmatch(string(src), -1) {
			defined[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile("`((?:Test|Fuzz)\\w+)`").FindAllStringSubmatch(section, -1)
	if len(named) < 20 {
		t.Fatalf("the reliability section names only %d tests", len(named))
	}
	for _, m := range named {
		if !defined[m[1]] {
			t.Errorf("README.md names %s, which no test file defines", m[1])
		}
	}
}

// The README's verifier example is the one that compiles: every line of it
// stands in pkg/verifier/example_test.go.
func TestREADMEVerifierExampleCompiles(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("pkg/verifier/example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "A handler\nprotected in ten lines")
	_, block, ok2 := strings.Cut(after, "```go\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no verifier example")
	}
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		if !strings.Contains(string(example), strings.TrimSpace(line)) {
			t.Errorf("README's verifier example line %q is not in pkg/verifier/example_test.go", line)
		}
	}
}

// The README's API and Scopes tables say what each method's access rule in
// the protos says (pkg/access): every method has a row in the API table
// whose scope cell names its scope (or "none"), and the Scopes table lists,
// for each scope a method needs, exactly the methods that need it (notes in
// parentheses aside).
func TestREADMETablesFollowTheAccessRules(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := access.Rules()
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{} // first cell -> cells
	for _, line := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		rows[strings.TrimSpace(cells[0])] = cells
	}
	byScope := map[string][]string{}
	for _, r := range rules {
		row, ok := rows[r.Name()]
		if !ok || len(row) < 4 {
			t.Errorf("the README's API table has no row for %s", r.Name())
			continue
		}
		want := "none"
		if r.Scope != "" {
			want = "`" + r.Scope + "`"
			byScope[r.Scope] = append(byScope[r.Scope], r.Name())
		}
		if scope := row[len(row)-1]; !strings.HasPrefix(scope, want) {
			t.Errorf("the README says %s needs %s; its proto says %s", r.Name(), scope, want)
		}
	}
	notes := regexp.MustCompile(`\s*\([^)]*\)`)
	for scope, methods := range byScope {
		row, ok := rows["`"+scope+"`"]
		if !ok || len(row) != 2 {
			t.Errorf("the README's Scopes table has no row for %s", scope)
			continue
		}
		listed := strings.Split(notes.ReplaceAllString(row[1], ""), ", ")
		slices.Sort(listed)
		slices.Sort(methods)
		if !slices.Equal(listed, methods) {
			t.Errorf("the README's Scopes table says %s lets a credential call %v; the protos say %v", scope, listed, methods)
		}
	}
}
