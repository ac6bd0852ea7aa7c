//go:build wasip1

package pdktest

// native is false in a wasip1 build: pdk talks to the real host there, so Host.Call cannot work.
const native = false
