package meter

import "fmt"

// A small WebAssembly binary reader: just enough to walk sections, imports, constant expressions
// and function bodies instruction by instruction, so that index immediates can be rewritten and
// checks inserted. Everything else is copied byte for byte.

// Error reports a module the meter cannot instrument, with the byte offset in the original module.
type Error struct {
	Offset int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("meter: at byte 0x%x: %s", e.Offset, e.Msg) }

// reader reads from b starting at off. Methods return zero values after the first error, which
// is kept in err; callers check err at convenient points.
type reader struct {
	b    []byte
	off  int
	base int // offset of b[0] in the original module, for errors
	err  error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = &Error{Offset: r.base + r.off, Msg: fmt.Sprintf(format, args...)}
	}
}

func (r *reader) done() bool { return r.err != nil || r.off >= len(r.b) }

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("unexpected end of data")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) bytes(n uint32) []byte {
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)-r.off) {
		r.fail("a length of %d bytes runs past the end of its section", n)
		return nil
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

// uleb reads an unsigned LEB128 of at most bits bits.
func (r *reader) uleb(bits uint) uint64 {
	if r.off < len(r.b) && r.b[r.off] < 0x80 { // one byte: most immediates
		r.off++
		return uint64(r.b[r.off-1])
	}
	return r.ulebSlow(bits)
}

func (r *reader) ulebSlow(bits uint) uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= bits+7 {
			r.fail("integer too long")
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if bits < 64 && v>>bits != 0 {
				r.fail("integer too large")
				return 0
			}
			return v
		}
	}
}

func (r *reader) u32() uint32 { return uint32(r.uleb(32)) }

