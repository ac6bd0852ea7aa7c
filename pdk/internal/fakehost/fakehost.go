// Package fakehost connects the native (non-wasip1) build of pdk to a simulated host.
//
// Inside a WebAssembly module, pdk reaches the airlock host through //go:wasmimport functions.
// In a native build (go test) the same low-level operations go to the [Host] installed here,
// which pdktest provides. The interface mirrors the ABI one to one: offsets name blocks of
// Extism memory, byte slices stand for guest memory.
//
// Only pdk and pdk/pdktest use this package.
package fakehost

import "sync"

// Host is the low-level host surface pdk uses (internal/abi, "Host functions"). Offsets are
// Extism memory offsets; 0 means "none". Implementations must not panic on bad offsets: they
// answer the way the real host does (0, -1 or nothing).
type Host interface {
	InputLength() uint64
	InputRead(dst []byte) int64              // airlock_input_read
	Length(offset uint64) uint64             // length
	MemRead(offset uint64, dst []byte) int64 // airlock_mem_read
	MemWrite(src []byte) uint64              // airlock_mem_write
	Free(offset uint64)                      // free
	OutputSet(offset, n uint64)              // output_set
	ErrorSet(offset uint64)                  // error_set
	HTTP(request uint64) uint64              // airlock_http
	DB(request uint64) uint64                // airlock_db
	Config(key uint64) uint64                // airlock_config
	Log(level int64, message uint64)         // airlock_log
}

var (
	mu      sync.Mutex
	current Host
)

// Set installs h as the host of every pdk call in this process and returns a function that
// restores the previous one. Callers serialise their use (pdktest holds a lock per call).
func Set(h Host) (restore func()) {
	mu.Lock()
	prev := current
	current = h
	mu.Unlock()
	return func() {
		mu.Lock()
		current = prev
		mu.Unlock()
	}
}

// Current returns the installed host, or nil.
func Current() Host {
	mu.Lock()
	defer mu.Unlock()
	return current
}
