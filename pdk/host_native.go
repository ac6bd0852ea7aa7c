//go:build !wasip1

package pdk

import "github.com/airlock-dev/airlock/pdk/internal/fakehost"

// The native twin of host_wasip1.go: the same low-level operations, sent to the fake host that
// pdktest installs. Outside pdktest.Host.Call there is no host, and every operation panics with
// an explanation (which Run turns into a fatal tool error).

func fake() fakehost.Host {
	h := fakehost.Current()
	if h == nil {
		panic("pdk: no host: outside a WebAssembly module, run connector code through pdktest.Host.Call")
	}
	return h
}

func inputLength() uint64                     { return fake().InputLength() }
func inputRead(dst []byte) int64              { return fake().InputRead(dst) }
func length(offset uint64) uint64             { return fake().Length(offset) }
func memRead(offset uint64, dst []byte) int64 { return fake().MemRead(offset, dst) }
func memWrite(src []byte) uint64              { return fake().MemWrite(src) }
func free(offset uint64)                      { fake().Free(offset) }
func outputSet(offset, n uint64)              { fake().OutputSet(offset, n) }
func errorSet(offset uint64)                  { fake().ErrorSet(offset) }
func hostHTTP(request uint64) uint64          { return fake().HTTP(request) }
func hostDB(request uint64) uint64            { return fake().DB(request) }
func hostConfig(key uint64) uint64            { return fake().Config(key) }
func hostLog(level int64, msg uint64)         { fake().Log(level, msg) }
