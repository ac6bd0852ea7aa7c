package pdk_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports checks that the PDK (what a connector links into its module) imports only the
// standard library, the ABI, and its own packages.
func TestImports(t *testing.T) {
	allowed := func(path string) bool {
		first, _, _ := strings.Cut(path, "/")
		return !strings.Contains(first, ".") ||
			path == "github.com/airlock-dev/airlock/internal/abi" ||
			path == "github.com/airlock-dev/airlock/pdk" ||
			strings.HasPrefix(path, "github.com/airlock-dev/airlock/pdk/")
	}
	for _, dir := range []string{".", "internal/fakehost", "pdkhttp"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if !allowed(path) || path == "testing" {
					t.Errorf("%s imports %s: the PDK may import only the standard library and internal/abi", file, path)
				}
			}
		}
	}
}
