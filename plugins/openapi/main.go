// Command openapi is airlock's generic REST connector: it runs the tools `airlock openapi import`
// makes from an OpenAPI description. It holds no API knowledge of its own: each tool has an
// export (op0 … op127) and a config key of the same name whose value is the tool's operation
// (internal/openapiop), which the manifest carries as the key's default. The connector builds
// the request from the tool's arguments, sends it through the host (which checks it against the
// manifest and grant, injects the credential, applies limits and retries) and maps the answer
// to a result or an agent-readable error. Build it as a WebAssembly module:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o openapi.wasm ./plugins/openapi
package main

//go:generate sh gen_exports.sh

func main() {} // required by the compiler; never runs in a c-shared module
