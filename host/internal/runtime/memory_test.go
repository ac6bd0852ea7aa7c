package runtime

import (
	"context"
	"testing"
	"unsafe"

	"github.com/airlock-dev/airlock/internal/wasmtest"
)

// TestGuestMemoryGrowsInPlace: memory.grow neither moves nor copies guest memory. wazero's
// default, a Go slice grown by append, copies the old memory and clears the new pages in single
// runtime calls the Go scheduler cannot preempt: a plugin growing to 64 MiB held its processor
// for 20–140 ms on a loaded machine while a forced garbage collection waited for it, and the
// heartbeat of TestBulkRunawaysDoNotPauseTheHost with two processors stopped for 84–300 ms.
func TestGuestMemoryGrowsInPlace(t *testing.T) {
	if guestMemory == nil {
		t.Skip("guest memory is wazero's default on this platform")
	}
	const size = 64 << 20
	c := func(v int32) []byte { return wasmtest.Cat([]byte{0x41}, wasmtest.S32(v)) } // i32.const
	const memoryGrow, drop, store8, end = 0x40, 0x1a, 0x3a, 0x0b
	// grow: memory.grow(1023 pages); store8(64 MiB - 1, 7); return 0
	body := wasmtest.Cat(c(size/65536-1), []byte{memoryGrow, 0, drop}, c(size-1), c(7), []byte{store8, 0, 0}, c(0), []byte{end})
	wasm := wasmtest.Module(
		wasmtest.Section(wasmtest.SecType, wasmtest.Vec(wasmtest.FuncType(nil, []byte{wasmtest.I32}))),
		wasmtest.Section(wasmtest.SecFunction, wasmtest.Vec(wasmtest.U32(0))),
		wasmtest.Section(wasmtest.SecMemory, wasmtest.Vec([]byte{0x00, 1})),
		wasmtest.Section(wasmtest.SecExport, wasmtest.Vec(wasmtest.Export("grow", 0, 0))),
		wasmtest.Section(wasmtest.SecCode, wasmtest.Vec(wasmtest.Body(nil, body...))),
	)
	m := load(t, Options{Name: "grow", Wasm: wasm, Exports: []string{"grow"}, Limits: Limits{MemoryPages: size / 65536}})
	ctx := context.Background()
	in, err := m.pool.get(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	defer m.pool.put(in)
	base := func() *byte {
		b, ok := in.mod.Memory().Read(0, 1)
		if !ok {
			t.Fatal("guest memory is empty")
		}
		return unsafe.SliceData(b)
	}
	before := base()
	if _, err := m.call(ctx, in, "grow", nil, &fakeHandler{}); err != nil {
		t.Fatalf("grow: %v", err)
	}
	if in.mod.Memory().Size() != size {
		t.Fatalf("guest memory is %d bytes after growing, want %d", in.mod.Memory().Size(), size)
	}
	if after := base(); after != before {
		t.Errorf("memory.grow moved guest memory from %p to %p: it was copied into a new allocation", before, after)
	}
	if b, _ := in.mod.Memory().ReadByte(size - 1); b != 7 {
		t.Errorf("the last byte of grown memory is %d, want the 7 the plugin stored", b)
	}
}

// TestGuestMemoryMapping: a mapping starts zeroed, keeps its contents and address as it grows,
// refuses to grow past its maximum, and can be freed twice.
func TestGuestMemoryMapping(t *testing.T) {
	if guestMemory == nil {
		t.Skip("guest memory is wazero's default on this platform")
	}
	mem := guestMemory.Allocate(65536, 16<<20)
	defer mem.Free()
	small := mem.Reallocate(65536)
	small[100] = 1
	big := mem.Reallocate(16 << 20)
	if len(big) != 16<<20 || &big[0] != &small[0] || big[100] != 1 {
		t.Fatalf("growing moved or lost the memory: len %d, same address %v, byte %d", len(big), &big[0] == &small[0], big[100])
	}
	for _, i := range []int{65536, 8 << 20, 16<<20 - 1} {
		if big[i] != 0 {
			t.Errorf("fresh byte %d is %d, want 0", i, big[i])
		}
	}
	if b := mem.Reallocate(16<<20 + 65536); b != nil {
		t.Errorf("Reallocate past the maximum returned %d bytes, want nil", len(b))
	}
	mem.Free()
}
