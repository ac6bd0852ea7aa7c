package meter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/airlock-dev/airlock/internal/wasmtest"
)

// The test modules are written byte by byte, with internal/wasmtest.
var (
	u32        = wasmtest.U32
	cat        = wasmtest.Cat
	vec        = wasmtest.Vec
	str        = wasmtest.Str
	sec        = wasmtest.Section
	wasmModule = wasmtest.Module
	functype   = wasmtest.FuncType
	body       = wasmtest.Body
)

const (
	i32 = 0x7f
	end = opEnd
)

// behaviourModule exercises every place a function index appears: an import, call,
// call_indirect through element segments (a function-index list and an expression list with
// ref.func), a start function, exports, a loop with a parameter, and a name section.
//
//	func 0: import env.add1 (i32) -> i32
//	func 1: sum(n)       1 + 2 + … + n, with a block and a loop
//	func 2: twice(x)     sum(add1(x))
//	func 3: indirect(x)  table[1](x), which is twice
//	func 4: start        global 0 = 42
//	func 5: g()          global 0
//	func 6: countdown(x) a loop taking its counter as a parameter; returns 7
//	func 7: viaref(x)    table[2](x), filled by an expression segment with ref.func 1
func behaviourModule() []byte {
	sum := body([][2]byte{{1, i32}},
		opBlock, 0x40,
		opLoop, 0x40,
		opLocalGet, 0, 0x45 /* i32.eqz */, opBrIf, 1,
		opLocalGet, 1, opLocalGet, 0, 0x6a /* i32.add */, 0x21 /* local.set */, 1,
		opLocalGet, 0, opI32Const, 1, opI32Sub, 0x21, 0,
		opBr, 0,
		end,
		end,
		opLocalGet, 1,
		end)
	twice := body(nil, opLocalGet, 0, opCall, 0, opCall, 1, end)
	indirect := body(nil, opLocalGet, 0, opI32Const, 1, opCallInd, 0, 0, end)
	start := body(nil, opI32Const, 42, opGlobalSet, 0, end)
	g := body(nil, opGlobalGet, 0, end)
	countdown := body(nil,
		opLocalGet, 0,
		opLoop, 0x00, // block type: type 0, (i32) -> i32
		opI32Const, 1, opI32Sub, opLocalTee, 0, opLocalGet, 0, opBrIf, 0,
		end,
		opI32Const, 7, 0x6a,
		end)
	viaref := body(nil, opLocalGet, 0, opI32Const, 2, opCallInd, 0, 0, end)

	names := cat([]byte{1}, func() []byte {
		m := vec(
			cat(u32(0), str("add1")), cat(u32(1), str("sum_fn")), cat(u32(2), str("twice_fn")),
			cat(u32(3), str("indirect_fn")), cat(u32(4), str("start_fn")), cat(u32(5), str("g_fn")),
			cat(u32(6), str("countdown_fn")), cat(u32(7), str("viaref_fn")))
		return cat(u32(uint32(len(m))), m)
	}())
	return wasmModule(
		sec(secType, vec(functype([]byte{i32}, []byte{i32}), functype(nil, nil), functype(nil, []byte{i32}))),
		sec(secImport, vec(cat(str("env"), str("add1"), []byte{0x00}, u32(0)))),
		sec(secFunction, vec(u32(0), u32(0), u32(0), u32(1), u32(2), u32(0), u32(0))),
		sec(secTable, vec([]byte{0x70, 0x00, 3})),
		sec(secGlobal, vec([]byte{i32, 0x01, opI32Const, 0, end})),
		sec(secExport, vec(
			cat(str("sum"), []byte{0}, u32(1)), cat(str("twice"), []byte{0}, u32(2)),
			cat(str("indirect"), []byte{0}, u32(3)), cat(str("g"), []byte{0}, u32(5)),
			cat(str("countdown"), []byte{0}, u32(6)), cat(str("viaref"), []byte{0}, u32(7)))),
		sec(secStart, u32(4)),
		sec(secElement, vec(
			cat(u32(0), []byte{opI32Const, 0, end}, vec(u32(1), u32(2))),
			cat(u32(4), []byte{opI32Const, 2, end}, vec([]byte{opRefFunc, 1, end})))),
		sec(secCode, vec(sum, twice, indirect, start, g, countdown, viaref)),
		sec(secCustom, str("name"), names),
		sec(secCustom, str(".debug_info"), []byte{1, 2, 3}),
		sec(secCustom, str("producers"), []byte{0}),
	)
}

