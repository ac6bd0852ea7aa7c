// Package meter rewrites a WebAssembly module so that it counts its own progress and calls the
// host at intervals. It is how airlock stops a runaway plugin without wazero's termination checks.
//
// wazero's WithCloseOnContextDone compiles, at every loop header, a call that leaves the guest
// for Go to ask whether the module was closed. Code from the standard Go compiler is loop-heavy
// (every function is a resumable dispatch loop), and those exits made a Slack tool call spend
// four times longer in the guest than the same code without them (RATIONALE.md, "Runtime").
//
// [Instrument] adds instead, at a few places in every function (see Weights), a handful of
// inline instructions: subtract the site's weight from a fuel global, and when the fuel is
// negative call the imported function [ImportModule].[ImportName], which returns the next budget
// — or traps the call (the host panics) once the call's deadline has passed. A check that does
// not tick costs a load, a subtraction, a store and a branch.
//
// # Weights
//
// Sites sit at the entry of every function that does not begin with a loop, at every loop
// header, and after the end of every block, loop or if that contains a loop. A site's region
// runs from it to the next site in the body, and its weight is the region's length in
// instructions. Control flow in WebAssembly only jumps backwards to a loop header (a site), and a
// forward jump lands at the end of an enclosing block: inside the region, or — when that block
// contains a loop — on a site. So each instruction runs at most once per pass over its region's
// site, a call runs the callee's entry site, and fuel is charged at least one unit per
// instruction executed, whatever the code does: a long straight-line function, deep or
// exponential recursion without any loop (which wazero's loop-header checks do not catch), or a
// tight loop. Small regions that do not start at a loop header are merged into the region before
// them, which overcharges a little and saves a check.
//
// # Sized instructions
//
// Some instructions take time in proportion to an operand: memory.fill, memory.copy and
// memory.init (bytes), table.fill, table.copy, table.init and table.grow (elements), memory.grow
// (pages). Before each, a charge is inserted that copies the count on top of the stack into a
// scratch global and subtracts its cost from the fuel (see byteShift), ticking when that leaves
// the fuel negative; so a loop of large operations reaches the host every 1–2 MiB moved. A
// memory.fill or memory.copy of more than sliceBytes runs instead in an added helper function,
// a slice at a time with a charge before each, so that no single instruction keeps the guest away
// from the host for long; a range out of bounds still traps before anything is written. Every
// table gets a maximum of maxTableElements.
//
// # What changes in the module
//
//   - one function import, ImportModule.ImportName of type () -> i32, added after the existing
//     function imports, so every defined function's index grows by one: call, ref.func,
//     exports, the start function, element segments and the "name" section are renumbered;
//   - two types, () -> i32 and (i32, i32, i32) -> (), appended to the type section;
//   - two mutable i32 globals (the fuel and a scratch) appended to the global section;
//   - in a module with a memory, two helper functions (large memory.fill and memory.copy)
//     appended to the function and code sections;
//   - every table's maximum is bounded;
//   - function bodies gain the checks and charges;
//   - custom sections whose names start with ".debug" (DWARF) are dropped: their code offsets
//     would no longer match and they would make wazero report wrong source lines;
//   - active data segments that lie close together are merged (see maxDataGap), and the data
//     segment names of the "name" section are dropped: the standard Go linker starts a segment
//     after every run of zeros, 45,000 for the Slack connector, which wazero decodes, validates
//     and copies one by one at every load and instantiation.
//
// A module that already imports from ImportModule is refused, as is one whose code names a
// global index that does not exist (after instrumentation it would name the fuel or scratch
// global and could refill its fuel), and one with a table that starts larger than the bound.
package meter

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// The import the checks call when the fuel runs out. Its host implementation must return the
// next budget (an i32 > 0; [Budget] is a good value) or stop the call by panicking.
const (
	ImportModule = "airlock:meter"
	ImportName   = "tick"
)

// Budget is the fuel a module starts with, and the value a tick should return. Fuel is charged
// by the region, not by the instruction actually run, so real code burns it 10–100× faster than
// it runs instructions: the Slack connector ticks about once per call, while a tight runaway loop
// (which is charged exactly) reaches a tick within a few milliseconds.
const Budget = 1 << 22

// Version names what Instrument produces: callers that keep its output (the runtime's on-disk
// cache of instrumented modules) key it by Version and the input's digest. Change it whenever
// the output for some input changes; TestVersionPinsOutput fails until it is.
const Version = "2"

// Stats describes one instrumentation.
type Stats struct {
	Functions int // defined functions rewritten
	Sites     int // checks inserted
	Sized     int // charges inserted before sized instructions (bulk memory and table operations, memory.grow)
}

// Section ids.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secTable    = 4
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secElement  = 9
	secCode     = 10
	secData     = 11
	secDataCnt  = 12
	secTag      = 13
)

// order ranks non-custom sections as the binary format requires them to appear.
var order = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6, secGlobal: 7,
	secExport: 8, secStart: 9, secElement: 10, secDataCnt: 11, secCode: 12, secData: 13,
}

type section struct {
	id   byte
	data []byte
	off  int // offset of data in the original module
}

