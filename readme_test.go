package tokenservice_test

import (
	"os"
	"strings"
	"testing"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/tokens"
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
	if tokens.DefaultPageSize != 50 || tokens.MaxPageSize != 250 || domain.MinPasswordLen != 8 {
		t.Error("a limit changed: update README.md and this test together")
	}
}
