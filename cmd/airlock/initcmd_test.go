package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/host/bundle"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// A scaffolded connector builds, passes its own tests, packs, signs, installs and passes
// 'airlock plugin test' without a single edit. It lives outside this repository (a temporary
// directory) and is made without --airlock, as a third party's would: the go tool finds the pdk
// through the go.mod that init wrote, with the module proxy the environment has (GOFLAGS=-mod=mod:
// nothing may be missing from go.sum either).
func TestInitConnector(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a connector with the go tool (about 30 s)")
	}
	work, state := t.TempDir(), t.TempDir()
	t.Chdir(work) // no checkout of this repository around, as for a third party
	dir := filepath.Join(work, "weather")
	mustAirlock(t, "init", "connector", "weather", "--dir", dir, "--publisher", "acme")
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !strings.Contains(string(gomod), "replace github.com/airlock-dev/airlock => ./airlock-pdk") {
		t.Fatalf("go.mod = %s, %v", gomod, err)
	}
	if code, _, errOut := airlock(t, "init", "connector", "weather", "--dir", dir); code != exitError || !strings.Contains(errOut, "not empty") {
		t.Errorf("init over an existing connector = %d %q", code, errOut)
	}

	goCmd := func(env []string, args ...string) {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), append([]string{"GOFLAGS=-mod=mod", "GOWORK=off"}, env...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	goCmd(nil, "vet", "./...")
	goCmd(nil, "test", "./...")
	goCmd([]string{"GOOS=wasip1", "GOARCH=wasm"}, "build", "-buildmode=c-shared", "-o", "weather.wasm", ".")
	// The build needed nothing beyond what init wrote: no requirement was added.
	if after, _ := os.ReadFile(filepath.Join(dir, "go.mod")); string(after) != string(gomod) {
		t.Errorf("the go tool had to change go.mod:\n%s", after)
	}
	packSignInstallTest(t, work, state, dir, "weather")
}

// An AssemblyScript connector scaffolded outside the repository builds with npm (the unmodified
// @extism/as-pdk from the registry), and is packed, signed, installed and tested like a Go one.
func TestInitConnectorAssemblyScript(t *testing.T) {
	if testing.Short() {
		t.Skip("installs npm packages and builds a connector")
	}
	testenv.Tool(t, "npm", "nodejs npm")
	work, state := t.TempDir(), t.TempDir()
	t.Chdir(work)
	dir := filepath.Join(work, "weather_as")
	if code, out, errOut := airlock(t, "init", "connector", "weather_as", "--lang", "assemblyscript", "--dir", dir, "--publisher", "acme"); code != exitOK || !strings.Contains(out, "npm run build") {
		t.Fatalf("init --lang assemblyscript = %d\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{{"install", "--no-audit", "--no-fund"}, {"run", "build"}} {
		cmd := exec.Command("npm", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	packSignInstallTest(t, work, state, dir, "weather_as")

	// Installed and signed: an admin grants it (the upstream is a local fake that checks the
	// token), and it is called from the CLI (host.Call) and by an agent over MCP.
	hermetic(t)
	const token = "as-connector-token-71c9"
	t.Setenv("WEATHER_AS_TOKEN", token)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token || r.URL.Path != "/v1/items/item-2" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"id":"item-2","title":"Second"}`))
	}))
	defer api.Close()
	g := []string{"--state-dir", state, "--config", filepath.Join(work, "airlock.yaml")}
	os.WriteFile(filepath.Join(work, "airlock.yaml"), []byte("{}\n"), 0o600)
	grant := filepath.Join(work, "weather_as.grant.yaml")
	os.WriteFile(grant, []byte("connector: weather_as\ntools: [\"*\"]\nhosts: [api.example.com]\ncredentials:\n  api_token: env:WEATHER_AS_TOKEN\nupstreams:\n  https://api.example.com: "+api.URL+"\n"), 0o600)
	mustAirlock(t, append([]string{"grant", "weather_as", "--file", grant}, g...)...)
	out := mustAirlock(t, append([]string{"call", "weather_as.get_item", "--args", `{"id":"item-2"}`}, g...)...)
	if !strings.Contains(out, `"title": "Second"`) || strings.Contains(out, token) {
		t.Errorf("airlock call weather_as.get_item = %s", out)
	}
	agentToken := strings.TrimSpace(mustAirlock(t, append([]string{"agent", "add", "bot"}, g...)...))
	s := startServe(t, g...)
	s.get(t, http.DefaultClient, "http", "/healthz")
	client := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: "http://" + s.addr + "/mcp",
		HTTPClient: &http.Client{Transport: bearerTransport{token: agentToken}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "weather_as.get_item", Arguments: map[string]any{"id": "item-2"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	if res.IsError || !strings.Contains(string(b), `Second`) || strings.Contains(string(b), token) {
		t.Errorf("weather_as.get_item over MCP = %s\nserver output: %s", b, s.logs.String())
	}
}

// mustAirlock runs airlock with args and returns its output; it fails the test unless it exits 0.
func mustAirlock(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := airlock(t, args...)
	if code != exitOK {
		t.Fatalf("airlock %s = %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// packSignInstallTest packs the scaffolded connector NAME in dir, signs it with a new key,
// installs it into state, and runs 'airlock plugin test' against the fake upstream the
// scaffold's own e2e test plays.
func packSignInstallTest(t *testing.T, work, state, dir, name string) {
	t.Helper()
	sd := []string{"--state-dir", state}
	key := filepath.Join(work, "acme.key")
	bun := filepath.Join(work, name+"-0.1.0.airlock")
	mustAirlock(t, "plugin", "pack", dir, "--out", bun)
	mustAirlock(t, "plugin", "keygen", "--out", key)
	mustAirlock(t, "plugin", "sign", bun, "--key", key)
	mustAirlock(t, append([]string{"trust", "add", "acme", key + ".pub"}, sd...)...)
	if out := mustAirlock(t, append([]string{"plugin", "install", bun}, sd...)...); !strings.Contains(out, "installed "+name+" 0.1.0 by acme") {
		t.Errorf("install = %q", out)
	}
	if rows := listInstalled(t, state); len(rows) != 1 || rows[0].Name != name || rows[0].Status != "active" {
		t.Errorf("installed = %+v", rows)
	}

	var sawToken string
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawToken = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if r.URL.Path != "/v1/items/item-1" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"item-1","title":"First"}`))
	}))
	defer fake.Close()
	code, out, errOut := airlock(t, "plugin", "test", bun, "--upstream", fake.URL, "--key", key+".pub", "--json")
	if code != exitOK {
		t.Fatalf("plugin test = %d\n%s%s", code, out, errOut)
	}
	var rep bundle.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Tools) != 1 || !rep.Tools[0].OK || rep.Tools[0].Output != "valid against output_schema" || len(rep.Tools[0].Requests) != 1 {
		t.Fatalf("report = %+v", rep)
	}
	q := rep.Tools[0].Requests[0]
	if q.URL != "https://api.example.com/v1/items/item-1" || q.Credential != "api_token" || !q.Injected {
		t.Errorf("request = %+v", q)
	}
	if !strings.HasPrefix(sawToken, "canary-") || strings.Contains(out, sawToken) {
		t.Errorf("the fake saw token %q; the report must not show it", sawToken)
	}
}

