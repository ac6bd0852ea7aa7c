//go:build linux || darwin

package runtime

import (
	"math"
	goruntime "runtime"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// guestMemory backs each instance's linear memory with its own anonymous mapping, reserved at
// the memory's maximum size (at most Limits.MemoryPages) and committed by the kernel page by page
// as the guest touches it. memory.grow then only lengthens the slice. wazero's default keeps guest
// memory in the Go heap and grows it with append: one copy of the old memory plus one clear of the
// new pages, in single runtime calls the scheduler cannot preempt. A plugin growing its memory to
// 64 MiB so held a processor for 20–140 ms on a loaded machine (fresh pages fault in one by one)
// while a garbage collection waited for it, and the collector's worker on the other processor
// spun waiting too, so no other goroutine ran (RATIONALE.md, meter section). The kernel hands out
// zeroed pages, so nothing of another instance is ever visible; Free unmaps the whole memory.
var guestMemory experimental.MemoryAllocator = experimental.MemoryAllocatorFunc(func(capacity, max uint64) experimental.LinearMemory {
	if max > 0 && max <= 1<<32 && max <= math.MaxInt {
		buf, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
		if err == nil {
			m := &mappedMemory{buf: buf}
			// wazero does not free the memory of an instantiation that fails after making it
			// (a trap in the start function): unmap it once unreachable.
			m.cleanup = goruntime.AddCleanup(m, func(b []byte) { syscall.Munmap(b) }, buf)
			return m
		}
	}
	return &heapMemory{buf: make([]byte, 0, capacity)} // a platform or address space that refused
})

// mappedMemory is a linear memory in a mapping of its maximum size.
type mappedMemory struct {
	buf     []byte
	cleanup goruntime.Cleanup
}

func (m *mappedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	return m.buf[:size:size]
}

func (m *mappedMemory) Free() {
	if m.buf != nil {
		m.cleanup.Stop()
		syscall.Munmap(m.buf)
		m.buf = nil
	}
}

// heapMemory is wazero's own strategy, a slice in the Go heap grown by append: the fallback when
// the mapping is refused.
type heapMemory struct{ buf []byte }

func (m *heapMemory) Reallocate(size uint64) []byte {
	if size > uint64(cap(m.buf)) {
		m.buf = append(m.buf[:cap(m.buf)], make([]byte, size-uint64(cap(m.buf)))...)
	}
	m.buf = m.buf[:size]
	return m.buf
}

func (m *heapMemory) Free() { m.buf = nil }
