package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// clientFiles are the files of the client commands (login, logout, whoami,
// token, user, audit list) and of what only they use. They talk to a
// server over gRPC, so they need nothing of its implementation; what they
// share with it (pkg/bearer's header name, pkg/auth's token format,
// pkg/audit's JSON line) lives below the doors.
var clientFiles = []string{"auditlist.go", "client.go", "exchange.go", "healthcheck.go", "login.go", "output.go", "prompt.go", "subjecttoken.go", "token.go", "user.go"}

// serverOnly are the packages that make up the server: the doors and the
// composition root.
var serverOnly = []string{
	"github.com/tokenservice/tokenservice/pkg/api",
	"github.com/tokenservice/tokenservice/pkg/app",
	"github.com/tokenservice/tokenservice/pkg/server",
}

// TestClientImportsNothingOfTheServer keeps the client commands apart from
// the server's packages, which share this binary only because serve does.
// The files are parsed, not built: `go list -deps` cannot tell the files of
// one package apart.
func TestClientImportsNothingOfTheServer(t *testing.T) {
	fset := token.NewFileSet()
	for _, name := range clientFiles {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("%v (is clientFiles up to date?)", err)
		}
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatalf("%s: import %s: %v", name, imp.Path.Value, err)
			}
			if slices.Contains(serverOnly, path) {
				t.Errorf("%s imports %s: the client commands talk to a server, they need nothing of its implementation", name, path)
			}
		}
	}
}

// TestClientFilesListsEveryClientCommand fails when a file declares a
// command of the client group but is not in clientFiles, so that the rule
// above covers it.
func TestClientFilesListsEveryClientCommand(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") || name == "root.go" {
			continue // root.go defines the groups and adds every command
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(src), "groupClient") && !slices.Contains(clientFiles, name) {
			t.Errorf("%s declares a client command: add it to clientFiles", name)
		}
	}
}
