package pluginbuild

import (
	"context"
	"path/filepath"
)

// Demo builds and stamps the connectors 'airlock demo' runs (slack, and hostile: a plugin that
// tries to escape its grant) into outDir, from the source tree of the module this process runs
// in, and returns their stamped manifests by name. The container image carries their output so
// that the demo runs there without a Go toolchain.
func Demo(ctx context.Context, outDir string) (map[string]string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	built := map[string]string{}
	for name, src := range map[string][2]string{ // package, source manifest
		"slack":   {"./plugins/slack", "manifests/slack.yaml"},
		"hostile": {"./host/testdata/plugins/hostile", "host/testdata/hostile.yaml"},
	} {
		wasm, err := Build(ctx, Options{Package: src[0], Root: root})
		if err != nil {
			return nil, err
		}
		if built[name], err = Stamp(filepath.Join(root, src[1]), wasm, outDir); err != nil {
			return nil, err
		}
	}
	return built, nil
}
