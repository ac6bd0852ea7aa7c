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

	airlocksrc "github.com/airlock-dev/airlock"
	"github.com/airlock-dev/airlock/host/secret"
)

// scaffoldFS holds the templates of 'airlock init connector'. They end in .tmpl so the go tool
// never takes them for this module's sources.
//
//go:embed scaffold/*.tmpl scaffold/assemblyscript/*.tmpl
var scaffoldFS embed.FS

// airlockModule is this module's path.
const airlockModule = "github.com/airlock-dev/airlock"

// pdkDir is where a Go connector outside the airlock repository gets the pdk module this binary
// carries (airlocksrc.Sources), named by its go.mod's replace directive.
const pdkDir = "airlock-pdk"

// connectorName is the manifest's name syntax.
var connectorName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// scaffoldFile is one file 'airlock init connector' writes: a template of scaffoldFS, or (src)
// a file of airlocksrc.Sources copied as it is. Its name is itself a template: {{.Name}} is the
// connector's name.
type scaffoldFile struct{ tmpl, src, file string }

// scaffolds are the files of a connector, by language.
var scaffolds = map[string][]scaffoldFile{
	"go": {
		{tmpl: "main.go.tmpl", file: "main.go"},
		{tmpl: "connector.go.tmpl", file: "{{.Name}}.go"},
		{tmpl: "exports_wasip1.go.tmpl", file: "exports_wasip1.go"},
		{tmpl: "connector_test.go.tmpl", file: "{{.Name}}_test.go"},
		{tmpl: "e2e_test.go.tmpl", file: "e2e_test.go"},
		{tmpl: "manifest.yaml.tmpl", file: "manifest.yaml"},
		{tmpl: "README.md.tmpl", file: "README.md"},
		{tmpl: "gitignore.tmpl", file: ".gitignore"},
	},
	"assemblyscript": {
		{tmpl: "assemblyscript/package.json.tmpl", file: "package.json"},
		{src: "plugins/items-as/assembly/index.ts", file: "assembly/index.ts"},
		{src: "pdk/assemblyscript/airlock.ts", file: "assembly/airlock.ts"},
		{tmpl: "manifest.yaml.tmpl", file: "manifest.yaml"},
		{tmpl: "assemblyscript/README.md.tmpl", file: "README.md"},
		{tmpl: "assemblyscript/gitignore.tmpl", file: ".gitignore"},
	},
}

type scaffoldData struct {
	Name, Publisher, Module, Replace, GoVersion, AirlockVersion string
	// Embedded is set when Replace is the pdk module this binary wrote (pdkDir).
	Embedded bool
}

