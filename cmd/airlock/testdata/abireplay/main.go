//go:build wasip1

// Command abireplay replays an ABI transcript (pdk/ABI.md, "A call, byte by byte") against the
// host, calling the Extism kernel and airlock host functions directly, with no PDK, the way a
// connector written in another language does. The transcript is linked in at build time
// (-ldflags "-X main.script=BASE64"), so nothing the player does besides the transcript touches
// Extism memory: offsets in the host's answers are exactly those a real plugin would see.
// A step whose result differs from the transcript fails the call with error_set, naming it.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

func main() {}

//go:wasmimport extism:host/env input_length
func inputLength() uint64

//go:wasmimport extism:host/env input_load_u64
func inputLoadU64(off uint64) uint64

//go:wasmimport extism:host/env input_load_u8
func inputLoadU8(off uint64) uint32

//go:wasmimport extism:host/env alloc
func alloc(n uint64) uint64

//go:wasmimport extism:host/env free
func free(off uint64)

//go:wasmimport extism:host/env length
func length(off uint64) uint64

//go:wasmimport extism:host/env load_u8
func loadU8(off uint64) uint32

//go:wasmimport extism:host/env load_u64
func loadU64(off uint64) uint64

//go:wasmimport extism:host/env store_u8
func storeU8(off uint64, v uint32)

//go:wasmimport extism:host/env store_u64
func storeU64(off uint64, v uint64)

//go:wasmimport extism:host/env output_set
func outputSet(off, n uint64)

//go:wasmimport extism:host/env error_set
func errorSet(off uint64)

//go:wasmimport extism:host/user airlock_http
func airlockHTTP(req uint64) uint64

//go:wasmimport extism:host/user airlock_log
func airlockLog(level, msg uint64)

//go:wasmimport extism:host/user airlock_abi_version
func airlockABIVersion() uint64

// script is the transcript: base64 of a JSON list of steps.
var script string

type step struct {
	Fn   string   `json:"fn"`
	Args []uint64 `json:"args"`
	Want *uint64  `json:"want"` // nil: the result is not checked
	Line int      `json:"line"`
}

func fail(msg string) int32 {
	off := alloc(uint64(len(msg)))
	for i := range len(msg) {
		storeU8(off+uint64(i), uint32(msg[i]))
	}
	errorSet(off)
	return 1
}

//go:wasmexport replay
func replay() int32 {
	raw, err := base64.StdEncoding.DecodeString(script)
	if err != nil {
		return fail("abireplay: bad script")
	}
	var steps []step
	if err := json.Unmarshal(raw, &steps); err != nil {
		return fail("abireplay: bad script: " + err.Error())
	}
	for _, s := range steps {
		a := func(i int) uint64 {
			if i < len(s.Args) {
				return s.Args[i]
			}
			return 0
		}
		var got uint64
		switch s.Fn {
		case "input_length":
			got = inputLength()
		case "input_load_u64":
			got = inputLoadU64(a(0))
		case "input_load_u8":
			got = uint64(inputLoadU8(a(0)))
		case "alloc":
			got = alloc(a(0))
		case "free":
			free(a(0))
		case "length":
			got = length(a(0))
		case "load_u8":
			got = uint64(loadU8(a(0)))
		case "load_u64":
			got = loadU64(a(0))
		case "store_u8":
			storeU8(a(0), uint32(a(1)))
		case "store_u64":
			storeU64(a(0), a(1))
		case "output_set":
			outputSet(a(0), a(1))
		case "error_set":
			errorSet(a(0))
		case "airlock_http":
			got = airlockHTTP(a(0))
		case "airlock_log":
			airlockLog(a(0), a(1))
		case "airlock_abi_version":
			got = airlockABIVersion()
		case "return":
			return int32(a(0))
		default:
			return fail(fmt.Sprintf("ABI.md line %d: abireplay does not know %s", s.Line, s.Fn))
		}
		if s.Want != nil && got != *s.Want {
			return fail(fmt.Sprintf("ABI.md line %d: %s%v returned %d (%#x), the transcript says %d (%#x)", s.Line, s.Fn, s.Args, got, got, *s.Want, *s.Want))
		}
	}
	return fail("abireplay: the transcript has no return")
}
