// Command salesforce is the airlock Salesforce connector: query records with structured SOQL,
// read, create and update records of an allowed list of objects, move opportunities between
// stages (read before write), and attach notes. Build it as a WebAssembly module (make plugins):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o salesforce.wasm ./plugins/salesforce
//
// Its tools are declared in manifests/salesforce.yaml and described in README.md (next to this
// file). The logic (salesforce.go, soql.go, tools.go) has no build tag and is tested natively
// with pdktest and internal/fakesalesforce; only the exports (exports_wasip1.go) are specific to
// the module build.
package main

func main() {} // required by the compiler; never runs in a c-shared module
