package tokenservice_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
