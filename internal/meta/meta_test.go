package meta

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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

// Built binaries slipped into the repository twice (a 23 MB `bench` at the root, the second
// time): no tracked file outside testdata may be an executable or object file, or larger than
// 1 MB. Skips outside a git checkout (a source archive has nothing tracked to check).
func TestNoTrackedBinaries(t *testing.T) {
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("not a git checkout (git ls-files: %v)", err)
	}
	magics := map[string][]byte{
		"ELF executable":    {0x7f, 'E', 'L', 'F'},
		"Mach-O executable": {0xcf, 0xfa, 0xed, 0xfe},
		"Windows PE":        {'M', 'Z'},
		"WebAssembly":       {0, 'a', 's', 'm'},
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if name == "" || strings.Contains("/"+name, "/testdata/") {
			continue
		}
		f, err := os.Open(filepath.Join("../..", name))
		if err != nil {
			continue // deleted in the work tree, not yet committed
		}
		st, _ := f.Stat()
		head := make([]byte, 4)
		n, _ := io.ReadFull(f, head)
		f.Close()
		if st.Size() > 1<<20 {
			t.Errorf("%s is tracked and %d bytes (> 1 MB): keep large files out of git or in a testdata folder", name, st.Size())
		}
		for kind, magic := range magics {
			if bytes.HasPrefix(head[:n], magic) {
				t.Errorf("%s is a tracked %s: git rm --cached it and add it to .gitignore", name, kind)
			}
		}
	}
}

// go.mod and go.sum say exactly what the code imports (`go mod tidy -diff` is empty).
func TestModuleIsTidy(t *testing.T) {
	cmd := exec.Command("go", "mod", "tidy", "-diff")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go mod tidy -diff is not empty; run `go mod tidy`:\n%s", out)
	}
}
