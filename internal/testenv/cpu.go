package testenv

import "testing"

// ReportCPU starts counting the process's CPU time; the function it returns reports it per op
// as cpu-ns/op, the CPU column of make bench, which other processes on a shared machine inflate
// less than the wall time. Use: defer testenv.ReportCPU(b)().
func ReportCPU(b *testing.B) func() {
	start := CPUTime()
	return func() {
		if end := CPUTime(); start > 0 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}