// runawayModule has a loop that never ends and a recursion without any loop that would take
// 2^64 calls.
//
//	func 0: spin()   loop br 0
//	func 1: rec(n)   if n != 0 { rec(n-1); rec(n-1) }
func runawayModule() []byte {
	spin := body(nil, opLoop, 0x40, opBr, 0, end, end)
	rec := body(nil,
		opLocalGet, 0,
		opIf, 0x40,
		opLocalGet, 0, opI32Const, 1, opI32Sub, opCall, 1,
		opLocalGet, 0, opI32Const, 1, opI32Sub, opCall, 1,
		end,
		end)
	return wasmModule(
		sec(secType, vec(functype(nil, nil), functype([]byte{i32}, nil))),
		sec(secFunction, vec(u32(0), u32(1))),
		sec(secExport, vec(cat(str("spin"), []byte{0}, u32(0)), cat(str("rec"), []byte{0}, u32(1)))),
		sec(secCode, vec(spin, rec)),
	)
}

// meterHost instantiates the tick import: it counts ticks, returns refill as the next budget,
// and panics once stop is set or the call's context is done.
type meterHost struct {
	ticks  atomic.Int64
	refill int32
}

var errStopped = errors.New("stopped by the meter")

func (h *meterHost) instantiate(t *testing.T, ctx context.Context, rt wazero.Runtime) {
	t.Helper()
	_, err := rt.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
		WithGoFunction(api.GoFunc(func(ctx context.Context, stack []uint64) {
			h.ticks.Add(1)
			if ctx.Err() != nil {
				panic(errStopped)
			}
			stack[0] = uint64(h.refill)
		}), nil, []api.ValueType{api.ValueTypeI32}).
		Export(ImportName).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
}

func instantiate(t *testing.T, wasm []byte, metered bool) (api.Module, *meterHost) {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	if _, err := rt.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithFunc(func(x int32) int32 { return x + 1 }).Export("add1").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	h := &meterHost{refill: Budget}
	if metered {
		h.instantiate(t, ctx, rt)
	}
	mod, err := rt.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatalf("instantiate (metered %v): %v", metered, err)
	}
	return mod, h
}

func mustInstrument(t *testing.T, wasm []byte) ([]byte, Stats) {
	t.Helper()
	out, st, err := Instrument(wasm)
	if err != nil {
		t.Fatalf("Instrument: %v", err)
	}
	return out, st
}

func TestPreservesBehaviour(t *testing.T) {
	src := behaviourModule()
	out, st := mustInstrument(t, src)
	if st.Functions != 7 {
		t.Errorf("Stats.Functions = %d, want 7", st.Functions)
	}
	// The entries of the seven functions (none starts with a loop), plus two loops.
	if st.Sites != 9 {
		t.Errorf("Stats.Sites = %d, want 9", st.Sites)
	}
	plain, _ := instantiate(t, src, false)
	metered, _ := instantiate(t, out, true)
	ctx := context.Background()
	for _, tc := range []struct {
		export string
		args   []uint64
	}{
		{"sum", []uint64{0}}, {"sum", []uint64{10}}, {"sum", []uint64{1000}},
		{"twice", []uint64{9}}, {"indirect", []uint64{9}}, {"viaref", []uint64{100}},
		{"g", nil}, {"countdown", []uint64{5}},
	} {
		want, err := plain.ExportedFunction(tc.export).Call(ctx, tc.args...)
		if err != nil {
			t.Fatalf("original %s%v: %v", tc.export, tc.args, err)
		}
		got, err := metered.ExportedFunction(tc.export).Call(ctx, tc.args...)
		if err != nil {
			t.Fatalf("instrumented %s%v: %v", tc.export, tc.args, err)
		}
		if got[0] != want[0] {
			t.Errorf("%s%v = %d instrumented, %d originally", tc.export, tc.args, got[0], want[0])
		}
	}
	// The name section follows the renumbering.
	for export, want := range map[string]string{"sum": "sum_fn", "g": "g_fn", "viaref": "viaref_fn"} {
		if got := metered.ExportedFunction(export).Definition().Name(); got != want {
			t.Errorf("name of export %q = %q, want %q", export, got, want)
		}
	}
}

