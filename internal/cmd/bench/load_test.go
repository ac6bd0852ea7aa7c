package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// BenchmarkWarmLoad is row 5's load of the Slack connector from a warm on-disk compilation
// cache, for profiling:
//
//	go test -run '^$' -bench WarmLoad -cpuprofile cpu.out ./internal/cmd/bench
func BenchmarkWarmLoad(b *testing.B) {
	ctx := context.Background()
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	m, wasm, err := connector(ctx, root, "./plugins/slack", "manifests/slack.yaml")
	if err != nil {
		b.Fatal(err)
	}
	cache := filepath.Join(b.TempDir(), "cache")
	load := func() error {
		dir, err := os.MkdirTemp(b.TempDir(), "load-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		h, err := host.New(hostConfig(dir, cache))
		if err != nil {
			return err
		}
		err = h.LoadModule(ctx, m, wasm, slackGrant("http://127.0.0.1:1"))
		return errors.Join(err, h.Close(ctx))
	}
	if err := load(); err != nil { // populates the cache
		b.Fatal(err)
	}
	cpu0 := cpuTime()
	for b.Loop() {
		if err := load(); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time says more than wall time on a machine other processes share.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
}