// module holds what the rewrite needs to know about the whole module.
type module struct {
	types       uint32 // entries in the type section
	funcImports uint32
	globals     uint32 // imported and defined
	tickType    uint32
	tick        uint32 // index of the added import
	fuel        uint32 // index of the added fuel global
	scratch     uint32 // index of the added scratch global (the count of a sized instruction)
	defined     uint32 // functions defined by the module
	memory      bool   // it has a memory: memory.fill and memory.copy may appear, and the helpers are added
	dataCount   bool   // it has a data count section: memory.init and data.drop may name segments
	memImported bool   // its memory is imported: another module may see what instantiation wrote
	bulkType    uint32 // the added type (i32, i32, i32) -> ()
	fill, copy  uint32 // indices of the added helpers that run a large memory.fill or memory.copy in slices
}

func (m *module) remap(f uint32) uint32 {
	if f >= m.funcImports {
		return f + 1
	}
	return f
}

var header = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Instrument returns a copy of wasm with fuel checks inserted (see the package documentation).
// The input is not modified. Errors are *Error and name the offending byte.
func Instrument(wasm []byte) ([]byte, Stats, error) {
	if !bytes.HasPrefix(wasm, header) {
		return nil, Stats{}, &Error{Msg: "not a WebAssembly 1.0 binary module (bad magic number or version)"}
	}
	secs, err := split(wasm)
	if err != nil {
		return nil, Stats{}, err
	}
	var m module
	for _, s := range secs {
		r := &reader{b: s.data, base: s.off}
		switch s.id {
		case secType:
			m.types = r.types()
		case secFunction:
			m.defined = r.items(s.id)
		case secTable, secMemory:
			if r.items(s.id) > 0 && s.id == secMemory {
				m.memory = true
			}
		case secImport:
			funcs, globals, memories := r.imports()
			m.funcImports += funcs
			m.globals += globals
			m.memory = m.memory || memories > 0
			m.memImported = memories > 0
		case secGlobal:
			m.globals += r.count()
		case secDataCnt:
			m.dataCount = true
		}
		if r.err != nil {
			return nil, Stats{}, r.err
		}
	}
	m.tickType, m.tick, m.fuel, m.scratch = m.types, m.funcImports, m.globals, m.globals+1
	m.bulkType = m.types + 1
	m.fill, m.copy = m.funcImports+1+m.defined, m.funcImports+2+m.defined

	secs = ensure(secs, secType, secImport, secGlobal)
	if m.memory {
		secs = ensure(secs, secFunction, secCode)
	}
	var st Stats
	// Checks add about 10% to the code; size the output once.
	out := make([]byte, 0, len(wasm)+len(wasm)/8+64)
	out = append(out, header...)
	for _, s := range secs {
		data, keep, err := m.rewrite(s, &st)
		if err != nil {
			return nil, Stats{}, err
		}
		if !keep {
			continue
		}
		out = append(out, s.id)
		out = appendU32(out, uint32(len(data)))
		out = append(out, data...)
	}
	return out, st, nil
}

// split cuts a module into its sections.
func split(wasm []byte) ([]section, error) {
	r := &reader{b: wasm, off: len(header)}
	var secs []section
	last := 0
	for !r.done() {
		start := r.off
		id := r.byte()
		size := r.u32()
		dataOff := r.off
		data := r.bytes(size)
		if r.err != nil {
			return nil, r.err
		}
		if id != secCustom {
			rank, ok := order[id]
			if !ok {
				return nil, &Error{Offset: start, Msg: fmt.Sprintf("unknown section id %d", id)}
			}
			if rank <= last {
				return nil, &Error{Offset: start, Msg: fmt.Sprintf("section %d is out of order or repeated", id)}
			}
			last = rank
		}
		secs = append(secs, section{id: id, data: data, off: dataOff})
	}
	return secs, nil
}

// ensure inserts an empty section for each id that is missing, at its place in the order.
func ensure(secs []section, ids ...byte) []section {
	for _, id := range ids {
		at, found := len(secs), false
		for i, s := range secs {
			if s.id == id {
				found = true
				break
			}
			if s.id != secCustom && order[s.id] > order[id] {
				at = i
				break
			}
		}
		if !found {
			secs = append(secs[:at], append([]section{{id: id, data: []byte{0}}}, secs[at:]...)...)
		}
	}
	return secs
}

// count reads a vector length and refuses one that cannot fit in the bytes left (every item
// takes at least one byte). wazero sizes its slices by these counts before reading the items: a
// 20-byte module claiming a billion parameter types made it allocate 1.5 GB.
func (r *reader) count() uint32 {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(len(r.b)-r.off) {
		r.fail("a vector of %d items cannot fit in the %d bytes left", n, len(r.b)-r.off)
		return 0
	}
	return n
}

// types reads a type section (function types only, as in WebAssembly 2.0) and returns its length.
func (r *reader) types() uint32 {
	n := r.count()
	for i := uint32(0); i < n && r.err == nil; i++ {
		if form := r.byte(); form != 0x60 {
			r.fail("type %d is not a function type (form 0x%02x)", i, form)
		}
		r.bytes(r.count()) // parameters
		r.bytes(r.count()) // results
	}
	return n
}

// items checks the function, table or memory section's shape and returns its length.
func (r *reader) items(id byte) uint32 {
	n := r.count()
	for i := uint32(0); i < n && r.err == nil; i++ {
		switch id {
		case secFunction:
			r.u32()
		case secTable:
			r.byte()
			r.limits()
		case secMemory:
			r.limits()
		}
	}
	return n
}

