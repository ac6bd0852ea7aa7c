// Package hosttest helps test connectors and embedders against a real host: it builds a plugin
// from source (cached), pins its digest into the manifest in memory, and starts a Host whose
// audit events and logs are captured for assertions.
//
// Example:
//
//	func TestMyConnector(t *testing.T) {
//		m, wasm := hosttest.Connector(t, "./plugins/mine", "manifests/mine.yaml")
//		h, rec := hosttest.New(t, host.Config{})
//		if err := h.LoadModule(ctx, m, wasm, grant); err != nil { t.Fatal(err) }
//		res := h.Call(ctx, host.CallRequest{Tool: "mine.do", Arguments: []byte(`{}`)})
//		_ = rec.Audit.Events()
//	}
package hosttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

var builds sync.Map // plugin package -> func() (string, error)

// Connector builds the plugin package pluginPkg ("./plugins/slack", relative to the module root),
// parses the manifest at manifestPath (relative to the module root) and pins the built module's
// digest into it. It returns the manifest and the module's bytes, ready for Host.LoadModule.
func Connector(tb testing.TB, pluginPkg, manifestPath string) (*manifest.Manifest, []byte) {
	tb.Helper()
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	f, _ := builds.LoadOrStore(pluginPkg, sync.OnceValues(func() (string, error) {
		return pluginbuild.Build(context.Background(), pluginbuild.Options{Package: pluginPkg, Root: root})
	}))
	path, err := f.(func() (string, error))()
	if err != nil {
		tb.Fatalf("hosttest: building %s: %v", pluginPkg, err)
	}
	return pinned(tb, path, filepath.Join(root, manifestPath))
}

// AssemblyScriptConnector builds the AssemblyScript connector in dir (relative to the module
// root, with its manifest.yaml; see pluginbuild.AssemblyScript) with npm, and returns its
// manifest, digest pinned, and module. Without node and npm the test is skipped, or fails when
// AIRLOCK_TEST_REQUIRE_SERVICES=1 (CI).
func AssemblyScriptConnector(tb testing.TB, dir string) (*manifest.Manifest, []byte) {
	tb.Helper()
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	f, _ := builds.LoadOrStore("as:"+dir, sync.OnceValues(func() (string, error) {
		return pluginbuild.AssemblyScript(context.Background(), filepath.Join(root, dir), "")
	}))
	path, err := f.(func() (string, error))()
	if errors.Is(err, pluginbuild.ErrNoNPM) {
		if os.Getenv("AIRLOCK_TEST_REQUIRE_SERVICES") == "1" {
			tb.Fatal(err)
		}
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatalf("hosttest: building %s: %v", dir, err)
	}
	return pinned(tb, path, filepath.Join(root, dir, "manifest.yaml"))
}

// pinned reads the module at wasmPath and the manifest at manifestPath, and pins the module's
// digest into the manifest.
func pinned(tb testing.TB, wasmPath, manifestPath string) (*manifest.Manifest, []byte) {
	tb.Helper()
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := manifest.Load(manifestPath)
	if err != nil {
		tb.Fatalf("hosttest: %v", err)
	}
	sum := sha256.Sum256(wasm)
	m.Module.SHA256 = hex.EncodeToString(sum[:])
	return m, wasm
}

// Recorder captures what a host wrote: audit events and log output.
type Recorder struct {
	Audit *audit.Memory
	mu    sync.Mutex
	logs  bytes.Buffer
}

// Logs returns everything logged so far (JSON lines).
func (r *Recorder) Logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}

func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.Write(p)
}

// New starts a Host for a test: its state lives in a temporary directory (the compilation cache
// is shared between tests, under the plugin build cache), audit events go to an in-memory sink
// and logs to the Recorder, at debug level. Fields set in cfg are kept. The host is closed when
// the test ends.
func New(tb testing.TB, cfg host.Config) (*host.Host, *Recorder) {
	tb.Helper()
	rec := &Recorder{Audit: &audit.Memory{}}
	if cfg.StateDir == "" {
		cfg.StateDir = tb.TempDir()
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(filepath.Dir(pluginbuild.DefaultCacheDir()), "wazero")
	}
	if cfg.Audit == nil {
		cfg.Audit = rec.Audit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(rec, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h, err := host.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close(context.Background()) })
	return h, rec
}
