//go:build unix

package egress

import (
	"syscall"
	"testing"
)

// reportCPU counts the process's CPU time (user and system, every thread: the loopback server's
// too); the function it returns reports it per op as cpu-ns/op.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if end := cpuTime(); start > 0 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
