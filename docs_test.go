package tokenservice_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every figure docs/scaling.md quotes from docs/performance.md is one
// docs/performance.md shows: a paragraph of scaling.md citing it may hold
// no number performance.md does not.
func TestScalingQuotesPerformanceFigures(t *testing.T) {
	scaling, err := os.ReadFile("docs/scaling.md")
	if err != nil {
		t.Fatal(err)
	}
	perf, err := os.ReadFile("docs/performance.md")
	if err != nil {
		t.Fatal(err)
	}
	shown := strings.ReplaceAll(string(perf), ",", "")
	number := regexp.MustCompile(`\d[\d,]*(\.\d+)?`)
	citing := 0
	for _, paragraph := range strings.Split(string(scaling), "\n\n") {
		if !strings.Contains(paragraph, "docs/performance.md") {
			continue
		}
		citing++
		for _, n := range number.FindAllString(paragraph, -1) {
			if n = strings.TrimRight(strings.ReplaceAll(n, ",", ""), "."); !strings.Contains(shown, n) {
				t.Errorf("docs/scaling.md quotes %s from docs/performance.md, which does not show it:\n%s", n, paragraph)
			}
		}
	}
	if citing == 0 {
		t.Error("docs/scaling.md cites docs/performance.md nowhere: the check checks nothing")
	}
}

// Every package under pkg/ and internal/ is on the map: docs/architecture.md
// and the README's layout table both name it.
func TestArchitectureNamesEveryPackage(t *testing.T) {
	arch, err := os.ReadFile("docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, _ := strings.Cut(string(readme), "\n## Layout\n")
	for _, dir := range []string{"pkg", "internal"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			name := "`" + dir + "/" + e.Name() + "`"
			if !strings.Contains(string(arch), name) {
				t.Errorf("docs/architecture.md does not name %s", name)
			}
			if !strings.Contains(layout, "| "+name+" |") {
				t.Errorf("the README's layout table has no row for %s", name)
			}
		}
	}
}