// imports reads an import section, counting function, global and memory imports and refusing
// imports from ImportModule.
func (r *reader) imports() (funcs, globals, memories uint32) {
	n := r.count()
	for i := uint32(0); i < n && r.err == nil; i++ {
		mod := r.bytes(r.u32())
		r.bytes(r.u32())
		if string(mod) == ImportModule {
			r.fail("the module imports from %q, which is reserved for the host", ImportModule)
			return
		}
		switch kind := r.byte(); kind {
		case 0x00: // function
			r.u32()
			funcs++
		case 0x01: // table
			r.byte()
			r.limits()
		case 0x02: // memory
			r.limits()
			memories++
		case 0x03: // global
			r.byte()
			r.byte()
			globals++
		case 0x04: // tag
			r.byte()
			r.u32()
		default:
			r.fail("unknown import kind %d", kind)
		}
	}
	return funcs, globals, memories
}

func (r *reader) limits() {
	flags := r.byte()
	bits := uint(32)
	if flags&0x04 != 0 {
		bits = 64
	}
	r.uleb(bits)
	if flags&0x01 != 0 {
		r.uleb(bits)
	}
}

// rewrite returns the new content of s, or keep=false to drop it.
func (m *module) rewrite(s section, st *Stats) (data []byte, keep bool, err error) {
	r := &reader{b: s.data, base: s.off}
	var out []byte
	switch s.id {
	case secType:
		n := r.u32()
		out = appendU32(out, n+2)
		out = append(out, s.data[r.off:]...)
		out = append(out, 0x60, 0x00, 0x01, 0x7f)             // () -> i32
		out = append(out, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00) // (i32, i32, i32) -> ()
	case secImport:
		n := r.u32()
		out = appendU32(out, n+1)
		out = append(out, s.data[r.off:]...)
		out = appendName(out, ImportModule)
		out = appendName(out, ImportName)
		out = append(out, 0x00)
		out = appendU32(out, m.tickType)
	case secGlobal:
		n := r.count()
		out = appendU32(out, n+2)
		for i := uint32(0); i < n && r.err == nil; i++ {
			out = append(out, r.bytes(2)...) // value type, mutability
			out = m.expr(r, out)
		}
		out = append(out, 0x7f, 0x01, opI32Const) // fuel: mutable i32 = Budget
		out = appendS32(out, Budget)
		out = append(out, opEnd)
		out = append(out, 0x7f, 0x01, opI32Const, 0, opEnd) // scratch: mutable i32 = 0
	case secExport:
		n := r.count()
		out = appendU32(out, n)
		for i := uint32(0); i < n && r.err == nil; i++ {
			name := r.bytes(r.u32())
			out = appendU32(out, uint32(len(name)))
			out = append(out, name...)
			kind := r.byte()
			idx := r.u32()
			switch kind {
			case 0x00:
				idx = m.remap(idx)
			case 0x03:
				m.checkGlobal(r, idx)
			}
			out = append(out, kind)
			out = appendU32(out, idx)
		}
	case secStart:
		out = appendU32(out, m.remap(r.u32()))
	case secTable:
		out = tables(r)
	case secFunction:
		if !m.memory {
			return s.data, true, nil
		}
		n := r.count()
		out = appendU32(out, n+2)
		out = append(out, s.data[r.off:]...)
		out = appendU32(out, m.bulkType)
		out = appendU32(out, m.bulkType)
		r.off = len(r.b)
	case secElement:
		out = m.elements(r)
	case secCode:
		out = m.code(r, st)
	case secData:
		out = m.data(r)
	case secCustom:
		name := string(r.bytes(r.u32()))
		switch {
		case r.err != nil:
			return nil, false, r.err
		case strings.HasPrefix(name, ".debug"):
			return nil, false, nil
		case name == "name":
			names, ok := m.names(&reader{b: s.data[r.off:], base: s.off + r.off})
			if !ok {
				// wazero decodes this section too, sizing its maps by the claimed counts.
				return nil, false, &Error{Offset: s.off, Msg: "the name section is malformed"}
			}
			out = appendName(out, name)
			out = append(out, names...)
		default:
			return s.data, true, nil
		}
	default:
		return s.data, true, nil
	}
	if r.err != nil {
		return nil, false, r.err
	}
	if s.id != secCustom && s.id != secType && s.id != secImport && r.off != len(r.b) {
		return nil, false, &Error{Offset: s.off + r.off, Msg: fmt.Sprintf("section %d has trailing bytes", s.id)}
	}
	return out, true, nil
}

// maxDataGap: data segments at most this many bytes apart are merged, the gap filled with zeros.
// A gap this short holds no whole 4 KiB page, so the merged segment writes no page that the
// original segments did not (instances stay as small). The zeros added to a data section are at
// most its own size (a section of empty segments 4 KiB apart would otherwise grow 800-fold).
const maxDataGap = 4095

// segment is a data segment: head is its kind, memory and offset expression, as written out.
type segment struct {
	head   []byte
	offset uint64
	active bool // active in memory 0 at a constant offset
	data   []byte
}

