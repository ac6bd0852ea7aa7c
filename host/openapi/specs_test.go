package openapi_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// specPath is a published description in ../shared/specs next to the repository; the test
// skips with a message when the folder is absent.
func specPath(t testing.TB, name string) string {
	t.Helper()
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "..", "shared", "specs", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("published descriptions not found (%v): CI has them at ../shared/specs", err)
	}
	return p
}