func TestDropsDebugSectionsKeepsOthers(t *testing.T) {
	out, _ := mustInstrument(t, behaviourModule())
	secs, err := split(out)
	if err != nil {
		t.Fatal(err)
	}
	var customs []string
	for _, s := range secs {
		if s.id == secCustom {
			r := &reader{b: s.data}
			customs = append(customs, string(r.bytes(r.u32())))
		}
	}
	if got := strings.Join(customs, ","); got != "name,producers" {
		t.Errorf("custom sections after instrumenting = %s, want name,producers", got)
	}
}

// TestStopsRunaways runs code that would never return and checks the meter gets control back
// and can stop it: a plain infinite loop, and an exponential recursion with no loop at all.
func TestStopsRunaways(t *testing.T) {
	out, _ := mustInstrument(t, runawayModule())
	for _, tc := range []struct {
		export string
		args   []uint64
	}{{"spin", nil}, {"rec", []uint64{64}}} {
		t.Run(tc.export, func(t *testing.T) {
			mod, h := instantiate(t, out, true)
			h.refill = 10_000
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, err := mod.ExportedFunction(tc.export).Call(ctx, tc.args...)
			if !errors.Is(err, errStopped) {
				t.Fatalf("%s: err = %v, want the meter's panic", tc.export, err)
			}
			if h.ticks.Load() < 2 {
				t.Errorf("%s: %d ticks, want several", tc.export, h.ticks.Load())
			}
		})
	}
}

