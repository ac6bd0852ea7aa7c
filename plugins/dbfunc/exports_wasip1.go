//go:build wasip1

package main

import "github.com/airlock-dev/airlock/pdk"

//go:wasmexport run
func runExport() int32 { return pdk.Run(run) }
