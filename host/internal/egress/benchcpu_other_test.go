//go:build !unix

package egress

import "testing"

// reportCPU reports nothing where getrusage does not exist.
func reportCPU(*testing.B) func() { return func() {} }