// data rewrites a data section, merging segments (see maxDataGap) when every segment is active
// in memory 0 at an i32.const offset and no two overlap: then each byte is written by one segment
// at most, whatever the order (so segments are sorted by offset; the Go linker writes a few
// ascending runs), no segment writes into the gap between two others, where memory is still
// zero, and in a module without a data count section no instruction names a segment. Segments
// are only reordered in a module that defines its memory: a segment out of bounds fails the
// instantiation, and with an imported memory another module would see which segments had been
// written before it. Otherwise the segments are copied.
func (m *module) data(r *reader) []byte {
	n := r.count()
	segs := make([]segment, 0, n)
	heads := make([]byte, 0, 8*int(n)) // one buffer for every head
	merge, sorted := !m.dataCount, true
	var end uint64
	for i := uint32(0); i < n && r.err == nil; i++ {
		var s segment
		start := len(heads)
		flags := r.u32()
		heads = appendU32(heads, flags)
		switch flags {
		case 0, 2:
			mem := uint32(0)
			if flags == 2 {
				mem = r.u32()
				heads = appendU32(heads, mem)
			}
			var ok bool
			s.offset, ok = constOffset(r.b[r.off:])
			s.active = ok && mem == 0
			heads = m.expr(r, heads)
		case 1:
		default:
			r.fail("unknown data segment kind %d", flags)
		}
		s.head = heads[start:len(heads):len(heads)]
		s.data = r.bytes(r.u32())
		merge = merge && s.active
		sorted = sorted && s.offset >= end
		end = s.offset + uint64(len(s.data))
		segs = append(segs, s)
	}
	if merge && !sorted && !m.memImported {
		ordered := slices.Clone(segs)
		slices.SortStableFunc(ordered, func(a, b segment) int { return cmp.Compare(a.offset, b.offset) })
		end, sorted = 0, true
		for _, s := range ordered {
			sorted = sorted && s.offset >= end
			end = s.offset + uint64(len(s.data))
		}
		if sorted {
			segs = ordered
		}
	}
	if merge && sorted {
		segs = mergeSegments(segs, uint64(len(r.b)))
	}
	out := make([]byte, 0, len(r.b)+len(r.b)/4)
	out = appendU32(out, uint32(len(segs)))
	for _, s := range segs {
		out = append(out, s.head...)
		out = appendU32(out, uint32(len(s.data)))
		out = append(out, s.data...)
	}
	return out
}

// mergeSegments merges runs of segments, in increasing order of offset and not overlapping,
// whose gaps are at most maxDataGap bytes, adding at most budget zeros in all.
func mergeSegments(segs []segment, budget uint64) []segment {
	out := segs[:0]
	for i := 0; i < len(segs); {
		j, end := i+1, segs[i].offset+uint64(len(segs[i].data))
		for j < len(segs) {
			gap := segs[j].offset - end
			if gap > maxDataGap || gap > budget {
				break
			}
			budget -= gap
			end = segs[j].offset + uint64(len(segs[j].data))
			j++
		}
		s := segs[i]
		if j > i+1 {
			data := make([]byte, 0, end-s.offset)
			for _, t := range segs[i:j] {
				data = append(data, make([]byte, t.offset-s.offset-uint64(len(data)))...)
				data = append(data, t.data...)
			}
			s.data = data
		}
		out = append(out, s)
		i = j
	}
	return out
}

// constOffset reads an offset expression that is exactly i32.const k, end, and returns k as
// the unsigned offset it means.
func constOffset(b []byte) (uint64, bool) {
	if len(b) < 3 || b[0] != opI32Const {
		return 0, false
	}
	var v int64
	var shift uint
	for i := 1; i < len(b) && i <= 5; i++ {
		c := b[i]
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			if i+1 >= len(b) || b[i+1] != opEnd {
				return 0, false
			}
			return uint64(uint32(int32(v))), true
		}
	}
	return 0, false
}

// maxTableElements bounds every table: wazero grows a table to whatever table.grow asks up to
// its declared maximum, or 2^32-1 elements without one, and a table's elements are host memory
// outside the module's memory limit (8 bytes each: one table.grow could ask for 32 GiB).
const maxTableElements = 1 << 20

// tables rewrites a table section, giving every table a maximum of at most maxTableElements (or
// its minimum, if larger; a minimum above it is refused).
func tables(r *reader) []byte {
	n := r.count()
	out := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		typ, flags := r.byte(), r.byte()
		lo := r.u32()
		hi := uint32(maxTableElements)
		switch flags {
		case 0x00:
		case 0x01:
			hi = min(r.u32(), hi)
		default:
			r.fail("table %d has limits of kind 0x%02x, which is not supported", i, flags)
		}
		if lo > maxTableElements {
			r.fail("table %d starts with %d elements; the limit is %d", i, lo, maxTableElements)
		}
		out = append(out, typ, 0x01)
		out = appendU32(out, lo)
		out = appendU32(out, hi) // below lo only if the declared maximum was: still invalid
	}
	return out
}

func (m *module) checkGlobal(r *reader, idx uint32) {
	if idx >= m.fuel {
		r.fail("global index %d does not exist (the module has %d globals)", idx, m.fuel)
	}
}