// sleb skips a signed LEB128 of at most bits bits (its value is never needed) and returns the
// first byte, which block types inspect.
func (r *reader) sleb(bits uint) {
	for n := uint(0); ; n += 7 {
		if n >= bits+7 {
			r.fail("integer too long")
			return
		}
		if c := r.byte(); r.err != nil || c&0x80 == 0 {
			return
		}
	}
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// Opcodes the meter looks at or emits.
const (
	opUnreachable   = 0x00
	opBlock         = 0x02
	opLoop          = 0x03
	opIf            = 0x04
	opElse          = 0x05
	opEnd           = 0x0b
	opBr            = 0x0c
	opBrIf          = 0x0d
	opBrTable       = 0x0e
	opCall          = 0x10
	opCallInd       = 0x11
	opSelectT       = 0x1c
	opLocalGet      = 0x20
	opLocalTee      = 0x22
	opGlobalGet     = 0x23
	opGlobalSet     = 0x24
	opTableGet      = 0x25
	opTableSet      = 0x26
	opI32Const      = 0x41
	opI64Const      = 0x42
	opF32Const      = 0x43
	opF64Const      = 0x44
	opMemoryGrow    = 0x40
	opI32LtS        = 0x48
	opI32LtU        = 0x49
	opI32GtU        = 0x4b
	opI32LeU        = 0x4d
	opI64GtU        = 0x56
	opI32Add        = 0x6a
	opI32Or         = 0x72
	opI64Add        = 0x7c
	opI64Shl        = 0x86
	opI64ExtendI32U = 0xad
	opMemorySize    = 0x3f
	opLocalSet      = 0x21
	opI32Sub        = 0x6b
	opI32Shl        = 0x74
	opI32ShrU       = 0x76
	opSelect        = 0x1b
	opDrop          = 0x1a
	opRefNull       = 0xd0
	opRefIsNull     = 0xd1
	opRefFunc       = 0xd2
	opPrefixMisc    = 0xfc
	opPrefixSIMD    = 0xfd
)

// Sub-opcodes of 0xfc whose cost grows with their last operand (a count of bytes or elements).
const (
	miscMemoryInit = 8
	miscMemoryCopy = 10
	miscMemoryFill = 11
	miscTableInit  = 12
	miscTableCopy  = 14
	miscTableGrow  = 15
	miscTableFill  = 17
)

// insn is one decoded instruction. For call and ref.func, idx is the function index and
// [immStart, immEnd) its encoding; for global.get/set, idx is the global index.
type insn struct {
	op       byte
	sub      uint32 // the sub-opcode of a 0xfc instruction
	idx      uint32
	immStart int
	immEnd   int
}

// Immediate layouts, indexed by opcode in immediates.
const (
	immBad byte = iota // not in the supported feature set
	immNone
	immU32 // one index or label
	immBlock
	immBrTable
	immFunc // a function index: renumbered
	immCallIndirect
	immSelectT
	immGlobal // a global index: checked
	immMemarg
	immI32
	immI64
	immF32
	immF64
	immByte
	immMisc
	immSIMD
)

// immediates knows every instruction of the feature set wazero enables by default (WebAssembly
// 2.0: sign extension, non-trapping conversions, multi-value, bulk memory, reference types,
// 128-bit SIMD). The rest (threads, tail calls, exception handling) is refused, as wazero would.
var immediates = func() (t [256]byte) {
	for _, op := range []byte{opUnreachable, 0x01, opElse, opEnd, 0x0f, 0x1a, 0x1b, opRefIsNull} {
		t[op] = immNone
	}
	for op := 0x45; op <= 0xc4; op++ { // numeric and sign extension
		t[op] = immNone
	}
	for _, op := range []byte{opBr, opBrIf, opLocalGet, 0x21, opLocalTee, opTableGet, opTableSet, 0x3f, 0x40} {
		t[op] = immU32
	}
	for op := 0x28; op <= 0x3e; op++ { // loads and stores
		t[op] = immMemarg
	}
	t[opBlock], t[opLoop], t[opIf] = immBlock, immBlock, immBlock
	t[opBrTable] = immBrTable
	t[opCall], t[opRefFunc] = immFunc, immFunc
	t[opCallInd] = immCallIndirect
	t[opSelectT] = immSelectT
	t[opGlobalGet], t[opGlobalSet] = immGlobal, immGlobal
	t[opI32Const], t[opI64Const], t[opF32Const], t[opF64Const] = immI32, immI64, immF32, immF64
	t[opRefNull] = immByte
	t[opPrefixMisc], t[opPrefixSIMD] = immMisc, immSIMD
	return t
}()

// next decodes the instruction at r.off.
func (r *reader) next() insn {
	start := r.off
	if r.off >= len(r.b) {
		r.fail("unexpected end of data")
		return insn{}
	}
	in := insn{op: r.b[r.off]}
	r.off++
	switch immediates[in.op] {
	case immNone:
	case immU32:
		r.u32()
	case immBlock:
		r.blockType()
	case immBrTable:
		n := r.u32()
		for i := uint32(0); i <= n && r.err == nil; i++ {
			r.u32()
		}
	case immFunc:
		in.immStart = r.off
		in.idx = r.u32()
		in.immEnd = r.off
	case immCallIndirect:
		r.u32()
		r.u32()
	case immSelectT:
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.byte()
		}
	case immGlobal:
		in.idx = r.u32()
	case immMemarg:
		r.memarg()
	case immI32:
		r.sleb(32)
	case immI64:
		r.sleb(64)
	case immF32:
		r.bytes(4)
	case immF64:
		r.bytes(8)
	case immByte:
		r.byte()
	case immMisc:
		in.sub = r.misc()
	case immSIMD:
		r.simd()
	default:
		r.off = start
		r.fail("opcode 0x%02x is not supported (airlock runs WebAssembly 2.0 modules: "+
			"threads, tail calls and exception handling are not enabled)", in.op)
	}
	return in
}

// blockType reads a block type: 0x40 (empty), one value type, or a type index (s33).
func (r *reader) blockType() {
	if r.err != nil || r.off >= len(r.b) {
		r.byte()
		return
	}
	switch c := r.b[r.off]; c {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.off++
	default:
		r.sleb(33)
	}
}

func (r *reader) memarg() {
	align := r.u32()
	if align&0x40 != 0 { // multi-memory: a memory index follows
		r.u32()
	}
	r.uleb(64)
}

func (r *reader) misc() uint32 {
	start := r.off
	sub := r.u32()
	switch {
	case sub <= 7: // saturating truncations
	case sub == 8: // memory.init
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.u32()
	case sub == 10, sub == 12, sub == 14: // memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	default:
		r.off = start
		r.fail("opcode 0xfc %d is not supported", sub)
	}
	return sub
}

func (r *reader) simd() {
	start := r.off
	switch sub := r.u32(); {
	case sub <= 0x0b, sub == 0x5c, sub == 0x5d: // loads and stores
		r.memarg()
	case sub == 0x0c, sub == 0x0d: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 0x15 && sub <= 0x22: // extract and replace lane
		r.byte()
	case sub >= 0x54 && sub <= 0x5b: // load and store lane
		r.memarg()
		r.byte()
	case sub <= 0xff:
		// no immediates
	default:
		r.off = start
		r.fail("opcode 0xfd %d is not supported", sub)
	}
}
