package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/airlock-dev/airlock/internal/fakeopenapi"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// TestOpenAPIWalkthrough is the README's walk from a description URL to a granted, callable
// tool: import → pack (signed) → install → grant, then tools and call, against a fake Petstore
// that validates every request against the description.
func TestOpenAPIWalkthrough(t *testing.T) {
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join(root, "..", "shared", "specs", "petstore_expanded_3.0.yaml")
	specData, err := os.ReadFile(specFile)
	if err != nil {
		t.Skipf("published descriptions not found (%v): CI has them at ../shared/specs", err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(specData)
	if err != nil {
		t.Fatal(err)
	}
	fake := fakeopenapi.New(doc, "https://petstore.swagger.io", func(r *fakeopenapi.Request) (int, any) {
		return 200, map[string]any{"id": 7, "name": "Rex"}
	})
	t.Cleanup(fake.Close)
	published := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(specData)
	}))
	defer published.Close()

	dir, state := t.TempDir(), t.TempDir()
	t.Chdir(dir)
	sd := []string{"--state-dir", state}
	mustRun := func(args ...string) string {
		t.Helper()
		code, out, errOut := airlock(t, args...)
		if code != exitOK {
			t.Fatalf("airlock %s = %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	// Without a selection: how many operations there are and how to choose; exit 2.
	code, _, errOut := airlock(t, "openapi", "import", published.URL+"/petstore.yaml", "--name", "petstore")
	if code != exitUsage || !strings.Contains(errOut, "4 operations") || !strings.Contains(errOut, "--operations") {
		t.Errorf("import without a selection = %d %s", code, errOut)
	}
	// One-time set-up of a publisher key the host trusts.
	mustRun("plugin", "keygen", "--out", "acme.key")
	mustRun(append([]string{"trust", "add", "acme", "acme.key.pub"}, sd...)...)

	// The four commands.
	mustRun("openapi", "import", published.URL+"/petstore.yaml", "--name", "petstore", "--publisher", "acme",
		"--operations", "GET /pets,find pet by id", "--module", builtConnector(t, root))
	mustRun("plugin", "pack", "petstore", "--key", "acme.key")
	mustRun(append([]string{"plugin", "install", "petstore-0.1.0.airlock"}, sd...)...)
	grant := "connector: petstore\ntools: [\"*\"]\nhosts: [petstore.swagger.io]\nupstreams: {\"https://petstore.swagger.io\": \"" + fake.URL + "\"}\n"
	if err := os.WriteFile("grant.yaml", []byte(grant), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(append([]string{"grant", "petstore", "--file", "grant.yaml"}, sd...)...)

	tools := mustRun(append([]string{"tools"}, sd...)...)
	if !strings.Contains(tools, "petstore.find_pets") || !strings.Contains(tools, "petstore.find_pet_by_id") {
		t.Errorf("airlock tools does not show the imported tools:\n%s", tools)
	}
	out := mustRun(append([]string{"call", "petstore.find_pet_by_id", "--args", `{"id":7}`}, sd...)...)
	if !strings.Contains(out, `"Rex"`) {
		t.Errorf("call = %s", out)
	}
	if acc := fake.Accepted(); len(acc) != 1 || acc[0].Path != "/v2/pets/7" {
		t.Errorf("the fake Petstore received %+v", acc)
	}
	if r := fake.Rejected(); len(r) > 0 {
		t.Errorf("requests that do not match the description: %v", r)
	}
}

func builtConnector(t *testing.T, root string) string {
	t.Helper()
	p, err := pluginbuild.Build(t.Context(), pluginbuild.Options{Package: "./plugins/openapi", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOpenAPIInteractive: --interactive shows numbered operations and imports the ones chosen.
func TestOpenAPIInteractive(t *testing.T) {
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(root, "..", "shared", "specs", "petstore_expanded_3.0.yaml")
	if _, err := os.Stat(spec); err != nil {
		t.Skipf("published descriptions not found (%v): CI has them at ../shared/specs", err)
	}
	module := builtConnector(t, root)
	out := filepath.Join(t.TempDir(), "pets")
	defer func(r io.Reader) { openapiStdin = r }(openapiStdin)
	openapiStdin = strings.NewReader("1, 3-4\n")
	code, stdout, errOut := airlock(t, "openapi", "import", spec, "--name", "pets", "--interactive", "--module", module, "--out", out)
	if code != exitOK || !strings.Contains(stdout, "3  DELETE  /pets/{id}") || !strings.Contains(stdout, "3 tools (find_pets, delete_pet, find_pet_by_id)") {
		t.Errorf("import --interactive = %d\n%s%s", code, stdout, errOut)
	}
	openapiStdin = strings.NewReader("0\n")
	code, _, errOut = airlock(t, "openapi", "import", spec, "--name", "pets", "--interactive", "--module", module, "--out", out)
	if code != exitUsage || !strings.Contains(errOut, "between 1 and 4") {
		t.Errorf("import --interactive with 0 = %d %s", code, errOut)
	}
}
