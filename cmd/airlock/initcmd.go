package main

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"text/template"

	"github.com/airlock-dev/airlock/host/secret"
)

// scaffoldFS holds the templates of 'airlock init connector'. They end in .tmpl so the go tool
// never takes them for this module's sources.
//
//go:embed scaffold/*.tmpl
var scaffoldFS embed.FS

// airlockModule is this module's path.
const airlockModule = "github.com/airlock-dev/airlock"

// connectorName is the manifest's name syntax.
var connectorName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// scaffoldFiles maps each template to the file it becomes (itself a template: {{.Name}} is
// the connector's name).
var scaffoldFiles = []struct{ tmpl, file string }{
	{"main.go.tmpl", "main.go"},
	{"connector.go.tmpl", "{{.Name}}.go"},
	{"exports_wasip1.go.tmpl", "exports_wasip1.go"},
	{"connector_test.go.tmpl", "{{.Name}}_test.go"},
	{"e2e_test.go.tmpl", "e2e_test.go"},
	{"manifest.yaml.tmpl", "manifest.yaml"},
	{"README.md.tmpl", "README.md"},
	{"gitignore.tmpl", ".gitignore"},
}

type scaffoldData struct {
	Name, Publisher, Module, Replace, GoVersion string
}

func runInit(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "master-key" {
		return runInitMasterKey(e, args[1:])
	}
	fs := newFlagSet(e, "init", `
Usage: airlock init connector NAME [--dir DIR] [--publisher NAME] [--module PATH] [--airlock DIR]

Scaffolds a connector in ./NAME (or DIR): the tool logic using the pdk, its exports, a manifest,
a pdktest unit test and an end-to-end test against a fake upstream API. It builds, passes its
tests, packs and signs without edits:

  cd NAME && go test ./... && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o NAME.wasm .
  airlock plugin pack . && airlock plugin sign NAME-0.1.0.airlock --key KEYFILE

Outside the airlock repository the connector gets its own go.mod, which requires the airlock
module through a replace directive pointing at a local checkout (--airlock, default: the
checkout the working directory is in): the module is not on a public module proxy yet. Inside
the airlock repository (plugins/NAME) no go.mod is written.`, `
  airlock init connector weather --publisher acme
  airlock init connector weather --dir /src/weather --airlock ~/src/airlock`)
	dir := fs.String("dir", "", "the `directory` to create (default ./NAME)")
	publisher := fs.String("publisher", "example", "the publisher `name` in the manifest (the name admins trust your key under)")
	module := fs.String("module", "", "the Go module `path` of the new connector (default example.com/NAME)")
	airlockDir := fs.String("airlock", "", "a local checkout of the airlock repository, for the go.mod replace directive")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 || fs.Arg(0) != "connector" {
		return usagef("use: airlock init connector NAME")
	}
	name := fs.Arg(1)
	if !connectorName.MatchString(name) {
		return usagef("connector name %q: use lowercase letters, digits and '_', starting with a letter (it becomes the prefix of the tool names, like %s.get_item)", name, name)
	}
	if !publisherName.MatchString(*publisher) {
		return usagef("--publisher %q: use lowercase letters, digits, '.', '_' and '-'", *publisher)
	}
	target := *dir
	if target == "" {
		target = name
	}
	target, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	if entries, err := os.ReadDir(target); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty: choose another --dir", target)
	}
	data := scaffoldData{Name: name, Publisher: *publisher, Module: *module, GoVersion: goVersion()}
	if data.Module == "" {
		data.Module = "example.com/" + name
	}
	files := scaffoldFiles
	inside := insideAirlock(target)
	if !inside {
		replace := *airlockDir
		if replace == "" {
			root, ok := findAirlockRoot(".")
			if !ok {
				return usagef("%s is outside the airlock repository and the working directory is not in a checkout of it: pass --airlock DIR (a local clone of %s) for the go.mod replace directive", target, airlockModule)
			}
			replace = root
		}
		if replace, err = filepath.Abs(replace); err != nil {
			return err
		}
		if mod, _ := modulePath(filepath.Join(replace, "go.mod")); mod != airlockModule {
			return fmt.Errorf("--airlock %s is not a checkout of %s (its go.mod says %q)", replace, airlockModule, mod)
		}
		data.Replace = replace
		// The go directive must be at least the airlock module's, or the go tool asks for
		// 'go mod tidy' before building.
		if v, err := goDirective(filepath.Join(replace, "go.mod")); err == nil {
			data.GoVersion = v
		}
		files = append(files, struct{ tmpl, file string }{"go.mod.tmpl", "go.mod"})
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		src, err := scaffoldFS.ReadFile("scaffold/" + f.tmpl)
		if err != nil {
			return err
		}
		out, err := render(f.tmpl, string(src), data)
		if err != nil {
			return err
		}
		file, err := render(f.tmpl+" name", f.file, data)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(target, string(file)), out, 0o644); err != nil {
			return err
		}
	}
	rel := target
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, target); err == nil && !strings.HasPrefix(r, "..") {
			rel = r
		}
	}
	fmt.Fprintf(e.stdout, "created connector %s in %s\n\nNext:\n  cd %s\n  go test ./...\n  GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o %s.wasm .\n  airlock plugin pack .\n", name, rel, rel, name)
	if inside {
		fmt.Fprintf(e.stdout, "(inside the airlock repository: no go.mod written, it builds as part of %s)\n", airlockModule)
	}
	return nil
}

