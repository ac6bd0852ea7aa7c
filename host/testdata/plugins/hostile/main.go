//go:build wasip1

// Command hostile is a test plugin written the way an attacker would write one: straight against
// the ABI (no pdk), trying everything the sandbox must stop. The host's tests load it and assert
// that each attempt fails, or returns nothing it must not.
package main

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"time"
	"unsafe"
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

//go:wasmimport extism:host/env length
func length(off uint64) uint64

//go:wasmimport extism:host/env load_u8
func loadU8(off uint64) uint32

//go:wasmimport extism:host/env load_u64
func loadU64(off uint64) uint64

//go:wasmimport extism:host/env store_u8
func storeU8(off uint64, v uint32)

//go:wasmimport extism:host/env output_set
func outputSet(off, n uint64)

//go:wasmimport extism:host/env error_set
func errorSet(off uint64)

//go:wasmimport extism:host/env memory_bytes
func memoryBytes() uint64

//go:wasmimport extism:host/env var_get
func varGet(key uint64) uint64

//go:wasmimport extism:host/env var_set
func varSet(key, val uint64)

//go:wasmimport extism:host/env config_get
func configGet(key uint64) uint64

//go:wasmimport extism:host/user airlock_http
func airlockHTTP(req uint64) uint64

//go:wasmimport extism:host/user airlock_config
func airlockConfig(key uint64) uint64

//go:wasmimport extism:host/user airlock_log
func airlockLog(level, msg uint64)

//go:wasmimport extism:host/user airlock_mem_read
func memRead(off uint64, dst unsafe.Pointer, n uint64) int64

//go:wasmimport extism:host/user airlock_mem_write
func memWrite(src unsafe.Pointer, n uint64) uint64

// Byte-at-a-time on purpose: this is how the Extism ABI is used by the slowest PDKs.
func input() []byte {
	n := inputLength()
	b := make([]byte, n)
	for i := uint64(0); i < n; i++ {
		b[i] = byte(inputLoadU8(i))
	}
	return b
}

func put(b []byte) uint64 {
	off := alloc(uint64(len(b)))
	for i, c := range b {
		storeU8(off+uint64(i), uint32(c))
	}
	return off
}

func get(off uint64) []byte {
	n := length(off)
	b := make([]byte, n)
	if n > 0 {
		memRead(off, unsafe.Pointer(&b[0]), n)
	}
	return b
}

func output(b []byte) int32 {
	if len(b) == 0 {
		return 0
	}
	outputSet(memWrite(unsafe.Pointer(&b[0]), uint64(len(b))), uint64(len(b)))
	return 0
}

func fail(msg string) int32 {
	errorSet(put([]byte(msg)))
	return 1
}

//go:wasmexport noop
func noop() int32 { return 0 }

//go:wasmexport echo
func echo() int32 { return output(input()) }

// echo_u64 moves its input with 8-byte loads, as go-pdk does.
//
//go:wasmexport echo_u64
func echoU64() int32 {
	n := inputLength()
	b := make([]byte, n+8)
	for i := uint64(0); i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], inputLoadU64(i))
	}
	return output(b[:n])
}

//go:wasmexport loop
func loop() int32 {
	for {
	}
}

//go:wasmexport sleep
func sleep() int32 {
	time.Sleep(time.Hour)
	return 0
}

var hoard [][]byte

//go:wasmexport alloc_bomb
func allocBomb() int32 {
	for {
		hoard = append(hoard, make([]byte, 16<<20))
	}
}

//go:wasmexport host_alloc_bomb
func hostAllocBomb() int32 {
	for i := 0; i < 1<<20; i++ {
		if alloc(64<<20) == 0 {
			return fail("host refused the allocation")
		}
	}
	return 0
}

//go:wasmexport panic
func panicky() int32 { panic("hostile plugin panics on purpose") }

//go:wasmexport exit
func exit() int32 {
	os.Exit(3)
	return 0
}

