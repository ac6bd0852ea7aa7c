package host_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// Attack (hostile agent and hostile plugin, red team s9): a number the JSON Schema library
// cannot turn into a big.Rat (1e9999999) under a "maximum" made validation panic on the calling
// goroutine, through Host.Call: an agent's arguments, or a plugin's result passing on what an
// upstream sent, could take the host down. Both are now refused as invalid, and the host goes
// on serving.
func TestOutsizedNumbersDoNotCrashCalls(t *testing.T) {
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	src, err := os.ReadFile("testdata/hostile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// echo returns its arguments: "n" is bounded on the way in, "m" on the way out.
	yaml := string(src)
	old := "    description: Hostile echo.\n    scopes: [test]\n    input_schema: {type: object}\n"
	if !strings.Contains(yaml, old) {
		t.Fatal("hostile.yaml's echo tool is not as this test expects")
	}
	yaml = strings.Replace(yaml, old, "    description: Hostile echo.\n    scopes: [test]\n"+
		"    input_schema: {type: object, properties: {n: {type: number, maximum: 5}}}\n"+
		"    output_schema: {type: object, properties: {m: {type: number, maximum: 5}}}\n", 1)
	path := filepath.Join(t.TempDir(), "hostile.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	bounded, err := manifest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	bounded.Module.SHA256 = m.Module.SHA256
	h, _ := hosttest.New(t, host.Config{Secrets: secrets(), Resolver: fakeDNS{}})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"*"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "env:HOSTILE_TOKEN", "other_key": "env:OTHER_KEY"})}
	if err := h.LoadModule(context.Background(), bounded, wasm, g); err != nil {
		t.Fatal(err)
	}
	if res := call(h, "hostile.echo", `{"n": 1e9999999}`); res.OK || res.Error.Code != abi.CodeInvalidArguments ||
		!strings.Contains(res.Error.Message, `"n" is a number too large`) {
		t.Errorf("arguments with 1e9999999: %+v, want invalid_arguments naming \"n\"", res.Error)
	}
	if res := call(h, "hostile.echo", `{"m": -1e9999999}`); res.OK {
		t.Errorf("a result with -1e9999999 was handed over: %s", res.Data)
	}
	if res := call(h, "hostile.echo", `{"n": 4.5, "m": 1}`); !res.OK {
		t.Errorf("valid arguments and result after the attacks: %+v", res.Error)
	}
}

// An agent cannot send a property under another case ("TEXT" beside "text") to a tool whose
// schema, like most that are not written by hand, allows additional properties: the validator
// checked "text" (at most 5 characters) and let "TEXT" through as an extra, and a connector
// reading its arguments with encoding/json, as Extism Go PDK users do, takes the last of the
// two for its Text field. The call is refused before the plugin runs, naming the key and the
// property to send instead.
func TestCaseVariantArgumentRefused(t *testing.T) {
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "host/testdata/hostile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const echo = "description: Hostile echo.\n    scopes: [test]\n    input_schema: {type: object}"
	if !strings.Contains(string(raw), echo) {
		t.Fatal("hostile.yaml's echo tool changed: update this test")
	}
	raw = []byte(strings.Replace(string(raw), echo, "description: Hostile echo.\n    scopes: [test]\n"+
		"    input_schema: {type: object, properties: {text: {type: string, maxLength: 5}}}", 1))
	path := filepath.Join(t.TempDir(), "hostile.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, path)
	if err != nil {
		t.Fatal(err)
	}
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", rel)
	h, _ := hosttest.New(t, host.Config{Secrets: secrets(), Resolver: fakeDNS{}})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"echo"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "env:HOSTILE_TOKEN", "other_key": "env:OTHER_KEY"})}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	if res := call(h, "hostile.echo", `{"text":"hello"}`); !res.OK {
		t.Fatalf("a valid call = %+v", res.Error)
	}
	for _, args := range []string{
		`{"text":"ok","TEXT":"far longer than the schema's five characters"}`,
		`{"Text":"far longer than the schema's five characters"}`,
	} {
		res := call(h, "hostile.echo", args)
		if res.OK || res.Error.Code != abi.CodeInvalidArguments || !strings.Contains(res.Error.Message, "only by case") {
			t.Errorf("%s = ok %v %+v, want invalid_arguments naming the case variant", args, res.OK, res.Error)
		}
	}
}
