// Package meta holds tests about the repository itself: every package is documented, the PDK and
// the ABI depend only on the standard library, and no production package imports testing.
//
// Run with: go test ./internal/meta
package meta
