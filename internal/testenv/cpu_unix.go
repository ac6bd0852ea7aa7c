//go:build unix

package testenv

import "syscall"

// CPUTime is the CPU time the process has used so far (user and system, every thread), in ns;
// 0 where it cannot be read.
func CPUTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
