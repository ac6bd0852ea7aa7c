package pluginbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrNoNPM is returned by AssemblyScript when node or npm is not installed.
var ErrNoNPM = errors.New("pluginbuild: node and npm are needed to build an AssemblyScript connector (apt-get install nodejs npm)")

// AssemblyScript builds the AssemblyScript connector in dir (a directory with package.json,
// package-lock.json, manifest.yaml and assembly/*.ts, as 'airlock init connector NAME --lang
// assemblyscript' writes) with its own 'npm run build', and returns the path of the module.
//
// The npm packages are installed once per package-lock.json with 'npm ci' into the cache
// (npm-<digest>/node_modules), never into dir; the sources are copied to a temporary directory
// (following symbolic links, so a plugin in this repository can link the binding in
// pdk/assemblyscript) that links the cached node_modules. Modules are cached like Go builds, keyed
// by the digest of dir's files and the node version.
func AssemblyScript(ctx context.Context, dir, cacheDir string) (string, error) {
	if _, err := exec.LookPath("npm"); err != nil {
		return "", ErrNoNPM
	}
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	files, err := sourceFiles(dir)
	if err != nil {
		return "", err
	}
	nodeVersion, err := exec.CommandContext(ctx, "node", "--version").Output()
	if err != nil {
		return "", ErrNoNPM
	}
	h := sha256.New()
	h.Write(nodeVersion)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(files[name]))
		h.Write(files[name])
	}
	key := hex.EncodeToString(h.Sum(nil))
	name := filepath.Base(filepath.Clean(dir))
	out := filepath.Join(cacheDir, fmt.Sprintf("%s-as-%s.wasm", name, key[:16]))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	lock, ok := files["package-lock.json"]
	if !ok {
		return "", fmt.Errorf("pluginbuild: %s has no package-lock.json: run 'npm install' there once and keep the lock file", dir)
	}
	modules, err := npmCI(ctx, cacheDir, files["package.json"], lock)
	if err != nil {
		return "", err
	}
	var m struct {
		Module struct{ Path string } `yaml:"module"`
	}
	if err := yaml.Unmarshal(files["manifest.yaml"], &m); err != nil || m.Module.Path == "" || filepath.IsAbs(m.Module.Path) || strings.Contains(m.Module.Path, "..") {
		return "", fmt.Errorf("pluginbuild: %s/manifest.yaml must name the module it builds (module.path, a relative file name)", dir)
	}
	work, err := os.MkdirTemp(cacheDir, name+"-as-build-")
	if err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	defer os.RemoveAll(work)
	for rel, data := range files {
		p := filepath.Join(work, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return "", err
		}
	}
	if err := os.Symlink(modules, filepath.Join(work, "node_modules")); err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	cmd := exec.CommandContext(ctx, "npm", "run", "--silent", "build")
	cmd.Dir = work
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("pluginbuild: npm run build in %s: %w\n%s", dir, err, stderr.String())
	}
	tmp := out + ".tmp-" + filepath.Base(work)
	data, err := os.ReadFile(filepath.Join(work, m.Module.Path))
	if err != nil {
		return "", fmt.Errorf("pluginbuild: npm run build in %s did not write %s (module.path): %w", dir, m.Module.Path, err)
	}
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	return out, nil
}

// npmCI installs the packages of a package-lock.json once into the cache and returns the
// node_modules directory.
func npmCI(ctx context.Context, cacheDir string, pkg, lock []byte) (string, error) {
	sum := sha256.Sum256(append(append([]byte{}, pkg...), lock...))
	dir := filepath.Join(cacheDir, "npm-"+hex.EncodeToString(sum[:])[:16])
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(modules); err == nil {
		return modules, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, "npm-install-")
	if err != nil {
		return "", fmt.Errorf("pluginbuild: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), pkg, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, "package-lock.json"), lock, 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = tmp
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("pluginbuild: npm ci: %w\n%s", err, stderr.String())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Another build may have installed the same lock meanwhile: then keep its copy.
	if err := os.Rename(filepath.Join(tmp, "node_modules"), modules); err != nil {
		if _, statErr := os.Stat(modules); statErr != nil {
			return "", fmt.Errorf("pluginbuild: %w", err)
		}
	}
	return modules, nil
}

// sourceFiles reads the files of an AssemblyScript connector: the npm and manifest files and
// every file under assembly/, following symbolic links; build outputs and node_modules are left
// out.
func sourceFiles(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, name := range []string{"package.json", "package-lock.json", "manifest.yaml", "asconfig.json"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) && name != "package.json" && name != "manifest.yaml" {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pluginbuild: %s is not an AssemblyScript connector: %w", dir, err)
		}
		files[name] = data
	}
	entries, err := os.ReadDir(filepath.Join(dir, "assembly"))
	if err != nil {
		return nil, fmt.Errorf("pluginbuild: %s is not an AssemblyScript connector: %w", dir, err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, "assembly", e.Name())) // follows a link to the binding
		if err != nil {
			return nil, fmt.Errorf("pluginbuild: %w", err)
		}
		files[filepath.Join("assembly", e.Name())] = data
	}
	return files, nil
}