// expr copies a constant expression, renumbering ref.func.
func (m *module) expr(r *reader, out []byte) []byte {
	last := r.off
	for depth := 0; r.err == nil; {
		in := r.next()
		switch in.op {
		case opBlock, opLoop, opIf:
			depth++
		case opEnd:
			if depth == 0 {
				return append(out, r.b[last:r.off]...)
			}
			depth--
		case opRefFunc, opCall:
			out = append(out, r.b[last:in.immStart]...)
			out = appendU32(out, m.remap(in.idx))
			last = in.immEnd
		case opGlobalGet, opGlobalSet:
			m.checkGlobal(r, in.idx)
		}
	}
	return out
}

// elements rewrites an element section (all eight segment encodings).
func (m *module) elements(r *reader) []byte {
	n := r.count()
	out := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		out = appendU32(out, flags)
		if flags > 7 {
			r.fail("unknown element segment kind %d", flags)
			return nil
		}
		if flags&0x02 != 0 && flags&0x01 == 0 { // 2 and 6: explicit table index
			out = appendU32(out, r.u32())
		}
		if flags&0x01 == 0 { // 0, 2, 4, 6: active, with an offset
			out = m.expr(r, out)
		}
		if flags&0x03 != 0 { // 1, 2, 3, 5, 6, 7: element kind or reference type
			out = append(out, r.byte())
		}
		count := r.count()
		out = appendU32(out, count)
		for j := uint32(0); j < count && r.err == nil; j++ {
			if flags&0x04 != 0 {
				out = m.expr(r, out)
			} else {
				out = appendU32(out, m.remap(r.u32()))
			}
		}
	}
	return out
}

