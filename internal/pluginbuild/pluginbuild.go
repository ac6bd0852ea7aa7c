// Package pluginbuild compiles connector plugins with the standard Go compiler
// (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared) into a content-addressed cache, so tests, the demo
// and the benchmarks build what they need themselves and no .wasm is ever committed.
//
// A build is keyed by the SHA-256 of every Go source file of the module (plus go.mod, go.sum and
// the Go version): an unchanged tree reuses the cached module without running the compiler.
// Concurrent builds of the same plugin (parallel test packages) are safe: each writes a temporary
// file and renames it into place.
//
// Example:
//
//	wasm, err := pluginbuild.Build(ctx, pluginbuild.Options{Package: "./plugins/slack"})
package pluginbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Options says what to build.
type Options struct {
	// Package is the plugin's Go package, as a path relative to Root ("./plugins/slack").
	Package string
	// Root is the module root; "" means the directory holding go.mod above the working directory.
	Root string
	// CacheDir holds built modules; "" means $AIRLOCK_CACHE_DIR/plugins, else the user cache dir
	// (~/.cache/airlock/plugins).
	CacheDir string
}

// Build returns the path of the compiled module for opts.Package, compiling it if the cache has
// no module for the current sources.
func Build(ctx context.Context, opts Options) (string, error) {
	root := opts.Root
	if root == "" {
		var err error
		if root, err = ModuleRoot(); err != nil {
			return "", err
		}
	}
	cache := opts.CacheDir
	if cache == "" {
		cache = DefaultCacheDir()
	}
	key, err := sourceKey(root)
	if err != nil {
		return "", err
	}
	name := filepath.Base(filepath.Clean(opts.Package))
	out := filepath.Join(cache, fmt.Sprintf("%s-%s.wasm", name, key[:16]))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	tmp, err := os.CreateTemp(cache, name+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildmode=c-shared", "-o", tmp.Name(), opts.Package)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("pluginbuild: GOOS=wasip1 GOARCH=wasm go build %s: %w\n%s", opts.Package, err, stderr.String())
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	return out, nil
}

// DefaultCacheDir is where Build keeps modules when Options.CacheDir is empty.
func DefaultCacheDir() string {
	if d := os.Getenv("AIRLOCK_CACHE_DIR"); d != "" {
		return filepath.Join(d, "plugins")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "airlock", "plugins")
	}
	return filepath.Join(os.TempDir(), "airlock-cache", "plugins")
}

// ModuleRoot finds the directory holding go.mod, from the working directory upwards.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("pluginbuild: no go.mod above the working directory: run from inside the airlock repository")
		}
		dir = parent
	}
}

// sourceKey hashes every .go file in the module (except under .git), go.mod, go.sum and the Go
// version. Hashing the whole module is cheap (a few ms) and never misses a dependency.
func sourceKey(root string) (string, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") ||
			path == filepath.Join(root, "go.mod") || path == filepath.Join(root, "go.sum")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	sort.Strings(files)
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version())
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("pluginbuild: %w", err)
		}
		rel, _ := filepath.Rel(root, f)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Stamp writes a copy of the manifest at manifestPath into outDir, next to a copy of the module
// at wasmPath, with module.path and module.sha256 set to match. It returns the new manifest's path.
// This is how a source manifest (which cannot know the digest of a module built later) becomes a
// loadable one.
func Stamp(manifestPath, wasmPath, outDir string) (string, error) {
	src, err := os.ReadFile(manifestPath)
	if err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return "", fmt.Errorf("pluginbuild: %s is not a YAML mapping: %v", manifestPath, err)
	}
	top := doc.Content[0]
	name := lookup(top, "name")
	if name == nil {
		return "", fmt.Errorf("pluginbuild: %s has no name", manifestPath)
	}
	sum := sha256.Sum256(wasm)
	module := lookup(top, "module")
	if module == nil {
		module = &yaml.Node{Kind: yaml.MappingNode}
		top.Content = append(top.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "module"}, module)
	}
	wasmName := name.Value + ".wasm"
	set(module, "path", wasmName)
	set(module, "sha256", hex.EncodeToString(sum[:]))
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	if err := writeAtomic(filepath.Join(outDir, wasmName), wasm); err != nil {
		return "", err
	}
	dst := filepath.Join(outDir, name.Value+".yaml")
	return dst, writeAtomic(dst, out)
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("pluginbuild: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("pluginbuild: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pluginbuild: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func set(m *yaml.Node, key, value string) {
	if v := lookup(m, key); v != nil {
		v.Kind, v.Tag, v.Value, v.Style = yaml.ScalarNode, "!!str", value, 0
		return
	}
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
}
