//go:build !wasip1

package pdktest

// native reports whether pdk routes its host calls to the fake host (fakehost), which it does
// only in a native build.
const native = true
