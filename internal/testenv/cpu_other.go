//go:build !unix

package testenv

// CPUTime reports 0 where getrusage does not exist.
func CPUTime() int64 { return 0 }
