package meta

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	Deps       []string
	Standard   bool
}

func list(t *testing.T, env []string, patterns ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json", "-deps=false"}, patterns...)...)
	cmd.Dir = "../.."
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

const module = "github.com/airlock-dev/airlock"

func TestEveryPackageIsDocumented(t *testing.T) {
	for _, p := range list(t, nil, "./...") {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}

// The PDK and the ABI are what connector authors compile into their plugins: standard library
// only (plus the PDK's own internal packages and the ABI).
func TestPDKAndABIUseOnlyTheStandardLibrary(t *testing.T) {
	for _, env := range [][]string{nil, {"GOOS=wasip1", "GOARCH=wasm"}} {
		pkgs := list(t, env, "./internal/abi", "./pdk", "./pdk/pdkhttp")
		for _, p := range pkgs {
			for _, dep := range p.Deps {
				if first, _, _ := strings.Cut(dep, "/"); !strings.Contains(first, ".") {
					continue // standard library
				}
				if dep == module+"/internal/abi" || strings.HasPrefix(dep, module+"/pdk") {
					continue
				}
				t.Errorf("%s (%v) depends on %s: the PDK and the ABI may use only the standard library", p.ImportPath, env, dep)
			}
		}
	}
}

// Test kits (names ending in "test", and internal/testenv) may import testing; nothing else that ships may. The
// benchmark harness is a development command that drives testing.Benchmark.
func TestNoProductionPackageImportsTesting(t *testing.T) {
	for _, p := range list(t, nil, "./...") {
		if strings.HasSuffix(p.ImportPath, "test") || p.ImportPath == module+"/internal/testenv" || p.ImportPath == module+"/internal/cmd/bench" {
			continue
		}
		for _, imp := range p.Imports {
			if imp == "testing" {
				t.Errorf("%s imports testing; only test kits (…test packages) and _test.go files may", p.ImportPath)
			}
		}
	}
}
