package openapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/openapi"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/fakeopenapi"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// connectorModule builds the generic connector once per test binary.
func connectorModule(t *testing.T) ([]byte, string) {
	t.Helper()
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path, err := pluginbuild.Build(context.Background(), pluginbuild.Options{Package: "./plugins/openapi", Root: root})
	if err != nil {
		t.Fatalf("building plugins/openapi: %v", err)
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	return wasm, hex.EncodeToString(sum[:])
}

// importAndLoad imports a description, loads the connector into a new host with grantYAML,
// and returns the host.
func importAndLoad(t *testing.T, specFile string, sel openapi.Selection, opts openapi.ImportOptions, grantYAML string) (*host.Host, *hosttest.Recorder, *openapi.Result) {
	t.Helper()
	wasm, digest := connectorModule(t)
	spec, err := openapi.Load(context.Background(), specFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.ModuleSHA256 = digest
	res, err := spec.Import(sel, &opts)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(opts.Name+".yaml", res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	g, err := manifest.ParseGrant("grant.yaml", []byte(grantYAML))
	if err != nil {
		t.Fatal(err)
	}
	h, rec := hosttest.New(t, host.Config{})
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, rec, res
}

func loadDoc(t *testing.T, path string) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func call(h *host.Host, tool, args string) *host.Result {
	return h.Call(context.Background(), host.CallRequest{Tool: tool, Arguments: json.RawMessage(args)})
}

// TestPetstoreEndToEnd imports Petstore, grants it, and calls its tools through host.Call
// against a fake Petstore that validates every request against the description.
func TestPetstoreEndToEnd(t *testing.T) {
	path := specPath(t, "petstore_expanded_3.0.yaml")
	fake := fakeopenapi.New(loadDoc(t, path), "https://petstore.swagger.io", func(r *fakeopenapi.Request) (int, any) {
		switch r.OperationID {
		case "findPets":
			return 200, []any{map[string]any{"id": 1, "name": "Rex", "tag": "dog"}}
		case "addPet":
			var p map[string]any
			json.Unmarshal(r.Body, &p)
			p["id"] = 2
			return 200, p
		case "find pet by id":
			if r.PathParams["id"] == "404" {
				return 404, map[string]any{"code": 404, "message": "no pet 404"}
			}
			return 200, map[string]any{"id": 1, "name": "Rex"}
		case "deletePet":
			return 204, nil
		}
		return 500, nil
	})
	t.Cleanup(fake.Close)
	h, rec, _ := importAndLoad(t, path, openapi.Selection{Operations: []string{"GET /pets", "POST /pets", "find pet by id", "deletePet"}},
		openapi.ImportOptions{Name: "petstore"}, `
connector: petstore
tools: ["*"]
hosts: ["*"]
upstreams:
  "https://petstore.swagger.io": "`+fake.URL+`"
`)
	var names []string
	for _, tool := range h.Tools() {
		names = append(names, tool.Name)
	}
	if got := strings.Join(sortStrings(names), " "); got != "petstore.add_pet petstore.delete_pet petstore.find_pet_by_id petstore.find_pets" {
		t.Errorf("tools = %s", got)
	}

	res := call(h, "petstore.find_pets", `{"tags":["dog","cat"],"limit":5}`)
	if !res.OK || !strings.Contains(string(res.Data), `"Rex"`) {
		t.Errorf("find_pets = %+v %s", res.Error, res.Data)
	}
	res = call(h, "petstore.add_pet", `{"body":{"name":"Tom","tag":"cat"}}`)
	if !res.OK || !strings.Contains(string(res.Data), `"id":2`) {
		t.Errorf("add_pet = %+v %s", res.Error, res.Data)
	}
	res = call(h, "petstore.find_pet_by_id", `{"id":404}`)
	if res.OK || res.Error.Category != abi.Correctable || !strings.Contains(res.Error.Message, "404") {
		t.Errorf("find_pet_by_id 404 = %+v, want a correctable not-found error", res.Error)
	}
	tool := findTool(h, "petstore.delete_pet")
	if tool == nil || !tool.Annotations.Destructive || !tool.NeedsConfirmation {
		t.Errorf("delete_pet = %+v, want destructive and needing confirmation", tool)
	}
	before := len(fake.Accepted())
	// Invalid arguments are refused by the host before the plugin runs: nothing reaches the API.
	for _, bad := range []string{`{"id":"1; DROP"}`, `{}`, `{"id":1,"extra":true}`} {
		res = call(h, "petstore.find_pet_by_id", bad)
		if res.OK || res.Error.Code != abi.CodeInvalidArguments {
			t.Errorf("find_pet_by_id(%s) = %+v, want invalid_arguments", bad, res.Error)
		}
	}
	res = call(h, "petstore.add_pet", `{"body":{"tag":"no name"}}`)
	if res.OK || res.Error.Code != abi.CodeInvalidArguments {
		t.Errorf("add_pet without name = %+v, want invalid_arguments", res.Error)
	}
	if n := len(fake.Accepted()) + len(fake.Rejected()); n != before {
		t.Errorf("the API saw %d requests for invalid arguments, want none", n-before)
	}
	if r := fake.Rejected(); len(r) > 0 {
		t.Errorf("requests that do not match the description:\n%s", strings.Join(r, "\n"))
	}
	if n := len(rec.Audit.Events()); n == 0 {
		t.Error("no audit events")
	}
}

func findTool(h *host.Host, name string) *host.Tool {
	for _, t := range h.Tools() {
		if t.Name == name {
			return &t
		}
	}
	return nil
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestPathParameterAttacks: a path parameter never leaves its segment, whatever it holds; what
// reaches the upstream is the one operation, with the value percent-encoded.
func TestPathParameterAttacks(t *testing.T) {
	const spec = "testdata/files_3.0.yaml"
	t.Setenv("AIRLOCK_OPENAPI_TEST_KEY", "canary-key-3f9c")
	fake := fakeopenapi.New(loadDoc(t, spec), "https://files.example.com", func(r *fakeopenapi.Request) (int, any) {
		return 200, map[string]any{"name": r.PathParams["name"]}
	})
	t.Cleanup(fake.Close)
	h, _, _ := importAndLoad(t, spec, openapi.Selection{Operations: []string{"getFile"}}, openapi.ImportOptions{Name: "files"}, `
connector: files
tools: ["*"]
hosts: ["*"]
credentials: {key: "env:AIRLOCK_OPENAPI_TEST_KEY"}
upstreams:
  "https://files.example.com": "`+fake.URL+`"
`)
	// Each value either reaches the API inside the one path segment, percent-encoded, or is
	// refused before anything is sent (the host's egress refuses an encoded slash or control
	// character in a path outright). Never another path.
	for _, tc := range []struct {
		name    string
		sent    bool
		refusal string // a word of the refusal when not sent
	}{
		{"../admin", false, "encoded slash"},
		{"a/../../b", false, "encoded slash"},
		{"a\r\nX-Injected: 1", false, "control character"},
		{"..%2fadmin", true, ""},
		{"%2e%2e", true, ""},
		{"a?admin=1", true, ""},
		{"a#frag", true, ""},
		{"..;x", false, ". or .. segment"}, // a dot segment to servers that cut ;params (Tomcat)
	} {
		args, _ := json.Marshal(map[string]any{"name": tc.name})
		n := len(fake.Accepted())
		res := call(h, "files.get_file", string(args))
		acc := fake.Accepted()
		if !tc.sent {
			if res.OK || len(acc) != n || !strings.Contains(res.Error.Message, tc.refusal) {
				t.Errorf("get_file(%q) = ok %v %+v, %d requests sent; want refused (%s) and nothing sent", tc.name, res.OK, res.Error, len(acc)-n, tc.refusal)
			}
			continue
		}
		if !res.OK || len(acc) != n+1 {
			t.Errorf("get_file(%q) = %+v; want it sent, encoded", tc.name, res.Error)
			continue
		}
		last := acc[len(acc)-1]
		if !strings.HasPrefix(last.Path, "/api/files/") || strings.Count(last.Path, "/") != 3 {
			t.Errorf("get_file(%q) reached %s, want the one segment under /api/files/", tc.name, last.Path)
		}
		if got, _ := url.PathUnescape(last.PathParams["name"]); got != tc.name {
			t.Errorf("get_file(%q): the API read the parameter as %q", tc.name, got)
		}
		if len(last.Query) != 0 {
			t.Errorf("get_file(%q) sent a query: %v", tc.name, last.Query)
		}
		if last.Header.Get("X-Api-Key") != "canary-key-3f9c" {
			t.Errorf("get_file(%q): the API key was not injected", tc.name)
		}
	}
	// A whole segment of dots would be removed by URL normalisation: refused by the connector.
	for _, name := range []string{"..", ".", ""} {
		args, _ := json.Marshal(map[string]any{"name": name})
		n := len(fake.Accepted())
		res := call(h, "files.get_file", string(args))
		if res.OK || res.Error.Category != abi.Correctable || len(fake.Accepted()) != n {
			t.Errorf("get_file(%q) = %+v, want refused before sending", name, res.Error)
		}
	}
	// Query styles reach the API as the description says (the fake validates them).
	res := call(h, "files.get_file", `{"name":"a.txt","tags":["x","y z"],"ids":[1,2],"words":["p","q"],"filter":{"owner":"me","size":3},"X-Trace":"t1"}`)
	if !res.OK {
		t.Errorf("get_file with every query style = %+v", res.Error)
	}
	if r := fake.Rejected(); len(r) > 0 {
		t.Errorf("requests that do not match the description:\n%s", strings.Join(r, "\n"))
	}
	res = call(h, "files.get_file", `{"name":"a","X-Trace":"x\r\nEvil: 1"}`)
	if res.OK {
		t.Errorf("a header parameter with CRLF was sent: %s", res.Data)
	}
}

// TestPrivateServersRefusedAtEgress: a description whose server is a metadata or loopback
// address, imported with AllowPrivateServers and granted every host, still cannot reach it:
// the host's egress refuses private targets the grant does not list in private_targets.
func TestPrivateServersRefusedAtEgress(t *testing.T) {
	for _, server := range []string{"http://169.254.169.254/latest", "http://127.0.0.1:9/api"} {
		dir := t.TempDir()
		doc := "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nservers: [{url: '" + server + "'}]\n" +
			"paths:\n  /meta-data:\n    get: {operationId: steal, responses: {'200': {description: ok}}}\n"
		p := dir + "/private.yaml"
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		h, rec, _ := importAndLoad(t, p, openapi.Selection{Operations: []string{"steal"}},
			openapi.ImportOptions{Name: "private", AllowPrivateServers: true}, "connector: private\ntools: [\"*\"]\nhosts: [\"*\"]\n")
		res := call(h, "private.steal", `{}`)
		if res.OK || res.Error.Code != abi.CodeEgressDenied {
			t.Errorf("%s: call = ok %v %+v, want egress_denied", server, res.OK, res.Error)
		}
		denied := false
		for _, e := range rec.Audit.Events() {
			denied = denied || e.Kind == "request" && e.Outcome == "denied"
		}
		if !denied {
			t.Errorf("%s: no denied request in the audit trail", server)
		}
	}
}

// TestServerVariables: a templated server's variables become config keys the grant fills; the
// manifest has network rules for each value the description allows, so another value is refused
// at egress.
func TestServerVariables(t *testing.T) {
	dir := t.TempDir()
	doc := `openapi: 3.0.3
info: {title: regional, version: '1'}
servers:
  - url: 'https://{region}.api.example.com/{version}'
    variables:
      region: {default: eu, enum: [eu, us]}
      version: {default: v2}
paths:
  /things:
    get:
      operationId: listThings
      responses: {'200': {description: ok, content: {application/json: {schema: {type: array, items: {type: string}}}}}}
`
	p := dir + "/regional.yaml"
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := fakeopenapi.New(loadDoc(t, p), "https://us.api.example.com", func(*fakeopenapi.Request) (int, any) { return 200, []string{"a"} })
	t.Cleanup(fake.Close)
	grant := func(region string) string {
		return "connector: regional\ntools: [\"*\"]\nhosts: [\"*\"]\nconfig: {server_region: " + region + "}\n" +
			"upstreams: {\"https://us.api.example.com\": \"" + fake.URL + "\", \"https://eu.api.example.com\": \"" + fake.URL + "\"}\n"
	}
	h, _, res := importAndLoad(t, p, openapi.Selection{Operations: []string{"listThings"}}, openapi.ImportOptions{Name: "regional"}, grant("us"))
	m, err := manifest.Parse("regional.yaml", res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, r := range m.Network {
		hosts = append(hosts, r.Host+r.PathPrefix)
	}
	if got := strings.Join(sortStrings(hosts), " "); got != "eu.api.example.com/v2/things us.api.example.com/v2/things" {
		t.Errorf("network rules = %s", got)
	}
	r := call(h, "regional.list_things", `{}`)
	if !r.OK || len(fake.Accepted()) != 1 || fake.Accepted()[0].Path != "/v2/things" {
		t.Errorf("list_things in region us = %+v, fake saw %+v", r.Error, fake.Accepted())
	}
	// A region the description does not allow has no network rule: refused at egress.
	h2, _, _ := importAndLoad(t, p, openapi.Selection{Operations: []string{"listThings"}}, openapi.ImportOptions{Name: "regional"}, grant("attacker"))
	r = call(h2, "regional.list_things", `{}`)
	if r.OK || r.Error.Code != abi.CodeEgressDenied {
		t.Errorf("list_things in region attacker = ok %v %+v, want egress_denied", r.OK, r.Error)
	}
	// A value that would change the URL's shape is refused by the connector.
	h3, _, _ := importAndLoad(t, p, openapi.Selection{Operations: []string{"listThings"}}, openapi.ImportOptions{Name: "regional"}, grant(`"evil.com/x?"`))
	r = call(h3, "regional.list_things", `{}`)
	if r.OK || !strings.Contains(r.Error.Message, "server variable region") {
		t.Errorf("list_things with region %q = ok %v %+v, want refused", "evil.com/x?", r.OK, r.Error)
	}
	if len(fake.Accepted()) != 1 {
		t.Errorf("the API saw %d requests, want 1", len(fake.Accepted()))
	}
}