// --airlock DIR builds against a checkout instead of the pdk the binary carries.
func TestInitConnectorAgainstCheckout(t *testing.T) {
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "weather")
	if code, out, errOut := airlock(t, "init", "connector", "weather", "--dir", dir, "--airlock", root); code != exitOK {
		t.Fatalf("init --airlock = %d %s%s", code, out, errOut)
	}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !strings.Contains(string(gomod), "replace github.com/airlock-dev/airlock => "+root) {
		t.Fatalf("go.mod = %s, %v", gomod, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "airlock-pdk")); !os.IsNotExist(err) {
		t.Errorf("airlock-pdk written although --airlock was given: %v", err)
	}
	if code, _, _ := airlock(t, "init", "connector", "x", "--dir", filepath.Join(t.TempDir(), "x"), "--airlock", t.TempDir()); code != exitError {
		t.Errorf("init --airlock at a directory that is no checkout = %d, want %d", code, exitError)
	}
}

func TestInitRefusesBadNames(t *testing.T) {
	for _, args := range [][]string{
		{"init", "connector", "Weather"},
		{"init", "connector", "../evil"},
		{"init", "connector", "ok", "--publisher", "Not Valid"},
		{"init", "plugin", "ok"},
		{"init", "connector", "ok", "--lang", "rust"},
	} {
		if code, _, _ := airlock(t, args...); code != exitUsage {
			t.Errorf("airlock %v = %d, want %d", args, code, exitUsage)
		}
	}
}

// Inside this repository (plugins/NAME) the scaffold is part of the module: no go.mod.
func TestInitInsideRepository(t *testing.T) {
	root, _ := pluginbuild.ModuleRoot()
	dir, err := os.MkdirTemp(filepath.Join(root, "cmd", "airlock"), ".init-test-") // a dot directory: the go tool ignores it
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	target := filepath.Join(dir, "inside")
	if code, out, errOut := airlock(t, "init", "connector", "inside", "--dir", target); code != exitOK {
		t.Fatalf("init = %d %s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(target, "go.mod")); !os.IsNotExist(err) {
		t.Errorf("go.mod written inside the repository: %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, "inside.go")); err != nil {
		t.Error(err)
	}
}
