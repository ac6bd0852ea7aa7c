package pdk_test

import (
	"encoding/json"
	"fmt"

	"github.com/airlock-dev/airlock/pdk"
	"github.com/airlock-dev/airlock/pdk/pdktest"
)

// greet is a tool: it reads its arguments, asks an upstream API, and sets its result.
func greet() error {
	var args struct {
		Name string `json:"name"`
	}
	if err := pdk.Input(&args); err != nil {
		return err
	}
	if args.Name == "" {
		return pdk.Correctable(pdk.CodeInvalidArguments, "name must not be empty")
	}
	resp, err := pdk.HTTP(pdk.HTTPRequest{Method: "GET", URL: "https://api.example/greeting", Credential: "api_key"})
	if err != nil {
		return err
	}
	var g struct {
		Greeting string `json:"greeting"`
	}
	if err := json.Unmarshal(resp.Body, &g); err != nil {
		return pdk.Fatal("bad_upstream_response", "the greeting service sent an unreadable answer")
	}
	return pdk.Output(map[string]string{"message": g.Greeting + ", " + args.Name + "!"})
}

// In a plugin the export would be:
//
//	//go:wasmexport greet
//	func greetExport() int32 { return pdk.Run(greet) }
func Example() {
	h := pdktest.New(nil) // in a test: pdktest.New(t)
	h.HandleHTTP(func(req pdk.HTTPRequest) pdk.HTTPResponse {
		return pdktest.Response(200, map[string]string{"greeting": "Hello"})
	})

	h.SetInput(map[string]string{"name": "Ada"})
	out, toolErr := h.Call(greet)
	fmt.Println(string(out), toolErr)

	h.SetInput(map[string]string{"name": ""})
	_, toolErr = h.Call(greet)
	fmt.Println(toolErr.Category, toolErr.Code, toolErr.Message)
	// Output:
	// {"message":"Hello, Ada!"} <nil>
	// correctable invalid_arguments name must not be empty
}
