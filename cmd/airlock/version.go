package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Stamped at release time:
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=$(git rev-parse HEAD)" ./cmd/airlock
//
// Without them, the module version and the VCS revision Go records in the binary are used.
var (
	version string
	commit  string
)

// buildInfo returns the version, the commit (with "-dirty" when built from modified sources;
// "unknown" when neither -ldflags nor the toolchain recorded one) and the build time if known.
func buildInfo() (v, c, at string) {
	v, c = version, commit
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if v == "" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && commit == "" && c != "" {
			c += "-dirty"
		}
	}
	return cmpOr(v, "(devel)"), cmpOr(c, "unknown"), at
}

func buildVersion() string {
	v, _, _ := buildInfo()
	return v
}

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "version", `
Usage: airlock version   (or airlock --version)

Prints the version, the commit it was built from and the Go toolchain.`, `
  airlock --version`)
	if err := parse(fs, args); err != nil {
		return err
	}
	v, c, at := buildInfo()
	if at != "" {
		c += ", " + at
	}
	fmt.Fprintf(e.stdout, "airlock %s (commit %s, %s %s/%s)\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
