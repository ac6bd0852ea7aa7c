//go:build !linux && !darwin

package runtime

import "github.com/tetratelabs/wazero/experimental"

// guestMemory is wazero's default elsewhere (see memory_mmap.go for why Linux and macOS map it).
var guestMemory experimental.MemoryAllocator
