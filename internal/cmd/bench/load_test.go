package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/internal/testenv"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// BenchmarkWarmLoad is row 5's load of the Slack connector from a warm on-disk compilation
// cache, for profiling:
//
//	go test -run '^$' -bench WarmLoad -cpuprofile cpu.out ./internal/cmd/bench
func BenchmarkWarmLoad(b *testing.B) {
	warmLoad(b, "./plugins/slack", "manifests/slack.yaml", slackGrant("http://127.0.0.1:1"))
}

// BenchmarkWarmLoadSize is BenchmarkWarmLoad for modules of several sizes (MB in the name), so
// the load time of a module of a given size can be read off:
//
//	go test -run '^$' -bench WarmLoadSize -benchtime 20x ./internal/cmd/bench
func BenchmarkWarmLoadSize(b *testing.B) {
	for _, c := range []struct{ pkg, manifest string }{
		{"./host/testdata/plugins/hostile", "host/testdata/hostile.yaml"},
		{"./plugins/slack", "manifests/slack.yaml"},
		{"./plugins/salesforce", "manifests/salesforce.yaml"},
		{"./plugins/openapi", "manifests/openapi.yaml"},
	} {
		root, err := pluginbuild.ModuleRoot()
		if err != nil {
			b.Fatal(err)
		}
		_, wasm, err := connector(context.Background(), root, c.pkg, c.manifest)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%s-%.1fMB", filepath.Base(c.pkg), float64(len(wasm))/1e6), func(b *testing.B) {
			warmLoad(b, c.pkg, c.manifest, nil)
		})
	}
}

// warmLoad measures host.New plus LoadModule of the connector built from pkg, with grant g (nil:
// one that grants nothing), once the compilation cache holds it.
func warmLoad(b *testing.B, pkg, manifestPath string, g *manifest.Grant) {
	ctx := context.Background()
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	m, wasm, err := connector(ctx, root, pkg, manifestPath)
	if err != nil {
		b.Fatal(err)
	}
	if g == nil {
		g = &manifest.Grant{Connector: m.Name}
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
		err = h.LoadModule(ctx, m, wasm, g)
		return errors.Join(err, h.Close(ctx))
	}
	if err := load(); err != nil { // populates the cache
		b.Fatal(err)
	}
	cpu0 := testenv.CPUTime()
	for b.Loop() {
		if err := load(); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time says more than wall time on a machine other processes share.
	b.ReportMetric(float64(testenv.CPUTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
}
