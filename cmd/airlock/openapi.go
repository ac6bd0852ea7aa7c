package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/airlock-dev/airlock/host/openapi"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

func runOpenAPI(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "openapi", `
Usage: airlock openapi list SPEC [--tag TAG]…
       airlock openapi import SPEC --name NAME (--operations 'GET /path,operationId,…' | --tag TAG | --interactive)
                              [--out DIR] [--server URL] [--module FILE] [--version V] [--publisher P]
                              [--no-output-schemas | --no-output-schema TOOL…] [--allow-private-servers]

Makes a connector from an OpenAPI description (Swagger 2.0, OpenAPI 3.0 or 3.1; JSON or YAML; a
file or an https URL), with no code: each chosen operation becomes a tool, run by the generic
connector module (plugins/openapi). SPEC's $refs are followed only within its own origin (its
directory for a file); a description over 16 MiB is refused.

'list' prints the operations (method, path, operationId, tags, summary) so you can choose.

'import' never takes the whole API: name the operations (--operations, "METHOD /path" as the
description writes it, or operationIds) or tags (--tag), or pick them from a numbered list
(--interactive, which reads your choice from standard input); at most 128. It writes DIR (default
NAME/) with manifest.yaml and the module it pins (openapi.wasm, from --module, else
build/plugins/openapi.wasm, else built from this source tree). The manifest declares, from the
description: a tool per operation (name from the operationId, input schema from the parameters
and JSON or form body, output schema from the 2xx JSON response, annotations from the method),
network rules for the server and the path prefixes the operations use, and credential slots from
the security schemes (never a secret). Review it, then pack, install and grant it like any
connector. Servers on loopback, private or metadata addresses are refused unless
--allow-private-servers (the grant must then list them in private_targets).`, `
  airlock openapi list https://petstore3.swagger.io/api/v3/openapi.json
  airlock openapi import petstore.yaml --name petstore --operations 'GET /pets,find pet by id'
  airlock openapi import openai.yaml --name openai --tag Models --no-output-schemas`)
	name := fs.String("name", "", "the connector `name` (lowercase letters, digits, _)")
	var ops, tags listFlag
	fs.Var(&ops, "operations", "operations to import: `'METHOD /path,operationId,…'` (repeatable)")
	fs.Var(&tags, "tag", "import the operations with this `tag` (repeatable)")
	out := fs.String("out", "", "output `directory` (default NAME)")
	server := fs.String("server", "", "the API's base `URL` (default: the description's first server)")
	overrideServer := fs.Bool("override-server", false, "allow a --server the description does not list")
	module := fs.String("module", "", "the generic connector module `file` (default build/plugins/openapi.wasm, else built)")
	version := fs.String("version", "0.1.0", "the connector `version`")
	publisher := fs.String("publisher", "local", "the `publisher` name (must match your signing key's trust entry)")
	noOutput := fs.Bool("no-output-schemas", false, "leave out output schemas (for descriptions whose responses are wrong in practice)")
	var noOutputFor listFlag
	fs.Var(&noOutputFor, "no-output-schema", "leave out the output schema of this `tool` (name or operation; repeatable)")
	allowPrivate := fs.Bool("allow-private-servers", false, "allow a server on a loopback, private or metadata address")
	interactive := fs.Bool("interactive", false, "choose the operations from a numbered list (read from standard input)")
	maxBytes := fs.Int64("max-bytes", openapi.DefaultMaxBytes, "refuse a description (or $ref'd document) larger than this many `bytes`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 || fs.Arg(0) != "list" && fs.Arg(0) != "import" {
		return usagef("use: airlock openapi list SPEC, or airlock openapi import SPEC --name NAME --operations …")
	}
	spec, err := openapi.Load(ctx, fs.Arg(1), &openapi.Options{MaxBytes: *maxBytes})
	if err != nil {
		return err
	}
	if fs.Arg(0) == "list" {
		return listOperations(e, spec, tags)
	}
	if *name == "" {
		return usagef("--name is required: the connector's name, e.g. --name petstore")
	}
	if *interactive {
		picked, err := chooseOperations(e, spec, tags)
		if err != nil {
			return err
		}
		ops, tags = picked, nil
	}
	if len(ops) == 0 && len(tags) == 0 {
		_, err := spec.Import(openapi.Selection{}, &openapi.ImportOptions{Name: *name})
		return usagef("%s", strings.TrimPrefix(err.Error(), "openapi: "))
	}
	wasm, err := openapiModule(ctx, *module)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(wasm)
	res, err := spec.Import(openapi.Selection{Operations: ops, Tags: tags}, &openapi.ImportOptions{
		Name: *name, Version: *version, Publisher: *publisher, Server: *server, OverrideServer: *overrideServer,
		AllowPrivateServers: *allowPrivate, NoOutputSchemas: *noOutput, NoOutputSchemaFor: noOutputFor,
		ModulePath: "openapi.wasm", ModuleSHA256: hex.EncodeToString(sum[:]),
	})
	if err != nil {
		return err
	}
	dir := *out
	if dir == "" {
		dir = *name
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), res.Manifest, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "openapi.wasm"), wasm, 0o644); err != nil {
		return err
	}
	for _, n := range res.Notes {
		fmt.Fprintf(e.stderr, "note: %s\n", n)
	}
	fmt.Fprintf(e.stdout, "%s: connector %s with %d tools (%s)\n", filepath.Join(dir, "manifest.yaml"), *name, len(res.Tools), strings.Join(res.Tools, ", "))
	fmt.Fprintf(e.stdout, "next: review it, then\n  airlock plugin pack %s --key KEYFILE && airlock plugin install %s-%s.airlock\n  airlock grant %s --dry-run\n", dir, *name, *version, *name)
	return nil
}

