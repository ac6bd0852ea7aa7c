//go:build linux || darwin

package runtime

import "testing"

// TestGuestMemoryFallback: where a mapping is refused (here, a memory whose maximum is 0 bytes),
// guest memory is a Go slice that keeps its contents and zeroes new bytes as it grows.
func TestGuestMemoryFallback(t *testing.T) {
	mem := guestMemory.Allocate(0, 0)
	defer mem.Free()
	if _, ok := mem.(*heapMemory); !ok {
		t.Fatalf("Allocate(0, 0) = %T, want the heap fallback", mem)
	}
	if b := mem.Reallocate(0); len(b) != 0 {
		t.Fatalf("Reallocate(0) = %d bytes", len(b))
	}
	heap := &heapMemory{}
	heap.Reallocate(65536)[100] = 1
	b := heap.Reallocate(1 << 20)
	if len(b) != 1<<20 || b[100] != 1 || b[1<<20-1] != 0 {
		t.Fatalf("grown fallback: len %d, kept byte %d, fresh byte %d", len(b), b[100], b[1<<20-1])
	}
}
