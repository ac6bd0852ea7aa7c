// Package pdk is the plugin development kit for airlock connectors written in Go.
//
// A connector is a WebAssembly module built with the standard Go compiler:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o weather.wasm ./weather
//
// Each tool is an exported function `() -> i32` named in the connector's manifest. The export is
// one line that hands a `func() error` to [Run]; the function reads its arguments with [Input],
// reaches the upstream API with [HTTP] (the host checks the URL against the manifest and grant
// and injects the credential: the connector names a credential slot, never a value), and sets
// its result with [Output]. Errors an agent can act on are made with [Correctable], [Retryable]
// and [Fatal]; a host refusal returned by [HTTP] passes through unchanged.
//
// Keep the tool logic in a file without build tags and the exports in a `//go:build wasip1`
// file: the logic then runs natively under `go test`, against the fake host of
// [github.com/airlock-dev/airlock/pdk/pdktest], and only the module build sees the exports.
//
// # A complete connector
//
// weather.go (no build tag):
//
//	package main
//
//	import (
//		"encoding/json"
//		"net/url"
//
//		"github.com/airlock-dev/airlock/pdk"
//	)
//
//	type forecastArgs struct {
//		City string `json:"city"`
//	}
//
//	type forecast struct {
//		City    string  `json:"city"`
//		TempC   float64 `json:"temp_c"`
//		Summary string  `json:"summary"`
//	}
//
//	func getForecast() error {
//		var args forecastArgs
//		if err := pdk.Input(&args); err != nil {
//			return err
//		}
//		resp, err := pdk.HTTP(pdk.HTTPRequest{
//			Method:     "GET",
//			URL:        "https://api.weather.example/v1/forecast?city=" + url.QueryEscape(args.City),
//			Credential: "api_key", // a slot of the manifest; the host injects its value
//		})
//		if err != nil {
//			return err // the host refused (policy, timeout, ...): its message is agent-readable
//		}
//		switch {
//		case resp.Status == 404:
//			return pdk.Correctable("unknown_city", "there is no forecast for %q; check the spelling", args.City)
//		case resp.Status == 429:
//			return pdk.Retryable(pdk.CodeRateLimited, pdk.RetryAfter(resp.Headers), "the weather service is rate limiting us")
//		case resp.Status != 200:
//			return pdk.Retryable("upstream_error", 0, "the weather service answered HTTP %d", resp.Status)
//		}
//		var out forecast
//		if err := json.Unmarshal(resp.Body, &out); err != nil {
//			return pdk.Fatal("bad_upstream_response", "the weather service sent an answer this connector cannot read")
//		}
//		return pdk.Output(out)
//	}
//
// exports.go:
//
//	//go:build wasip1
//
//	package main
//
//	import "github.com/airlock-dev/airlock/pdk"
//
//	//go:wasmexport get_forecast
//	func getForecastExport() int32 { return pdk.Run(getForecast) }
//
// main.go:
//
//	package main
//
//	func main() {} // required by the compiler; never runs
//
// weather_test.go:
//
//	func TestGetForecast(t *testing.T) {
//		h := pdktest.New(t)
//		h.HandleHTTP(func(req pdk.HTTPRequest) pdk.HTTPResponse {
//			return pdktest.Response(200, forecast{City: "Oslo", TempC: 4, Summary: "rain"})
//		})
//		h.SetInput(map[string]any{"city": "Oslo"})
//		var got forecast
//		if toolErr := h.CallJSON(getForecast, &got); toolErr != nil {
//			t.Fatal(toolErr)
//		}
//	}
//
// The manifest (manifests/FORMAT.md) declares the tool with export get_forecast, its input and
// output JSON Schemas, the credential slot api_key with the hosts it may be sent to, and the
// network rule for https://api.weather.example/v1/.
//
// # JSON without reflection
//
// [Input], [Output] and encoding/json are the simple way. Inside the WebAssembly sandbox
// reflection-driven encoding/json runs 9–17× slower than natively, and for a tool that makes one
// request it is most of the call's own work; [github.com/airlock-dev/airlock/pdk/pdkjson] reads
// and writes the same JSON without reflection (the Slack connector uses it on every tool):
//
//	var args forecastArgs
//	if err := pdk.InputObject(func(d *pdkjson.Decoder, key string) {
//		if key == "city" {
//			args.City = d.String()
//		} // other keys are skipped
//	}); err != nil {
//		return err
//	}
//	…
//	var w pdkjson.Writer
//	w.ObjectStart()
//	w.Key("city")
//	w.String(args.City)
//	w.Key("temp_c")
//	w.Float(temp)
//	w.ObjectEnd()
//	pdk.OutputBytes(w.Bytes())
//
// Keys match exactly (encoding/json also matches them ignoring case); see the package for the
// other differences. [HTTP] already reads the host's answer without reflection and asks for the
// body raw (ABI.md); name the response headers the tool reads in [HTTPRequest].ResponseHeaders
// and the host sends no others.
//
// # Concurrency and state
//
// The host calls one export at a time per module instance, and may reuse an instance for later
// calls of the same subject; do not keep per-call data in globals. None of the functions of this
// package may be called outside a tool call.
//
// # Other languages
//
// The ABI under this package is documented for authors using other Extism PDKs in ABI.md in
// this directory. net/http's client can be used through
// [github.com/airlock-dev/airlock/pdk/pdkhttp] at a cost in module size.
package pdk
