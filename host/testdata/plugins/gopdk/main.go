//go:build wasip1

// Command gopdk is a plugin written with the unmodified Extism Go PDK (github.com/extism/go-pdk),
// not airlock's: it proves a connector built for any Extism host runs in airlock, and gives the
// benchmarks one module to run under both airlock's runtime and extism/go-sdk.
package main

import "github.com/extism/go-pdk"

func main() {}

//go:wasmexport noop
func noop() int32 { return 0 }

//go:wasmexport echo
func echo() int32 {
	pdk.Output(pdk.Input())
	return 0
}

//go:wasmexport greet
func greet() int32 {
	var in struct {
		Name string `json:"name"`
	}
	if err := pdk.InputJSON(&in); err != nil {
		pdk.SetError(err)
		return 1
	}
	if in.Name == "" {
		pdk.SetErrorString("name is required")
		return 1
	}
	greeting, _ := pdk.GetConfig("greeting")
	if greeting == "" {
		greeting = "hello"
	}
	pdk.Log(pdk.LogInfo, "greeting "+in.Name)
	pdk.OutputJSON(map[string]string{"message": greeting + ", " + in.Name})
	return 0
}
