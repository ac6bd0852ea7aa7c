// Package airlock carries, in the airlock binary, the sources a connector built outside this
// repository needs, so that 'airlock init connector' works with nothing but the binary and the
// Go module proxy (or npm, for AssemblyScript):
//
//   - the Go pdk (pdk, pdk/pdktest, pdk/pdkhttp, pdk/pdkjson) and the packages they import (internal/abi, the
//     wire contract, and pdk/internal/fakehost), which init writes as a module of their own
//     next to a Go connector's go.mod (its replace directive points there);
//   - the AssemblyScript binding (pdk/assemblyscript/airlock.ts) and the AssemblyScript example
//     connector (plugins/items-as), which init writes into an AssemblyScript connector.
//
// Nothing else lives in this package: the host, the command and their dependencies are not part
// of what a connector compiles.
//
// Example:
//
//	data, err := airlock.Sources.ReadFile("pdk/pdk.go")
package airlock

import "embed"

// Sources holds the files listed in the package comment (test files included; 'airlock init'
// leaves them out), plus go.mod for its go directive. Callers must not modify it.
//
//go:embed go.mod pdk/*.go pdk/pdktest/*.go pdk/pdkhttp/*.go pdk/pdkjson/*.go pdk/internal/fakehost/*.go internal/abi/*.go
//go:embed pdk/assemblyscript/airlock.ts plugins/items-as/assembly/index.ts
var Sources embed.FS

// GoPackages are the directories of Sources that form the Go pdk module a connector builds
// against: every package the pdk, pdktest and pdkhttp import from this module.
var GoPackages = []string{"pdk", "pdk/pdktest", "pdk/pdkhttp", "pdk/pdkjson", "pdk/internal/fakehost", "internal/abi"}