// openapiStdin is where --interactive reads the choice (a variable so tests can answer).
var openapiStdin io.Reader = os.Stdin

func listOperations(e *env, spec *openapi.Spec, tags []string) error {
	shown := printOperations(e.stdout, spec, tags, false)
	fmt.Fprintf(e.stderr, "%d of %d operations (%s %s)\n", len(shown), len(spec.Operations()), spec.Source, spec.Version)
	return nil
}

// printOperations writes the operations (with --tag, only those) as a table, numbered when
// asked, and returns them in the order shown.
func printOperations(w io.Writer, spec *openapi.Spec, tags []string, numbered bool) []openapi.OperationInfo {
	var shown []openapi.OperationInfo
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if numbered {
		fmt.Fprint(tw, "#\t")
	}
	fmt.Fprintln(tw, "METHOD\tPATH\tOPERATION ID\tTAGS\tSUMMARY")
	for _, o := range spec.Operations() {
		if len(tags) > 0 && !anyIn(o.Tags, tags) {
			continue
		}
		shown = append(shown, o)
		summary := o.Summary
		if len(summary) > 60 {
			summary = summary[:57] + "..."
		}
		if numbered {
			fmt.Fprintf(tw, "%d\t", len(shown))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Method, o.Path, o.OperationID, strings.Join(o.Tags, ","), summary)
	}
	tw.Flush()
	return shown
}

// chooseOperations shows the numbered operations and reads a choice like "1,3-5".
func chooseOperations(e *env, spec *openapi.Spec, tags []string) ([]string, error) {
	shown := printOperations(e.stdout, spec, tags, true)
	fmt.Fprint(e.stdout, "Operations to import (numbers and ranges, e.g. 1,3-5): ")
	line, err := bufio.NewReader(openapiStdin).ReadString('\n')
	if err != nil && line == "" {
		return nil, errors.New("no choice read from standard input")
	}
	var picked []string
	for _, part := range strings.Split(strings.TrimSpace(line), ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		from, to, isRange := strings.Cut(part, "-")
		a, errA := strconv.Atoi(strings.TrimSpace(from))
		b := a
		var errB error
		if isRange {
			b, errB = strconv.Atoi(strings.TrimSpace(to))
		}
		if errA != nil || errB != nil || a < 1 || b > len(shown) || a > b {
			return nil, usagef("%q: choose numbers between 1 and %d, like 1,3-5", part, len(shown))
		}
		for i := a; i <= b; i++ {
			picked = append(picked, shown[i-1].Method+" "+shown[i-1].Path)
		}
	}
	return picked, nil
}

func anyIn(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}

// openapiModule returns the generic connector module: --module, else the one make plugins
// built, else built now from the source tree.
func openapiModule(ctx context.Context, path string) ([]byte, error) {
	if path != "" {
		if u, err := url.Parse(path); err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
			return nil, fmt.Errorf("--module %s: give a file (build it with 'airlock plugin build openapi')", path)
		}
		return os.ReadFile(path)
	}
	if b, err := os.ReadFile(filepath.Join("build", "plugins", "openapi.wasm")); err == nil {
		return b, nil
	}
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		return nil, errors.New("no generic connector module: pass --module FILE (build it with 'airlock plugin build openapi' in the airlock source tree)")
	}
	built, err := pluginbuild.Build(ctx, pluginbuild.Options{Package: "./plugins/openapi", Root: root})
	if err != nil {
		return nil, err
	}
	return os.ReadFile(built)
}
