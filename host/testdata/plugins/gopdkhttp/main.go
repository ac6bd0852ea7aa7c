//go:build wasip1

// Command gopdkhttp uses Extism's built-in HTTP (http_request), which airlock refuses at load:
// that function follows redirects without re-checking the allowlist (wasm-runtime-facts.md).
package main

import "github.com/extism/go-pdk"

func main() {}

//go:wasmexport get
func get() int32 {
	resp := pdk.NewHTTPRequest(pdk.MethodGet, "https://example.com/").Send()
	pdk.Output(resp.Body())
	return 0
}
