package airlock

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Every package of this module that the pdk, pdktest or pdkhttp import, for wasip1 and natively,
// is in GoPackages and its sources in Sources: else a connector outside the repository would not
// build against what 'airlock init' writes.
func TestSourcesHoldWhatThePDKImports(t *testing.T) {
	for _, env := range [][]string{nil, {"GOOS=wasip1", "GOARCH=wasm"}} {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./pdk", "./pdk/pdktest", "./pdk/pdkhttp")
		cmd.Env = append(cmd.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		for _, dep := range strings.Fields(string(out)) {
			rel, ok := strings.CutPrefix(dep, "github.com/airlock-dev/airlock/")
			if !ok {
				continue
			}
			if !slices.Contains(GoPackages, rel) {
				t.Errorf("%s (%v) is imported by the pdk but not in GoPackages", dep, env)
				continue
			}
			entries, err := Sources.ReadDir(rel)
			if err != nil || len(entries) == 0 {
				t.Errorf("Sources has no files of %s: add it to the go:embed line (%v)", rel, err)
			}
		}
	}
}