// TestChargesWhatRuns checks the fuel charged tracks the instructions executed: sum(n) runs a
// 12-instruction loop body n times and its loop site weighs 16 (the body, the loop's end, and
// the small regions after the loop merged into it: see TestWeights), so with a refill of 1,000
// it ticks between (12n − Budget)/1,000 and 16n/1,000 + 2 times.
func TestChargesWhatRuns(t *testing.T) {
	out, _ := mustInstrument(t, behaviourModule())
	mod, h := instantiate(t, out, true)
	h.refill = 1000
	const n = 1_000_000
	if _, err := mod.ExportedFunction("sum").Call(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	lo, hi := int64(12*n-Budget)/1000, int64(16*n)/1000+2
	if got := h.ticks.Load(); got < lo || got > hi {
		t.Errorf("sum(%d) ticked %d times, want between %d and %d", n, got, lo, hi)
	}
}

// weightsOf instruments one function body (code must end with its end) and returns the
// weights of the sites it keeps, in order.
func weightsOf(t *testing.T, code ...byte) []int32 {
	t.Helper()
	m := &module{}
	f := &fn{}
	b := cat(vec(), code)
	if _, err := m.body(&reader{b: b}, f, nil, &Stats{}); err != nil {
		t.Fatal(err)
	}
	var ws []int32
	for _, e := range f.edits {
		if e.site && e.weight > 0 {
			ws = append(ws, e.weight)
		}
	}
	return ws
}

func TestWeights(t *testing.T) {
	const nop = 0x01
	for _, tc := range []struct {
		name string
		code []byte
		want []int32
	}{
		// sum's body: block, loop, 12 instructions, end (loop), end (block), local.get, end.
		// Entry [block, loop] = 2; the loop's header [12 instructions, end] = 13, plus the two
		// small regions after the loop and after the block (1 and 2), merged into it.
		{"sum", []byte{opBlock, 0x40, opLoop, 0x40,
			opLocalGet, 0, 0x45, opBrIf, 1, opLocalGet, 1, opLocalGet, 0, 0x6a, 0x21, 1,
			opLocalGet, 0, opI32Const, 1, opI32Sub, 0x21, 0, opBr, 0,
			end, end, opLocalGet, 1, end}, []int32{2, 16}},
		// loop A { nop; loop B { nop nop } nop×5 } nop×5: A's header stands for the entry.
		{"nested", []byte{opLoop, 0x40, nop, opLoop, 0x40, nop, nop, end, nop, nop, nop, nop, nop, end,
			nop, nop, nop, nop, nop, end}, []int32{3, 3, 6, 6}},
		// A straight body has one site, weighing all of it.
		{"straight", []byte{nop, nop, nop, end}, []int32{4}},
		// A block that contains a loop gets a site after its end; one that does not, none.
		{"blocks", []byte{opBlock, 0x40, nop, end, opBlock, 0x40, opLoop, 0x40, end, end,
			nop, nop, nop, nop, nop, end}, []int32{5, 2, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := weightsOf(t, tc.code...); !slices.Equal(got, tc.want) {
				t.Errorf("weights = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRefuses(t *testing.T) {
	good := runawayModule()
	for _, tc := range []struct {
		name string
		wasm []byte
		want string
	}{
		{"not wasm", []byte("hello world"), "not a WebAssembly"},
		{"truncated", good[:len(good)-3], "past the end"},
		{"reserved import", wasmModule(
			sec(secType, vec(functype(nil, []byte{i32}))),
			sec(secImport, vec(cat(str(ImportModule), str(ImportName), []byte{0x00}, u32(0))))),
			"reserved for the host"},
		{"global out of range", wasmModule(
			sec(secType, vec(functype(nil, []byte{i32}))),
			sec(secFunction, vec(u32(0))),
			sec(secCode, vec(body(nil, opGlobalGet, 0, end)))),
			"global index 0 does not exist"},
		{"global set out of range", wasmModule(
			sec(secType, vec(functype(nil, nil))),
			sec(secFunction, vec(u32(0))),
			sec(secGlobal, vec([]byte{i32, 0x01, opI32Const, 0, end})),
			sec(secCode, vec(body(nil, opI32Const, 5, opGlobalSet, 1, end)))),
			"global index 1 does not exist"},
		{"tail call", wasmModule(
			sec(secType, vec(functype(nil, nil))),
			sec(secFunction, vec(u32(0))),
			sec(secCode, vec(body(nil, 0x12, 0, end)))),
			"opcode 0x12 is not supported"},
		{"body without end", wasmModule(
			sec(secType, vec(functype(nil, nil))),
			sec(secFunction, vec(u32(0))),
			sec(secCode, vec(body(nil, 0x01)))),
			"unexpected end of data"},
		// wazero sizes a slice by the claimed count before reading: this 20-byte module made it
		// allocate 1.5 GB before failing.
		{"huge claimed count", []byte("\x00asm\x01\x00\x00\x00\x01\r0`\xc5\xc5\xc5b\xc5000000"), "cannot fit"},
		{"too many locals", wasmModule(
			sec(secType, vec(functype(nil, nil))),
			sec(secFunction, vec(u32(0))),
			sec(secCode, vec(cat(u32(8), vec(cat(u32(1<<30), []byte{i32})), []byte{end})))),
			"locals"},
		{"sections out of order", wasmModule(
			sec(secFunction, vec(u32(0))),
			sec(secType, vec(functype(nil, nil)))),
			"out of order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Instrument(tc.wasm)
			var me *Error
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Instrument = %v, want a *meter.Error containing %q", err, tc.want)
			}
		})
	}
}

// TestAddsMissingSections instruments a module with no type, import or global section.
func TestAddsMissingSections(t *testing.T) {
	out, st := mustInstrument(t, wasmModule())
	if st.Functions != 0 {
		t.Errorf("Functions = %d", st.Functions)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	if _, err := rt.CompileModule(ctx, out); err != nil {
		t.Fatalf("the instrumented empty module does not compile: %v", err)
	}
}

// FuzzInstrument: Instrument never panics, and what it returns from a module wazero accepts is
// a module wazero accepts.
func FuzzInstrument(f *testing.F) {
	f.Add(behaviourModule())
	f.Add(runawayModule())
	f.Add(wasmModule())
	f.Add(dataModule(active(20, "abcdefgh", false), active(0, "ijkl", true), active(4000, "mn", false)))
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, _, err := Instrument(wasm)
		if err != nil {
			return
		}
		if _, err := rt.CompileModule(ctx, wasm); err != nil {
			return
		}
		if _, err := rt.CompileModule(ctx, out); err != nil {
			t.Fatalf("the original compiles, the instrumented module does not: %v", err)
		}
	})
}

// TestLoopAtEntryNeedsNoEntryCheck: a body that starts with a loop gets one site, not two.
func TestLoopAtEntryNeedsNoEntryCheck(t *testing.T) {
	_, st := mustInstrument(t, runawayModule())
	// spin starts with its loop (1 site); rec has no loop (its entry, 1 site).
	if st.Sites != 2 {
		t.Errorf("Sites = %d, want 2", st.Sites)
	}
}

// sizedModule runs one sized instruction in a loop: each export takes (n, times) and runs its
// instruction times times with n as its count.
//
//	fill:   memory.fill(0, 7, n)           copy:   memory.copy(1, 0, n)   copyfwd: memory.copy(0, 1, n)
//	init:   memory.init 0 (0, 0, n)        grow:   drop(memory.grow(n))
//	tfill:  table.fill(0, null, n)         tcopy:  table.copy(1, 0, n)
//	tinit:  table.init 0 (0, 0, n)         tgrow:  drop(table.grow(null, n))
func sizedModule() []byte {
	repeat := func(op ...byte) []byte {
		return body(nil, cat([]byte{
			opBlock, 0x40, opLoop, 0x40,
			opLocalGet, 1, 0x45 /* i32.eqz */, opBrIf, 1},
			op,
			[]byte{opLocalGet, 1, opI32Const, 1, opI32Sub, 0x21, 1,
				opBr, 0, end, end, end})...)
	}
	n := []byte{opLocalGet, 0}
	c0 := []byte{opI32Const, 0}
	c1 := []byte{opI32Const, 1}
	null := []byte{opRefNull, 0x70}
	fns := []struct {
		name string
		code []byte
	}{
		{"fill", repeat(cat(c0, []byte{opI32Const, 7}, n, []byte{opPrefixMisc, miscMemoryFill, 0})...)},
		{"copy", repeat(cat(c1, c0, n, []byte{opPrefixMisc, miscMemoryCopy, 0, 0})...)},
		{"copyfwd", repeat(cat(c0, c1, n, []byte{opPrefixMisc, miscMemoryCopy, 0, 0})...)},
		{"init", repeat(cat(c0, c0, n, []byte{opPrefixMisc, miscMemoryInit, 0, 0})...)},
		{"grow", repeat(cat(n, []byte{opMemoryGrow, 0, 0x1a /* drop */})...)},
		{"tfill", repeat(cat(c0, null, n, []byte{opPrefixMisc, miscTableFill, 0})...)},
		{"tcopy", repeat(cat(c1, c0, n, []byte{opPrefixMisc, miscTableCopy, 0, 0})...)},
		{"tinit", repeat(cat(c0, c0, n, []byte{opPrefixMisc, miscTableInit, 0, 0})...)},
		{"tgrow", repeat(cat(null, n, []byte{opPrefixMisc, miscTableGrow, 0, 0x1a})...)},
	}
	var funcs, exports, bodies [][]byte
	for i, f := range fns {
		funcs = append(funcs, u32(0))
		exports = append(exports, cat(str(f.name), []byte{0}, u32(uint32(i))))
		bodies = append(bodies, f.code)
	}
	elems := make([][]byte, 1000)
	for i := range elems {
		elems[i] = u32(0)
	}
	return wasmModule(
		sec(secType, vec(functype([]byte{i32, i32}, nil))),
		sec(secFunction, vec(funcs...)),
		sec(secTable, vec([]byte{0x70, 0x01, 0x80, 0x08 /* 1024 */, 0x80, 0x10 /* 2048 */})),
		sec(secMemory, vec([]byte{0x01, 0x80, 0x04 /* 512 pages */, 0x80, 0x08 /* 1024 */})),
		sec(secExport, vec(exports...)),
		sec(secElement, vec(cat(u32(1), []byte{0x00}, vec(elems...)))),
		sec(secDataCnt, u32(1)),
		sec(secCode, vec(bodies...)),
		sec(secData, vec(cat(u32(1), u32(64<<10), make([]byte, 64<<10)))),
	)
}

// TestChargesSizedInstructions: a bulk memory or table instruction, memory.grow and table.grow
// cost fuel in proportion to their count, so a loop of large ones reaches the host as often as
// the bytes it moves warrant; a loop of ones with a huge count (which fail at once) ticks every
// time, so a count cannot wrap the charge around into a refill.
func TestChargesSizedInstructions(t *testing.T) {
	out, st := mustInstrument(t, sizedModule())
	if st.Sized != 9 {
		t.Errorf("Stats.Sized = %d, want 9", st.Sized)
	}
	for _, tc := range []struct {
		export    string
		n, times  uint32
		wantTicks int64
	}{
		{"fill", 1 << 20, 1000, (1 << 20 << byteShift) * 1000 / Budget},   // 1 GiB in all
		{"fill", 4<<20 + 1, 100, (4<<20 + 1) << byteShift * 100 / Budget}, // in slices
		{"copy", 1 << 19, 1000, (1 << 19 << byteShift) * 1000 / Budget},   // 512 MiB
		{"init", 64 << 10, 1000, (64 << 10 << byteShift) * 1000 / Budget}, // 64 MiB
		{"tfill", 1024, 100_000, (1024 >> elementShift) * 100_000 / Budget},
		{"tcopy", 1023, 100_000, (1023 >> elementShift) * 100_000 / Budget},
		{"tinit", 1000, 100_000, (1000 >> elementShift) * 100_000 / Budget},
		// Counts that fail at once still cost their full charge: one tick each.
		{"grow", 0xffff_ffff, 1000, 1000},
		{"tgrow", 0xffff_ffff, 1000, 1000},
	} {
		t.Run(tc.export, func(t *testing.T) {
			mod, h := instantiate(t, out, true)
			if _, err := mod.ExportedFunction(tc.export).Call(context.Background(), uint64(tc.n), uint64(tc.times)); err != nil {
				t.Fatal(err)
			}
			// A tick refills the fuel whatever the debt, and a charge that leaves exactly zero
			// does not tick, so slices of exactly a Budget tick every other time at worst; the
			// loop's own weight adds a little.
			if got := h.ticks.Load(); got < tc.wantTicks*2/3-1 || got > tc.wantTicks+2 {
				t.Errorf("%s(%d) × %d ticked %d times, want about %d", tc.export, tc.n, tc.times, got, tc.wantTicks)
			}
		})
	}
}

// TestSizedInstructionsKeepTheirResults: the charges leave the operands as they were, and fills
// and copies larger than a slice (which run in the helpers, a slice at a time, backwards when
// overlapping ranges need it) leave memory as the original instructions do; out of bounds, they
// trap before writing anything, as the originals do.
func TestSizedInstructionsKeepTheirResults(t *testing.T) {
	src := sizedModule()
	out, _ := mustInstrument(t, src)
	plain, _ := instantiate(t, src, false)
	metered, _ := instantiate(t, out, true)
	ctx := context.Background()
	pattern := make([]byte, 4*sliceBytes+99)
	for i := range pattern {
		pattern[i] = byte(i*7 + i>>11)
	}
	type call struct {
		export   string
		n, times uint64
		fails    bool
	}
	calls := []call{
		{export: "fill", n: 100, times: 1}, {export: "copy", n: 50, times: 3}, {export: "grow", n: 2, times: 1},
		{export: "tgrow", n: 5, times: 1},
		{export: "fill", n: 3*sliceBytes + 5, times: 1}, {export: "write"},
		{export: "copy", n: 3*sliceBytes + 3, times: 2}, {export: "copyfwd", n: 2*sliceBytes + 1, times: 3},
		{export: "copy", n: sliceBytes, times: 1}, {export: "copyfwd", n: sliceBytes + 1, times: 1},
		// Out of bounds by one byte (the memory is 514 pages now): traps, writing nothing.
		{export: "fill", n: 514*65536 + 1, times: 1, fails: true},
		{export: "copy", n: 514 * 65536, times: 1, fails: true},
		{export: "copyfwd", n: 514 * 65536, times: 1, fails: true},
	}
	for _, mod := range []api.Module{plain, metered} {
		for _, c := range calls {
			if c.export == "write" {
				mod.Memory().Write(0, pattern)
				continue
			}
			_, err := mod.ExportedFunction(c.export).Call(ctx, c.n, c.times)
			if (err != nil) != c.fails {
				t.Fatalf("%s(%d) × %d = %v, want failure %v", c.export, c.n, c.times, err, c.fails)
			}
		}
	}
	pm, mm := plain.Memory(), metered.Memory()
	if pm.Size() != mm.Size() {
		t.Fatalf("memory size = %d instrumented, %d originally", mm.Size(), pm.Size())
	}
	pb, _ := pm.Read(0, pm.Size())
	mb, _ := mm.Read(0, mm.Size())
	if !slices.Equal(pb, mb) {
		i := 0
		for pb[i] == mb[i] {
			i++
		}
		t.Errorf("memory differs from byte %d: instrumented %v, originally %v", i, mb[i:min(i+16, len(mb))], pb[i:min(i+16, len(pb))])
	}
}

// TestBoundsTables: a table without a maximum (or with a huge one) gets maxTableElements, so
// table.grow cannot make wazero allocate gigabytes of host memory outside the memory limit.
func TestBoundsTables(t *testing.T) {
	grow := func(limits ...byte) []byte {
		return wasmModule(
			sec(secType, vec(functype([]byte{i32}, []byte{i32}))),
			sec(secFunction, vec(u32(0))),
			sec(secTable, vec(cat([]byte{0x70}, limits))),
			sec(secExport, vec(cat(str("grow"), []byte{0}, u32(0)))),
			sec(secCode, vec(body(nil, opRefNull, 0x70, opLocalGet, 0, opPrefixMisc, miscTableGrow, 0, end))))
	}
	for name, limits := range map[string][]byte{
		"no maximum":   {0x00, 1},
		"huge maximum": cat([]byte{0x01, 1}, u32(0xffff_ffff)),
	} {
		t.Run(name, func(t *testing.T) {
			out, _ := mustInstrument(t, grow(limits...))
			mod, _ := instantiate(t, out, true)
			g := mod.ExportedFunction("grow")
			if res, err := g.Call(context.Background(), 1<<28); err != nil || int32(res[0]) != -1 {
				t.Errorf("table.grow(2^28) = %d, %v; want -1 (the table is bounded)", int32(res[0]), err)
			}
			if res, err := g.Call(context.Background(), maxTableElements-1); err != nil || res[0] != 1 {
				t.Errorf("table.grow(limit - 1) = %v, %v; want 1 (the previous size)", res, err)
			}
		})
	}
	_, _, err := Instrument(grow(cat([]byte{0x00}, u32(maxTableElements+1))...))
	var me *Error
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "the limit is") {
		t.Errorf("Instrument(a table starting above the limit) = %v, want a *meter.Error", err)
	}
}

// dataModule is a module with one exported page of memory and the given data segments (each
// already encoded: kind, offset expression, bytes).
func dataModule(segs ...[]byte) []byte {
	return wasmModule(
		sec(secMemory, vec([]byte{0x00, 0x01})),
		sec(secExport, vec(wasmtest.Export("mem", 0x02, 0))),
		sec(secData, vec(segs...)),
	)
}

// active is an active data segment of memory 0 at offset (kind 0, or kind 2 with memory index
// 0 when explicit).
func active(offset int32, data string, explicit bool) []byte {
	kind := []byte{0x00}
	if explicit {
		kind = []byte{0x02, 0x00}
	}
	return cat(kind, []byte{opI32Const}, wasmtest.S32(offset), []byte{end}, str(data))
}

// dataSegments counts the segments of wasm's data section.
func dataSegments(t *testing.T, wasm []byte) uint32 {
	t.Helper()
	secs, err := split(wasm)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secs {
		if s.id == secData {
			return (&reader{b: s.data}).count()
		}
	}
	return 0
}

// Data segments that lie close together are merged, and memory starts exactly as the original
// segments would have left it, whatever order and overlap the segments have.
func TestMergesDataSegments(t *testing.T) {
	for _, tc := range []struct {
		name string
		segs [][]byte
		want uint32 // segments after instrumentation
	}{
		{"close together", [][]byte{active(0, strings.Repeat("a", 5000), false), active(5002, "cd", true),
			active(10000, "ef", false), active(10002+maxDataGap, "gh", false), active(10004+maxDataGap, "", false)}, 2},
		{"out of order", [][]byte{active(10, "xy", false), active(0, "abcdefghijklmnopqrstu", false)}, 2},
		{"overlapping", [][]byte{active(0, "abcdef", false), active(3, "XY", false)}, 2},
		{"ascending runs", [][]byte{active(20, "abcdefgh", false), active(30, "ijkl", false), active(0, "mnopqrst", false),
			active(40, "uv", false)}, 1},
		{"more zeros than data", [][]byte{active(0, "ab", false), active(4000, "cd", false)}, 2},
		{"a passive segment", [][]byte{active(0, "ab", false), cat([]byte{0x01}, str("zz")), active(4, "cd", false)}, 3},
		{"at the top of memory", [][]byte{active(65530, "ab", false), active(65534, "cd", false)}, 1},
		{"negative offset", [][]byte{active(-1, "", false), active(2, "ab", false)}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := dataModule(tc.segs...)
			out, _ := mustInstrument(t, src)
			if got := dataSegments(t, out); got != tc.want {
				t.Errorf("%d data segments after instrumentation, want %d", got, tc.want)
			}
			ctx := context.Background()
			rt := wazero.NewRuntime(ctx)
			defer rt.Close(ctx)
			plain, errPlain := rt.InstantiateWithConfig(ctx, src, wazero.NewModuleConfig().WithName("plain"))
			(&meterHost{refill: Budget}).instantiate(t, ctx, rt)
			metered, errMetered := rt.InstantiateWithConfig(ctx, out, wazero.NewModuleConfig().WithName("metered"))
			if (errPlain == nil) != (errMetered == nil) {
				t.Fatalf("instantiating: original %v, instrumented %v", errPlain, errMetered)
			}
			if errPlain != nil {
				return
			}
			a, _ := plain.Memory().Read(0, 65536)
			b, _ := metered.Memory().Read(0, 65536)
			if !slices.Equal(a, b) {
				t.Error("memory after instantiation differs from the original module's")
			}
		})
	}
	// Empty segments 4 KiB apart are not turned into megabytes of zeros.
	var empty [][]byte
	for i := range int32(1000) {
		empty = append(empty, active(i*maxDataGap, "", false))
	}
	src := dataModule(empty...)
	if out, _ := mustInstrument(t, src); len(out) > 3*len(src) {
		t.Errorf("1,000 empty data segments 4 KiB apart (%d bytes) became %d bytes", len(src), len(out))
	}
	// With an imported memory, segments keep their order: another module sees the memory.
	imported := wasmModule(
		sec(secImport, vec(cat(str("env"), str("mem"), []byte{0x02, 0x00, 0x01}))),
		sec(secData, vec(active(100, "ab", false), active(0, "cd", false))),
	)
	if out, _ := mustInstrument(t, imported); dataSegments(t, out) != 2 {
		t.Errorf("segments out of order of an imported memory were merged")
	}
	// A segment out of bounds still fails instantiation, after merging as before.
	src = dataModule(active(0, "ab", false), active(4, "cd", false), active(65535, "xyz", false))
	out, _ := mustInstrument(t, src)
	if got := dataSegments(t, out); got != 2 {
		t.Errorf("%d data segments after instrumentation, want 2", got)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	(&meterHost{refill: Budget}).instantiate(t, ctx, rt)
	if _, err := rt.Instantiate(ctx, out); err == nil || !strings.Contains(err.Error(), "out of bounds") {
		t.Errorf("instantiating a module with a segment out of bounds: %v, want out of bounds", err)
	}
}

// TestVersionPinsOutput: what Instrument makes of the test modules is pinned, with Version. The
// runtime keeps instrumented modules on disk under Version: a change to the instrumentation
// that kept Version would have old, differently metered modules loaded from those files.
func TestVersionPinsOutput(t *testing.T) {
	const version, digest = "2", "f67e8fa0de475550daa5ee20d3ae0b797357d321fa8d752a2602cb175400a106"
	h := sha256.New()
	for _, m := range [][]byte{behaviourModule(), runawayModule(), sizedModule(),
		dataModule(active(0, "ab", false), active(4, "cd", true), active(5000, "ef", false))} {
		out, _ := mustInstrument(t, m)
		h.Write(out)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if Version != version || got != digest {
		t.Errorf("Instrument's output is %s under Version %q; pinned: %s under %q. If the instrumentation changed, "+
			"change Version and pin both here", got, Version, digest, version)
	}
}
