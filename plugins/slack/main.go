// Command slack is the airlock Slack connector: post messages and read channels with a bot
// token. Build it as a WebAssembly module (make plugins):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o slack.wasm ./plugins/slack
//
// Its tools are declared in manifests/slack.yaml. The logic (slack.go) has no build tag and is
// tested natively with pdktest and internal/fakeslack; only the exports (exports_wasip1.go) are
// specific to the module build.
package main

func main() {} // required by the compiler; never runs in a c-shared module