// peek_outside tries to read and write Extism memory it was never given.
//
//go:wasmexport peek_outside
func peekOutside() int32 {
	var b []byte
	for _, off := range []uint64{0, 1, 7, memoryBytes(), memoryBytes() + 1, 1 << 40, ^uint64(0), ^uint64(0) - 7} {
		b = binary.LittleEndian.AppendUint64(b, loadU64(off))
		b = append(b, byte(loadU8(off)))
		storeU8(off, 0xff)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(memRead(1<<40, unsafe.Pointer(&b[0]), 8)))
	b = binary.LittleEndian.AppendUint64(b, uint64(memRead(8, unsafe.Pointer(uintptr(1<<31)), 1<<30)))
	b = binary.LittleEndian.AppendUint64(b, memWrite(unsafe.Pointer(uintptr(1<<31)), 1<<30))
	return output(b)
}

// sandbox reports what the WASI sandbox lets it see: files, directories, environment, clocks.
//
//go:wasmexport sandbox
func sandbox() int32 {
	report := map[string]any{}
	_, err := os.ReadFile("/etc/passwd")
	report["read_file"] = errString(err)
	_, err = os.ReadDir("/")
	report["read_dir"] = errString(err)
	err = os.WriteFile("/tmp/hostile", []byte("x"), 0o644)
	report["write_file"] = errString(err)
	report["environ"] = os.Environ()
	report["year"] = time.Now().Year()
	buf := make([]byte, 16)
	f, err := os.Open("/dev/urandom")
	report["urandom"] = errString(err)
	if err == nil {
		f.Read(buf)
		f.Close()
	}
	b, _ := json.Marshal(report)
	return output(b)
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// fetch sends its input (an abi.HTTPRequest) through airlock_http and returns the raw reply.
//
//go:wasmexport fetch
func fetch() int32 {
	resp := airlockHTTP(put(input()))
	if resp == 0 {
		return fail("airlock_http returned no response")
	}
	return output(get(resp))
}

// fetch_raw is fetch for answers that are not JSON (a body sent raw after the envelope): it
// returns the host's answer as a JSON string of base64.
//
//go:wasmexport fetch_raw
func fetchRaw() int32 {
	resp := airlockHTTP(put(input()))
	if resp == 0 {
		return fail("airlock_http returned no response")
	}
	b, _ := json.Marshal(get(resp))
	return output(b)
}

// dump returns (hex-encoded) every byte of Extism memory it can read, plus config and vars it can guess: a
// secret that ever reached the guest side would show up here.
//
//go:wasmexport dump
func dump() int32 {
	// First make the host put as much as possible into Extism memory.
	in := input()
	if len(in) > 0 {
		airlockHTTP(put(in))
	}
	var b []byte
	for _, key := range []string{"token", "bot_token", "secret", "api_key", "password", "Authorization", "credential"} {
		for _, get := range []func(uint64) uint64{configGet, airlockConfig, varGet} {
			if off := get(put([]byte(key))); off != 0 {
				b = append(b, "\n"+key+"="...)
				b = append(b, readAll(off, length(off))...)
			}
		}
	}
	b = append(b, "\narena:"...)
	b = append(b, readAll(0, memoryBytes())...)
	// Hex, so the host's output scrubbing (which knows base64 forms) cannot hide a leak.
	out, _ := json.Marshal(map[string]string{"hex": hex.EncodeToString(b)})
	return output(out)
}

func readAll(off, n uint64) []byte {
	b := make([]byte, 0, n)
	for i := uint64(0); i < n; i++ {
		b = append(b, byte(loadU8(off+i)))
	}
	return b
}

var stash []byte

// stash keeps its input in a Go global; peek returns it. A second subject must never see it.
//
//go:wasmexport stash
func stashIt() int32 {
	stash = input()
	varSet(put([]byte("stash")), put(stash))
	return 0
}

//go:wasmexport peek
func peek() int32 {
	b := append([]byte("global="), stash...)
	b = append(b, "\nvar="...)
	if off := varGet(put([]byte("stash"))); off != 0 {
		b = append(b, get(off)...)
	}
	return output(b)
}

//go:wasmexport log
func logIt() int32 {
	airlockLog(2, put(input()))
	return 0
}

//go:wasmexport big_output
func bigOutput() int32 {
	return output([]byte(strings.Repeat("x", 2<<20)))
}
