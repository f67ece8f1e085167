package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// TestDockerignore: the image's build context (the repository root, as the
// Compose file says) leaves out the key-encryption key, local databases,
// built binaries and .git, and keeps every file the Go build reads. The
// patterns are read and matched by moby/patternmatcher, the code Docker
// itself reads .dockerignore with.
func TestDockerignore(t *testing.T) {
	p, err := loadCompose(".", map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	root := mustAbs(t, "..")
	for _, name := range []string{"migrate", "tokenservice"} {
		if b := service(t, p, name).Build; b == nil || b.Context != root || b.Dockerfile != "deploy/Dockerfile" {
			t.Fatalf("%s builds %+v, want deploy/Dockerfile with the repository root as context: .dockerignore is there", name, b)
		}
	}
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(path string) bool {
		t.Helper()
		ok, err := pm.MatchesOrParentMatches(filepath.FromSlash(path))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, path := range []string{
		".git", ".git/config",
		"bin", "bin/tokenservice", "bin/hey",
		"tokenservice.db", "tokenservice.db-wal", "tokenservice.db-shm", "tokenservice.db-journal", "data/tokenservice.db",
		"deploy/secrets", "deploy/secrets/kek", "deploy/.env", ".env",
		"tokenservice", "tokenbench", "cpu.pprof", "pkg/app/app.test",
	} {
		if !excluded(path) {
			t.Errorf("the image's build context takes %s", path)
		}
	}

	// Everything the build reads stays: every Go source, the module files,
	// and the files embed.go embeds.
	needed := []string{
		"go.mod", "go.sum", "deploy/Dockerfile",
		"openapi/priv/tokenservice/v1alpha1/tokenservice.openapi.json",
		"openapi/priv/tokenservice/v1alpha1/tokenservice.swagger.json",
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && (rel == ".git" || rel == "bin" || strings.HasPrefix(d.Name(), "node_modules")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			needed = append(needed, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(needed) < 100 {
		t.Fatalf("found only %d files the build needs: the walk is wrong", len(needed))
	}
	for _, path := range needed {
		if excluded(path) {
			t.Errorf("the image's build context leaves out %s, which the build needs", path)
		}
	}
}
