// Package wasmtest writes small WebAssembly modules byte by byte, for tests that need a module
// no compiler would emit (a hostile plugin's runaway loop, a malformed section). It is a test
// kit: nothing that ships imports it.
//
// Example: a module exporting spin, a function () -> i32 that never returns.
//
//	wasm := wasmtest.Module(
//		wasmtest.Section(wasmtest.SecType, wasmtest.Vec(wasmtest.FuncType(nil, []byte{wasmtest.I32}))),
//		wasmtest.Section(wasmtest.SecFunction, wasmtest.Vec(wasmtest.U32(0))),
//		wasmtest.Section(wasmtest.SecExport, wasmtest.Vec(wasmtest.Export("spin", 0, 0))),
//		wasmtest.Section(wasmtest.SecCode, wasmtest.Vec(wasmtest.Body(nil, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x00, 0x0b))))
package wasmtest

// Section ids and value types.
const (
	SecCustom   = 0
	SecType     = 1
	SecImport   = 2
	SecFunction = 3
	SecTable    = 4
	SecMemory   = 5
	SecGlobal   = 6
	SecExport   = 7
	SecStart    = 8
	SecElement  = 9
	SecCode     = 10
	SecData     = 11
	SecDataCnt  = 12

	I32 = 0x7f
	I64 = 0x7e
)

// Header is the magic number and version every module starts with.
var Header = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// U32 encodes v as an unsigned LEB128.
func U32(v uint32) []byte {
	var b []byte
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// S32 encodes v as a signed LEB128 (the immediate of i32.const).
func S32(v int32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// Cat concatenates parts.
func Cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// Vec encodes a vector: its length, then its items.
func Vec(items ...[]byte) []byte { return Cat(U32(uint32(len(items))), Cat(items...)) }

// Str encodes a name.
func Str(s string) []byte { return Cat(U32(uint32(len(s))), []byte(s)) }

// Section encodes a section with its id and size.
func Section(id byte, content ...[]byte) []byte {
	c := Cat(content...)
	return Cat([]byte{id}, U32(uint32(len(c))), c)
}

// Module is the header followed by sections.
func Module(sections ...[]byte) []byte { return Cat(Header, Cat(sections...)) }

// FuncType encodes a function type.
func FuncType(params, results []byte) []byte {
	return Cat([]byte{0x60}, U32(uint32(len(params))), params, U32(uint32(len(results))), results)
}

// Import encodes a function import of type index typ.
func Import(module, name string, typ uint32) []byte {
	return Cat(Str(module), Str(name), []byte{0x00}, U32(typ))
}

// Export encodes an export of kind (0 function, 2 memory, 3 global) and index.
func Export(name string, kind byte, idx uint32) []byte { return Cat(Str(name), []byte{kind}, U32(idx)) }

// Body encodes a function body: locals as (count, type) pairs, then code, which must end with
// 0x0b (end).
func Body(locals [][2]byte, code ...byte) []byte {
	var ls [][]byte
	for _, l := range locals {
		ls = append(ls, []byte{l[0], l[1]})
	}
	b := Cat(Vec(ls...), code)
	return Cat(U32(uint32(len(b))), b)
}