func render(name, text string, data scaffoldData) ([]byte, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("scaffold %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("scaffold %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// goVersion is the go directive of a new go.mod: the running toolchain's language version.
func goVersion() string {
	v := strings.TrimPrefix(runtime.Version(), "go")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		return parts[0] + "." + parts[1]
	}
	return "1.26"
}

// insideAirlock reports whether dir (which may not exist yet) is inside a checkout of the
// airlock module, so its packages build as part of it.
func insideAirlock(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		if mod, err := modulePath(filepath.Join(d, "go.mod")); err == nil {
			return mod == airlockModule
		}
		if filepath.Dir(d) == d {
			return false
		}
	}
}

// findAirlockRoot finds the root of the airlock checkout holding dir.
func findAirlockRoot(dir string) (string, bool) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	for d := abs; ; d = filepath.Dir(d) {
		if mod, err := modulePath(filepath.Join(d, "go.mod")); err == nil {
			return d, mod == airlockModule
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

// goDirective reads the go directive of a go.mod file.
func goDirective(gomod string) (string, error) {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", errors.New("no go directive")
}

// modulePath reads the module directive of a go.mod file.
func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", errors.New("no module directive")
}

// runInitMasterKey is 'airlock init master-key': the one command that creates a master key on
// purpose, for states shared by replicas (PostgreSQL), which never create one themselves.
func runInitMasterKey(e *env, args []string) error {
	fs := newFlagSet(e, "init master-key", `
Usage: airlock init master-key --out FILE

Creates a new master key (the key-encryption key of the built-in secret store) in FILE, mode
0600, refusing to overwrite one, and prints its fingerprint. Keep it in your secret manager and
give every replica the same reference: --master-key file:FILE (or env:VAR, vault:…),
$AIRLOCK_MASTER_KEY_REF, or master_key in airlock.yaml. The first replica to start seals the
state's secrets with it; a replica given another key refuses to start and names both
fingerprints.`, `
  airlock init master-key --out /run/secrets/airlock-master-key
  airlock serve --http :8700 --state postgres://… --master-key file:/run/secrets/airlock-master-key`)
	out := fs.String("out", "", "the `file` to create")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return usagef("use: airlock init master-key --out FILE")
	}
	if _, err := os.Lstat(*out); err == nil {
		return fmt.Errorf("%s exists: airlock never replaces a master key (the secrets sealed with it would be lost); choose another file", *out)
	}
	key, err := secret.NewMasterKey()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o700); err != nil {
		return err
	}
	if err := secret.WriteMasterKeyFile(*out, key); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "Created master key %s (fingerprint %s). Give every replica --master-key file:%s (or the same key through env: or vault:), and back it up: without it the stored secrets cannot be opened.\n",
		*out, secret.Fingerprint(key), *out)
	return nil
}