// names renumbers the function indices of a "name" custom section (subsections 1, 2 and 3:
// function, local and label names); other subsections are copied. It reports false for a
// malformed section.
func (m *module) names(r *reader) ([]byte, bool) {
	var out []byte
	for !r.done() {
		id := r.byte()
		sub := &reader{b: r.bytes(r.u32())}
		if r.err != nil {
			return nil, false
		}
		var body []byte
		switch id {
		case 1:
			n := sub.count()
			body = appendU32(body, n)
			for i := uint32(0); i < n && sub.err == nil; i++ {
				body = appendU32(body, m.remap(sub.u32()))
				name := sub.bytes(sub.u32())
				body = appendU32(body, uint32(len(name)))
				body = append(body, name...)
			}
		case 2, 3:
			n := sub.count()
			body = appendU32(body, n)
			for i := uint32(0); i < n && sub.err == nil; i++ {
				body = appendU32(body, m.remap(sub.u32()))
				start := sub.off
				k := sub.count()
				for j := uint32(0); j < k && sub.err == nil; j++ {
					sub.u32()
					sub.bytes(sub.u32())
				}
				body = append(body, sub.b[start:sub.off]...)
			}
		case 0: // the module's name
			sub.bytes(sub.count())
			body = sub.b
		case 9: // data segment names: their indices may no longer hold (see data)
			if !m.dataCount {
				continue
			}
			body = sub.b
		default:
			body = sub.b
		}
		// wazero reads known subsections without honouring their sizes (it would run on into
		// the next section), so each must be exactly its content.
		if sub.err != nil || (id <= 3 && sub.off != len(sub.b)) {
			return nil, false
		}
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	return out, true
}

// maxLocals bounds the locals of one function, as browsers' engines do (V8: 50,000); wazero
// would otherwise allocate whatever a hostile module declares.
const maxLocals = 50_000

// fn is scratch space reused across function bodies.
type fn struct {
	control []frame // open blocks
	edits   []edit  // rewrites and sites, in body order
}

// frame is an open block, loop or if.
type frame struct {
	loop    bool // it is a loop
	hasLoop bool // a loop is nested somewhere inside it
}

// edit replaces body[from:to] with a renumbered function index, or (site) inserts a check at
// from, before the instruction with index at, or (charge) inserts the charge of a sized
// instruction at from, just before it.
type edit struct {
	from, to int
	idx      uint32
	charge   scale
	sliced   bool   // (with charge) the instruction is memory.fill or memory.copy: see sliceLarge
	helper   uint32 // the helper sliceLarge calls
	closeIf  bool   // insert the end of sliceLarge's if after the instruction
	site     bool
	header   bool // the site is a loop header
	at       int
	weight   int32
}

// mergeBelow: a site that is not a loop header and whose region has at most this many
// instructions is merged into the region before it (a check costs about five instructions).
const mergeBelow = 4

// code rewrites the code section.
func (m *module) code(r *reader, st *Stats) []byte {
	n := r.count()
	total := n
	if m.memory {
		total += 2 // the helpers, appended below
	}
	out := appendU32(make([]byte, 0, len(r.b)+len(r.b)/8+256), total)
	var f fn
	var body []byte
	for i := uint32(0); i < n && r.err == nil; i++ {
		size := r.u32()
		start := r.off
		b := r.bytes(size)
		if r.err != nil {
			return nil
		}
		var err error
		body, err = m.body(&reader{b: b, base: r.base + start}, &f, body[:0], st)
		if err != nil {
			r.err = err
			return nil
		}
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
		st.Functions++
	}
	if m.memory {
		out = m.helpers(out)
	}
	return out
}

// body appends the rewritten function body read by r to out.
//
// Sites go at the function's entry, at every loop header, and after the end of every block,
// loop or if that contains a loop. A site's region runs to the next site in the body, and its
// weight is the region's length. Within a region control only moves forward: a backward branch
// targets a loop header (a site), and a forward branch lands at the end of an enclosing block,
// which is either inside the region or — when the block contains a loop — a site. So each
// instruction runs at most once per pass over its region's site, and the fuel charged bounds
// the instructions run.
func (m *module) body(r *reader, f *fn, out []byte, st *Stats) ([]byte, error) {
	f.control, f.edits = f.control[:0], f.edits[:0]

	// Locals are copied as they are, after a bound on their number.
	groups := r.count()
	locals := uint64(0)
	for i := uint32(0); i < groups && r.err == nil; i++ {
		locals += uint64(r.u32())
		r.byte()
	}
	if locals > maxLocals {
		r.fail("a function declares %d locals; the limit is %d", locals, maxLocals)
		return nil, r.err
	}
	localsEnd := r.off

	// Scan: the index immediates to renumber and the sites.
	f.edits = append(f.edits, edit{from: localsEnd, to: localsEnd, site: true, at: 0})
	n := 0 // instructions read
	for r.err == nil {
		at := r.off
		in := r.next()
		if r.err != nil {
			break
		}
		n++
		if c := sized(in); c != 0 {
			st.Sized++
			if in.op == opPrefixMisc && (in.sub == miscMemoryFill || in.sub == miscMemoryCopy) && m.memory {
				helper := m.fill
				if in.sub == miscMemoryCopy {
					helper = m.copy
				}
				f.edits = append(f.edits, edit{from: at, to: at, charge: c, helper: helper, sliced: true},
					edit{from: r.off, to: r.off, closeIf: true})
			} else {
				f.edits = append(f.edits, edit{from: at, to: at, charge: c})
			}
		}
		switch in.op {
		case opBlock, opIf:
			f.control = append(f.control, frame{})
		case opLoop:
			f.control = append(f.control, frame{loop: true})
			if n == 1 { // the body starts with a loop: its site serves as the entry's
				f.edits[0] = edit{from: r.off, to: r.off, site: true, header: true, at: 0}
				break
			}
			f.edits = append(f.edits, edit{from: r.off, to: r.off, site: true, header: true, at: n})
		case opEnd:
			if len(f.control) == 0 { // the end of the function
				if r.off != len(r.b) {
					r.fail("function body has bytes after its end")
				}
				goto scanned
			}
			top := f.control[len(f.control)-1]
			f.control = f.control[:len(f.control)-1]
			if top.loop || top.hasLoop {
				f.edits = append(f.edits, edit{from: r.off, to: r.off, site: true, at: n})
				if len(f.control) > 0 {
					f.control[len(f.control)-1].hasLoop = true
				}
			}
		case opCall, opRefFunc:
			f.edits = append(f.edits, edit{from: in.immStart, to: in.immEnd, idx: m.remap(in.idx)})
		case opGlobalGet, opGlobalSet:
			m.checkGlobal(r, in.idx)
		}
	}
	if r.err == nil {
		r.fail("function body ends without its end")
	}
	return nil, r.err

scanned:
	if r.err != nil {
		return nil, r.err
	}
	f.weigh(n)

	out = append(out, r.b[:localsEnd]...)
	last := localsEnd
	for _, e := range f.edits {
		if e.site && e.weight == 0 { // merged into the region before it
			continue
		}
		out = append(out, r.b[last:e.from]...)
		switch {
		case e.site:
			out = m.check(out, e.weight)
			st.Sites++
		case e.sliced:
			out = m.sliceLarge(out, e.helper)
		case e.closeIf:
			out = append(out, opEnd)
		case e.charge != 0:
			out = m.chargeSized(out, e.charge)
		default:
			out = appendU32(out, e.idx)
		}
		last = e.to
	}
	return append(out, r.b[last:]...), nil
}

// weigh sets each site's weight to the length of its region (n is the body's instruction
// count), merging small regions that do not start at a loop header into the one before them
// (their weight is set to 0).
func (f *fn) weigh(n int) {
	prev := -1 // index in f.edits of the last site kept
	for i := range f.edits {
		e := &f.edits[i]
		if !e.site {
			continue
		}
		next := n
		for j := i + 1; j < len(f.edits); j++ {
			if f.edits[j].site {
				next = f.edits[j].at
				break
			}
		}
		size := next - e.at
		if !e.header && prev >= 0 && size <= mergeBelow {
			f.edits[prev].weight = weight(int(f.edits[prev].weight) + size)
			e.weight = 0
			continue
		}
		e.weight = weight(size)
		prev = i
	}
}

func weight(c int) int32 {
	return int32(min(max(c, 1), Budget, math.MaxInt32))
}

// check appends a site: fuel -= w; if fuel < 0 { fuel = tick() }.
func (m *module) check(out []byte, w int32) []byte {
	out = append(out, opGlobalGet)
	out = appendU32(out, m.fuel)
	out = append(out, opI32Const)
	out = appendS32(out, w)
	out = append(out, opI32Sub)
	return m.settle(out)
}

// How a sized instruction is charged: its last operand, an unsigned i32 count, scaled to fuel.
type scale byte

const (
	perByte    scale = iota + 1 // memory.init: min(bytes, maxBytes) << byteShift
	perSlice                    // memory.fill, memory.copy of at most sliceBytes: bytes << byteShift
	perElement                  // table.fill, table.copy, table.init, table.grow: elements >> elementShift
	perPage                     // memory.grow: min(pages, maxPages) << (16 + byteShift)
)

// A byte of bulk memory work costs 4 units, so a loop of bulk operations reaches a tick every
// MiB (about 0.1 ms of work on warm memory, ten times more on memory touched for the first time,
// whose pages the kernel zeroes). That is far more often than a loop of instructions ticks (a
// Budget of them takes a millisecond or two), and it has to be: the Go scheduler cannot preempt
// guest code, so a collection waits for the guest's next tick with every processor stopped, and
// on a loaded machine the operating system stretches that wait by however long it keeps the
// guest's thread off the processor. A tick costs about 0.2 µs, under 0.5% of a MiB's work.
// Two 8-byte table elements cost one unit. The bounds keep every charge below 2^31, so a count
// cannot wrap it into a refill; the operations they cut short fail at once (a grow of 8191 pages
// or more, an init of 256 MiB or more from a segment in a module of at most that size).
const (
	byteShift    = 2
	elementShift = 1
	maxBytes     = 1<<28 - 1
	maxPages     = 1<<13 - 1
)

// sized reports how in is charged by its operand, or 0 for an instruction of fixed cost.
func sized(in insn) scale {
	switch {
	case in.op == opMemoryGrow:
		return perPage
	case in.op != opPrefixMisc:
		return 0
	}
	switch in.sub {
	case miscMemoryInit:
		return perByte
	case miscMemoryCopy, miscMemoryFill:
		return perSlice
	case miscTableInit, miscTableCopy, miscTableFill, miscTableGrow:
		return perElement
	}
	return 0
}

// chargeSized appends, before a sized instruction whose count n is on top of the stack, code
// that leaves the stack as it is and does: scratch = n; fuel -= cost(n); if fuel < 0 { fuel =
// tick() }. The cost is below 2^31 and the fuel is never negative before it, so the
// subtraction cannot wrap around into a refill; a tick therefore runs before any operation that
// costs more than the fuel left, so a loop of large operations reaches the host (its deadline
// check, and the Go scheduler) about once per Budget's worth of bytes.
func (m *module) chargeSized(out []byte, s scale) []byte {
	return m.chargeStashed(m.stash(out), s)
}

// clamp appends, after the count that chargeStashed pushed: min(scratch, limit), unsigned.
func (m *module) clamp(out []byte, limit int32) []byte {
	out = append(out, opDrop, opI32Const)
	out = appendS32(out, limit)
	out = append(out, opGlobalGet)
	out = appendU32(out, m.scratch)
	out = append(out, opGlobalGet)
	out = appendU32(out, m.scratch)
	out = append(out, opI32Const)
	out = appendS32(out, limit)
	return append(out, opI32GtU, opSelect)
}

// stash appends: scratch = <top of stack>, leaving it on the stack.
func (m *module) stash(out []byte) []byte {
	out = append(out, opGlobalSet)
	out = appendU32(out, m.scratch)
	out = append(out, opGlobalGet)
	return appendU32(out, m.scratch)
}

// chargeStashed appends the charge of a sized instruction whose count is in scratch.
func (m *module) chargeStashed(out []byte, s scale) []byte {
	out = append(out, opGlobalGet)
	out = appendU32(out, m.fuel)
	out = append(out, opGlobalGet)
	out = appendU32(out, m.scratch)
	switch s {
	case perByte:
		out = m.clamp(out, maxBytes)
		out = append(out, opI32Const, byteShift, opI32Shl)
	case perSlice: // a fill or copy that is not sliced has at most sliceBytes
		out = append(out, opI32Const, byteShift, opI32Shl)
	case perElement:
		out = append(out, opI32Const, elementShift, opI32ShrU)
	case perPage:
		out = m.clamp(out, maxPages)
		out = append(out, opI32Const, 16+byteShift, opI32Shl)
	}
	out = append(out, opI32Sub)
	return m.settle(out)
}

// sliceBytes is the most a memory.fill or memory.copy moves between two charges. A bulk operation
// cannot be interrupted, and neither can the Go scheduler stop it for a garbage collection: the
// first write to 64 MiB of fresh memory took 50 ms on a loaded 2-core machine, and a plugin may
// have up to 1 GiB. A 1 MiB slice takes about a millisecond at worst.
const sliceBytes = 1 << 20

// sliceLarge appends, before a memory.fill or memory.copy whose operands (d, v or s, n) are on
// the stack:
//
//	scratch = n
//	if n > sliceBytes { helper(d, v|s, n) } else { charge(n); <the instruction> }
//
// The caller emits the instruction itself and then the if's end (an edit with closeIf). Small
// operations, the ones compiled code does all the time, run inline; large ones run in the
// helper, sliceBytes at a time, charging each slice before it runs.
func (m *module) sliceLarge(out []byte, helper uint32) []byte {
	out = m.stash(out)
	out = append(out, opGlobalGet)
	out = appendU32(out, m.scratch)
	out = append(out, opI32Const)
	out = appendS32(out, sliceBytes)
	out = append(out, opI32GtU, opIf)
	out = appendS32(out, int32(m.bulkType)) // a block type (i32, i32, i32) -> (): it takes the operands
	out = append(out, opCall)
	out = appendU32(out, helper)
	out = append(out, opElse)
	return m.chargeStashed(out, perSlice)
}

// helpers appends the bodies of the two helpers sliceLarge calls, (d, v, n) -> () for
// memory.fill and (d, s, n) -> () for memory.copy. Each first checks the whole range and, when
// it is out of bounds, runs the instruction as it was, which traps before writing anything, as
// the original would have. Then it moves sliceBytes at a time, charging each slice before it
// runs; a copy goes backwards when the destination is above the source, as memory.copy must
// when the ranges overlap.
func (m *module) helpers(out []byte) []byte {
	const d, v, n = 0, 1, 2 // parameters (v is the source address in copy)
	get := func(b []byte, local byte) []byte { return append(b, opLocalGet, local) }
	c := func(b []byte, k int32) []byte { return appendS32(append(b, opI32Const), k) }
	op := func(b []byte, sub byte) []byte {
		if sub == miscMemoryFill {
			return append(b, opPrefixMisc, miscMemoryFill, 0)
		}
		return append(b, opPrefixMisc, miscMemoryCopy, 0, 0)
	}
	outOfBounds := func(b []byte, addr byte) []byte { // u64(addr) + u64(n) > memory.size << 16
		b = get(b, addr)
		b = append(b, opI64ExtendI32U)
		b = get(b, n)
		b = append(b, opI64ExtendI32U, opI64Add, opMemorySize, 0, opI64ExtendI32U, opI64Const, 16, opI64Shl, opI64GtU)
		return b
	}
	charge := func(b []byte, slice bool) []byte {
		b = append(b, opGlobalGet)
		b = appendU32(b, m.fuel)
		if slice {
			b = c(b, sliceBytes<<byteShift)
		} else { // n is at most sliceBytes here
			b = get(b, n)
			b = c(b, byteShift)
			b = append(b, opI32Shl)
		}
		return m.settle(append(b, opI32Sub))
	}
	add := func(b []byte, local byte, k int32, sub bool) []byte {
		b = c(get(b, local), k)
		if sub {
			b = append(b, opI32Sub)
		} else {
			b = append(b, opI32Add)
		}
		return append(b, opLocalSet, local)
	}
	whileLarge := func(b []byte, step func([]byte) []byte) []byte { // while n > sliceBytes { charge; step }
		b = append(b, opBlock, 0x40, opLoop, 0x40)
		b = c(get(b, n), sliceBytes)
		b = append(b, opI32LeU, opBrIf, 1)
		b = step(charge(b, true))
		return append(b, opBr, 0, opEnd, opEnd)
	}
	all := func(b []byte, sub byte) []byte { return op(get(get(get(b, d), v), n), sub) }
	slice := func(b []byte, sub byte, from, to byte) []byte { return op(c(get(get(b, from), to), sliceBytes), sub) }

	var fill []byte
	fill = append(outOfBounds(fill, d), opIf, 0x40)
	fill = append(all(fill, miscMemoryFill), opEnd)
	fill = whileLarge(fill, func(b []byte) []byte {
		b = slice(b, miscMemoryFill, d, v)
		b = add(b, d, sliceBytes, false)
		return add(b, n, sliceBytes, true)
	})
	fill = append(all(charge(fill, false), miscMemoryFill), opEnd)

	var cp []byte
	cp = outOfBounds(cp, d)
	cp = append(outOfBounds(cp, v), opI32Or, opIf, 0x40)
	cp = append(all(cp, miscMemoryCopy), opEnd)
	cp = append(get(get(cp, d), v), opI32LeU, opIf, 0x40) // forwards
	cp = whileLarge(cp, func(b []byte) []byte {
		b = slice(b, miscMemoryCopy, d, v)
		b = add(b, d, sliceBytes, false)
		b = add(b, v, sliceBytes, false)
		return add(b, n, sliceBytes, true)
	})
	cp = append(cp, opElse) // backwards: the last slice first
	cp = whileLarge(cp, func(b []byte) []byte {
		b = add(b, n, sliceBytes, true)
		b = append(get(get(b, d), n), opI32Add)
		b = append(get(get(b, v), n), opI32Add)
		return op(c(b, sliceBytes), miscMemoryCopy)
	})
	cp = append(cp, opEnd)
	cp = append(all(charge(cp, false), miscMemoryCopy), opEnd)

	for _, code := range [][]byte{fill, cp} {
		out = appendU32(out, uint32(len(code)+1))
		out = append(out, 0) // no locals
		out = append(out, code...)
	}
	return out
}

// settle appends: fuel = <top of stack>; if fuel < 0 { fuel = tick() }.
func (m *module) settle(out []byte) []byte {
	out = append(out, opGlobalSet)
	out = appendU32(out, m.fuel)
	out = append(out, opGlobalGet)
	out = appendU32(out, m.fuel)
	out = append(out, opI32Const, 0, opI32LtS, opIf, 0x40, opCall)
	out = appendU32(out, m.tick)
	out = append(out, opGlobalSet)
	out = appendU32(out, m.fuel)
	return append(out, opEnd)
}
