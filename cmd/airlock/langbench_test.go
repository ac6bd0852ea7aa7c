package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// BenchmarkConnectorLanguages runs the same connector written in Go (the 'airlock init
// connector' scaffold, built with the standard Go compiler) and in AssemblyScript
// (plugins/items-as, built with npm): module size, load time (a cold compile into an empty cache,
// with the host's instrumentation) and one get_item call through host.Call against a local
// upstream. RATIONALE.md ("Connectors in other languages") records a run:
//
//	go test -run '^$' -bench ConnectorLanguages -benchtime 5x ./cmd/airlock
func BenchmarkConnectorLanguages(b *testing.B) {
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	asWasm, err := pluginbuild.AssemblyScript(ctx, filepath.Join(root, "plugins", "items-as"), "")
	if err != nil {
		b.Skip(err)
	}
	// The Go twin: the scaffold, outside the repository, built like a publisher builds it.
	dir := filepath.Join(b.TempDir(), "items")
	if code := run(ctx, []string{"init", "connector", "items", "--dir", dir}, io.Discard, io.Discard); code != exitOK {
		b.Fatal("init failed")
	}
	goWasm := filepath.Join(dir, "items.wasm")
	cmd := exec.Command("go", "build", "-trimpath", "-buildmode=c-shared", "-o", goWasm, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"id": "item-1", "title": "First"})
	}))
	defer api.Close()

	for _, c := range []struct{ lang, name, wasm, manifest string }{
		{"go", "items", goWasm, filepath.Join(dir, "manifest.yaml")},
		{"assemblyscript", "items_as", asWasm, filepath.Join(root, "plugins", "items-as", "manifest.yaml")},
	} {
		wasm, err := os.ReadFile(c.wasm)
		if err != nil {
			b.Fatal(err)
		}
		m, err := manifest.Load(c.manifest)
		if err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256(wasm)
		m.Module.SHA256 = hex.EncodeToString(sum[:])
		g := &manifest.Grant{Connector: c.name, Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
			Credentials: manifest.SecretRefs(map[string]string{"api_token": "env:ITEMS_TOKEN"}),
			Upstreams:   map[string]string{"https://api.example.com": api.URL}}
		sec := secret.Mux{"env": secret.Env{Lookup: func(string) (string, bool) { return "token", true }}}
		newHost := func(b *testing.B) *host.Host {
			h, err := host.New(host.Config{StateDir: b.TempDir(), Secrets: sec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			return h
		}
		b.Run(c.lang+"/load", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				h := newHost(b) // an empty compilation cache: every load compiles
				b.StartTimer()
				if err := h.LoadModule(ctx, m, wasm, g); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				h.Close(ctx)
				b.StartTimer()
			}
			b.ReportMetric(float64(len(wasm)), "module-bytes") // after the loop, which resets metrics
		})
		b.Run(c.lang+"/call", func(b *testing.B) {
			h := newHost(b)
			defer h.Close(ctx)
			if err := h.LoadModule(ctx, m, wasm, g); err != nil {
				b.Fatal(err)
			}
			req := host.CallRequest{Tool: c.name + ".get_item", Arguments: json.RawMessage(`{"id":"item-1"}`), Agent: "bench"}
			for b.Loop() {
				if res := h.Call(ctx, req); !res.OK {
					b.Fatalf("get_item: %+v", res.Error)
				}
			}
		})
	}
}
