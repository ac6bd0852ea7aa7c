//go:build wasip1

package pdk

import "unsafe"

// Every //go:wasmimport of the PDK lives in this file. The Go linker emits only the imports a
// module actually calls, so declaring one here costs nothing when it is unused. The native
// twin, host_native.go, routes the same operations to the fake host of pdktest.
//
// Signatures follow internal/abi: Extism offsets are i64 (uint64 here), guest pointers are i32
// (unsafe.Pointer here).

// Extism kernel (abi.KernelModule).

//go:wasmimport extism:host/env input_length
func extismInputLength() uint64

//go:wasmimport extism:host/env input_load_u64
func extismInputLoadU64(offset uint64) uint64

//go:wasmimport extism:host/env input_load_u8
func extismInputLoadU8(offset uint64) uint32

//go:wasmimport extism:host/env alloc
func extismAlloc(n uint64) uint64

//go:wasmimport extism:host/env length
func extismLength(offset uint64) uint64

//go:wasmimport extism:host/env load_u64
func extismLoadU64(offset uint64) uint64

//go:wasmimport extism:host/env load_u8
func extismLoadU8(offset uint64) uint32

//go:wasmimport extism:host/env store_u64
func extismStoreU64(offset uint64, v uint64)

//go:wasmimport extism:host/env store_u8
func extismStoreU8(offset uint64, v uint32)

//go:wasmimport extism:host/env output_set
func extismOutputSet(offset, n uint64)

//go:wasmimport extism:host/env error_set
func extismErrorSet(offset uint64)

//go:wasmimport extism:host/env free
func extismFree(offset uint64)

// airlock host functions (abi.HostModule).

//go:wasmimport extism:host/user airlock_http
func airlockHTTP(request uint64) uint64

//go:wasmimport extism:host/user airlock_db
func airlockDB(request uint64) uint64

//go:wasmimport extism:host/user airlock_config
func airlockConfig(key uint64) uint64

//go:wasmimport extism:host/user airlock_log
func airlockLog(level int64, message uint64)

//go:wasmimport extism:host/user airlock_mem_read
func airlockMemRead(offset uint64, dst unsafe.Pointer, n int64) int64

//go:wasmimport extism:host/user airlock_mem_write
func airlockMemWrite(src unsafe.Pointer, n int64) uint64

//go:wasmimport extism:host/user airlock_input_read
func airlockInputRead(dst unsafe.Pointer, n int64) int64

// The low-level operations pdk is written against (the same set as host_native.go).

func inputLength() uint64 { return extismInputLength() }

func inputRead(dst []byte) int64 {
	if len(dst) == 0 {
		return 0
	}
	return airlockInputRead(unsafe.Pointer(unsafe.SliceData(dst)), int64(len(dst)))
}

func length(offset uint64) uint64 { return extismLength(offset) }

func memRead(offset uint64, dst []byte) int64 {
	if len(dst) == 0 {
		return 0
	}
	return airlockMemRead(offset, unsafe.Pointer(unsafe.SliceData(dst)), int64(len(dst)))
}

func memWrite(src []byte) uint64 {
	if len(src) == 0 {
		// A zero-length block: the bulk copy has nothing to read from.
		return extismAlloc(0)
	}
	return airlockMemWrite(unsafe.Pointer(unsafe.SliceData(src)), int64(len(src)))
}

func free(offset uint64)              { extismFree(offset) }
func outputSet(offset, n uint64)      { extismOutputSet(offset, n) }
func errorSet(offset uint64)          { extismErrorSet(offset) }
func hostHTTP(request uint64) uint64  { return airlockHTTP(request) }
func hostDB(request uint64) uint64    { return airlockDB(request) }
func hostConfig(key uint64) uint64    { return airlockConfig(key) }
func hostLog(level int64, msg uint64) { airlockLog(level, msg) }