func runInit(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "master-key" {
		return runInitMasterKey(e, args[1:])
	}
	fs := newFlagSet(e, "init", `
Usage: airlock init connector NAME [--lang go|assemblyscript] [--dir DIR] [--publisher NAME] [--module PATH] [--airlock DIR]

Scaffolds a connector in ./NAME (or DIR): the tool logic, its exports, a manifest and tests
against a fake upstream API. It builds, passes its tests, packs and signs without edits.

Go (the default): the logic uses the pdk and is unit-tested natively with pdktest.

  cd NAME && go test ./... && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o NAME.wasm .
  airlock plugin pack . && airlock plugin sign NAME-0.1.0.airlock --key KEYFILE

Outside the airlock repository the connector gets its own go.mod, and the pdk module this
binary carries is written next to it (airlock-pdk/, named by a replace directive): it builds
with nothing but this binary and the Go module proxy. --airlock DIR points the replace
directive at a local checkout of the airlock repository instead. Inside the repository
(plugins/NAME) no go.mod is written.

AssemblyScript (--lang assemblyscript): the logic uses the unmodified Extism AssemblyScript
PDK from npm and airlock's binding (assembly/airlock.ts); it needs node and npm.

  cd NAME && npm install && npm run build && airlock plugin pack .`, `
  airlock init connector weather --publisher acme
  airlock init connector weather --lang assemblyscript
  airlock init connector weather --dir /src/weather --airlock ~/src/airlock`)
	dir := fs.String("dir", "", "the `directory` to create (default ./NAME)")
	lang := fs.String("lang", "go", "the `language` of the connector: go or assemblyscript")
	publisher := fs.String("publisher", "example", "the publisher `name` in the manifest (the name admins trust your key under)")
	module := fs.String("module", "", "the Go module `path` of the new connector (default example.com/NAME)")
	airlockDir := fs.String("airlock", "", "a local checkout of the airlock repository for the go.mod replace directive, instead of the pdk this binary carries")
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
	files, ok := scaffolds[*lang]
	if !ok {
		return usagef("--lang %q: use go or assemblyscript", *lang)
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
	data := scaffoldData{Name: name, Publisher: *publisher, Module: *module, GoVersion: goVersion(), AirlockVersion: buildVersion()}
	if data.Module == "" {
		data.Module = "example.com/" + name
	}
	inside := *lang == "go" && insideAirlock(target)
	if *lang == "go" && !inside {
		if err := goModule(&data, *airlockDir); err != nil {
			return err
		}
		files = append(files, scaffoldFile{tmpl: "go.mod.tmpl", file: "go.mod"})
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if data.Embedded {
		if err := writePDK(filepath.Join(target, pdkDir), data); err != nil {
			return err
		}
	}
	for _, f := range files {
		var out []byte
		if f.src != "" {
			out, err = airlocksrc.Sources.ReadFile(f.src)
		} else {
			var src []byte
			if src, err = scaffoldFS.ReadFile("scaffold/" + f.tmpl); err == nil {
				out, err = render(f.tmpl, string(src), data)
			}
		}
		if err != nil {
			return err
		}
		file, err := render(f.file+" name", f.file, data)
		if err != nil {
			return err
		}
		path := filepath.Join(target, string(file))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			return err
		}
	}
	rel := target
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, target); err == nil && !strings.HasPrefix(r, "..") {
			rel = r
		}
	}
	fmt.Fprintf(e.stdout, "created connector %s in %s\n\nNext:\n  cd %s\n", name, rel, rel)
	if *lang == "assemblyscript" {
		fmt.Fprintf(e.stdout, "  npm install\n  npm run build\n  airlock plugin pack .\n")
		return nil
	}
	fmt.Fprintf(e.stdout, "  go test ./...\n  GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o %s.wasm .\n  airlock plugin pack .\n", name)
	if inside {
		fmt.Fprintf(e.stdout, "(inside the airlock repository: no go.mod written, it builds as part of %s)\n", airlockModule)
	}
	return nil
}

// goModule fills in what the go.mod of a Go connector outside the airlock repository says: a
// replace directive pointing at the checkout airlockDir, or else at the pdk this binary carries.
func goModule(data *scaffoldData, airlockDir string) error {
	if airlockDir == "" {
		data.Replace, data.Embedded = "./"+pdkDir, true
		// The go directive must be at least the pdk module's, or the go tool asks for
		// 'go mod tidy' before building.
		gomod, err := airlocksrc.Sources.ReadFile("go.mod")
		if err != nil {
			return err
		}
		if v, err := goDirective(gomod); err == nil {
			data.GoVersion = v
		}
		return nil
	}
	replace, err := filepath.Abs(airlockDir)
	if err != nil {
		return err
	}
	if mod, _ := modulePath(filepath.Join(replace, "go.mod")); mod != airlockModule {
		return fmt.Errorf("--airlock %s is not a checkout of %s (its go.mod says %q)", replace, airlockModule, mod)
	}
	data.Replace = replace
	if gomod, err := os.ReadFile(filepath.Join(replace, "go.mod")); err == nil {
		if v, err := goDirective(gomod); err == nil {
			data.GoVersion = v
		}
	}
	return nil
}

// writePDK writes the pdk module this binary carries (airlocksrc.GoPackages, without their tests)
// into dir, with a go.mod naming it the airlock module, so the connector's imports are the same
// as once the airlock module is published.
func writePDK(dir string, data scaffoldData) error {
	for _, pkg := range airlocksrc.GoPackages {
		entries, err := airlocksrc.Sources.ReadDir(pkg)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, pkg), 0o755); err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			src, err := airlocksrc.Sources.ReadFile(pkg + "/" + e.Name())
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, pkg, e.Name()), src, 0o644); err != nil {
				return err
			}
		}
	}
	gomod := fmt.Sprintf("// The airlock pdk, as airlock %s carries it: written by 'airlock init connector', do not edit.\n"+
		"// It holds only the packages a connector compiles (pdk, pdktest, pdkhttp and what they import).\n"+
		"module %s\n\ngo %s\n", data.AirlockVersion, airlockModule, data.GoVersion)
	return os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644)
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

// goDirective reads the go directive of a go.mod file's contents.
func goDirective(gomod []byte) (string, error) {
	for _, line := range strings.Split(string(gomod), "\n") {
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
