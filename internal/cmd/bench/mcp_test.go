package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// TestMCPCrowd runs row 8 alone, for profiling the MCP path:
//
//	AIRLOCK_BENCH_MCP=1 go test -run TestMCPCrowd -v ./internal/cmd/bench
//	AIRLOCK_BENCH_MCP=airlock (or floor) go test -run TestMCPCrowd -cpuprofile cpu.out -v ./internal/cmd/bench
func TestMCPCrowd(t *testing.T) {
	if os.Getenv("AIRLOCK_BENCH_MCP") == "" {
		t.Skip("set AIRLOCK_BENCH_MCP=1 to run row 8 of make bench alone")
	}
	ctx := context.Background()
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	m, wasm, err := connector(ctx, root, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"noop"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "env:TOKEN", "other_key": "env:TOKEN"})}
	o := &options{count: 3, benchtime: 500 * time.Millisecond, stderr: os.Stderr}
	cache := filepath.Join(filepath.Dir(pluginbuild.DefaultCacheDir()), "wazero")
	if only := os.Getenv("AIRLOCK_BENCH_MCP"); only == "airlock" || only == "floor" { // one alone, for its profile
		target, stop, err := startAirlockHTTP(ctx, t.TempDir(), cache, m, wasm, g, false)
		if only == "floor" {
			stop()
			target, stop, err = startFloor()
		}
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		rs, err := crowdRows(ctx, 3, []*mcpTarget{target}, crowdSize, crowdSize, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s, %d clients: %.0f calls/s, %s CPU/call", only, crowdSize, rs[0].Median, duration(rs[0].CPU))
		return
	}
	rows, err := mcpRows(ctx, o, t.TempDir(), cache, m, wasm, g)
	if err != nil {
		t.Fatal(err)
	}
	ratios(rows)
	report(os.Stdout, rows, o, 0)
}
