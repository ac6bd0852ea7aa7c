package openapi_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/host/openapi"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// loaded caches published descriptions across the tests of this binary (a Spec is read-only
// once loaded); the 3 MB OpenAI description takes about half a second to load.
var loaded sync.Map // name -> func() (*openapi.Spec, error)

// loadSpec loads a published description once.
func loadSpec(t testing.TB, name string) *openapi.Spec {
	t.Helper()
	path := specPath(t, name)
	f, _ := loaded.LoadOrStore(name, sync.OnceValues(func() (*openapi.Spec, error) {
		return openapi.Load(context.Background(), path, nil)
	}))
	spec, err := f.(func() (*openapi.Spec, error))()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

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
