package verifier_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The package is imported by other services: it must not bring the
// server's database drivers, ORM or gateway into their builds, nor any other
// package of this module (which could, one day, bring them).
func TestImportsNothingOfTheServer(t *testing.T) {
	const self = "github.com/tokenservice/tokenservice/pkg/verifier"
	cmd := exec.Command("go", "list", "-deps", self)
	cmd.Dir = moduleRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"gorm.io/",
		"github.com/glebarez/sqlite",
		"github.com/glebarez/go-sqlite",
		"modernc.org/sqlite",
		"github.com/go-sql-driver/mysql",
		"github.com/grpc-ecosystem/grpc-gateway",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
	for _, pkg := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("%s imports %s", self, pkg)
			}
		}
		if strings.HasPrefix(pkg, "github.com/tokenservice/tokenservice") && pkg != self {
			t.Errorf("%s imports %s: keep it standalone", self, pkg)
		}
	}
}

// moduleRoot returns the directory of this module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || !filepath.IsAbs(gomod) {
		t.Fatalf("go env GOMOD: %q, %v", gomod, err)
	}
	return filepath.Dir(gomod)
}
