package runtime

import (
	"context"
	"errors"
	goruntime "runtime"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero/api"

	"github.com/airlock-dev/airlock/host/internal/meter"
)

// instance is one instantiated module plus its Extism memory. It serves one call at a time and
// one subject for its whole life.
type instance struct {
	mod     api.Module
	fns     map[string]api.Function // tool exports, looked up once
	stack   []uint64                // reused CallWithStack stack
	subject string
	uses    int
	broken  bool
	stderr  *tailBuffer

	// Extism memory and per-call kernel state (see kernel.go).
	arena     []byte
	hw        int               // high-water mark of arena since it was last cleared
	blocks    map[uint64]uint64 // offset -> length of live blocks
	maxArena  int
	inputOff  uint64
	outputOff uint64
	outputLen uint64
	errorOff  uint64
	vars      map[string][]byte
	varBytes  int

	// Current call.
	ctx     context.Context // the call's context (caller's values, bounded by the call's deadline)
	handler Handler
	slice   time.Time // when the call started or last yielded the processor (see tick)
	spent   uint64    // host-function cost since the last checkpoint, in bytes (see charge)
}

const (
	maxVarBytes    = 1 << 20 // all Extism vars of one call
	maxLogMessage  = 4 << 10
	keepArenaBytes = 8 << 20 // arenas larger than this are dropped after a call
)

func (in *instance) resetArena() {
	in.charge(uint64(in.hw))
	if cap(in.arena) > keepArenaBytes {
		in.arena = make([]byte, arenaBase, 64<<10)
	} else {
		clear(in.arena[:in.hw]) // nothing of one call is readable by the next
	}
	in.hw = arenaBase
	in.arena = in.arena[:arenaBase]
	clear(in.blocks)
}

// begin prepares the kernel state for one call.
func (in *instance) begin(ctx context.Context, now time.Time, input []byte, h Handler) {
	in.resetArena()
	clear(in.vars)
	in.varBytes = 0
	in.outputOff, in.outputLen, in.errorOff = 0, 0, 0
	in.inputOff = in.allocBytes(input)
	in.ctx = ctx
	in.handler = h
	in.slice = now
	in.spent = 0
}

// end drops references to the call so a pooled instance holds nothing of it.
func (in *instance) end() {
	in.ctx = nil
	in.handler = nil
}

// alloc reserves n bytes of Extism memory and returns their offset, or 0 when n is 0 or the
// arena would exceed its cap (the Extism kernel's answer to an allocation it cannot serve).
func (in *instance) alloc(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	off := uint64(len(in.arena)+7) &^ 7
	end := off + n
	if end > uint64(in.maxArena) || end < off {
		return 0
	}
	in.charge(n) // growing the arena, and the copy that usually follows
	if end > uint64(cap(in.arena)) {
		grown := make([]byte, end, min(max(2*uint64(cap(in.arena)), end), uint64(in.maxArena)))
		copySliced(grown, in.arena)
		in.arena = grown
	} else {
		in.arena = in.arena[:end] // zero: beyond the high-water mark, or cleared by resetArena
	}
	in.hw = max(in.hw, int(end))
	in.blocks[off] = n
	return off
}

func (in *instance) allocBytes(b []byte) uint64 {
	off := in.alloc(uint64(len(b)))
	if off != 0 {
		copySliced(in.arena[off:], b)
	}
	return off
}

// block returns the live block at off. The slice aliases the arena: copy it before allocating.
func (in *instance) block(off uint64) ([]byte, bool) {
	n, ok := in.blocks[off]
	if !ok {
		return nil, false
	}
	return in.arena[off : off+n], true
}

// span returns arena[off:off+n] if it lies inside allocated memory.
func (in *instance) span(off, n uint64) ([]byte, bool) {
	if off < arenaBase || off > uint64(len(in.arena)) || n > uint64(len(in.arena))-off {
		return nil, false
	}
	return in.arena[off : off+n], true
}

func (in *instance) configGet(keyOff uint64) uint64 {
	key, ok := in.block(keyOff)
	if !ok {
		return 0
	}
	v, ok := in.handler.Config(string(key))
	if !ok {
		return 0
	}
	return in.allocBytes([]byte(v))
}

func (in *instance) varSet(keyOff, valOff uint64) {
	key, ok := in.block(keyOff)
	if !ok {
		return
	}
	k := string(key)
	if old, ok := in.vars[k]; ok {
		in.varBytes -= len(k) + len(old)
		delete(in.vars, k)
	}
	if valOff == 0 {
		return
	}
	val, ok := in.block(valOff)
	if !ok || in.varBytes+len(k)+len(val) > maxVarBytes {
		return
	}
	in.charge(uint64(len(val)))
	in.vars[k] = append([]byte(nil), val...)
	in.varBytes += len(k) + len(val)
}

func (in *instance) log(level int, off uint64) {
	msg, ok := in.block(off)
	if !ok {
		return
	}
	if len(msg) > maxLogMessage {
		msg = msg[:maxLogMessage]
	}
	in.charge(uint64(len(msg)))
	s := string(msg)
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // replaces invalid bytes with U+FFFD
	}
	in.handler.Log(level, s)
}

// tailBuffer keeps the last max bytes written to it: a plugin's stderr, for panic messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return n, nil
}

func (t *tailBuffer) take() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.buf)
	t.buf = t.buf[:0]
	return s
}

// errInterrupted stops a call whose context is done: the meter's tick or a sleep panics with it,
// and wazero turns the panic into the call's error.
var errInterrupted = errors.New("call interrupted: its deadline passed or it was cancelled")

// timeSlice is how long a call runs before a checkpoint yields the processor. The Go scheduler's
// own slice is 10 ms, but with one processor a runaway that yields every 10 ms, in between the
// phases of a garbage collection, kept a heartbeat goroutine waiting up to 60 ms; every 2 ms,
// about 30 ms, this machine's noise without any runaway (TestBulkRunawaysDoNotPauseTheHost). A
// yield costs about 10 µs, so a runaway loses under 1% of its time to it; an ordinary call
// (tens of microseconds) never reaches a slice.
const timeSlice = 2 * time.Millisecond

// tick is the meter's import (host/internal/meter): the guest calls it each time it has used
// meter.Budget of fuel (a few million instructions at most, or 1 MiB of bulk memory work).
func tick(ctx context.Context, stack []uint64) {
	in, _ := ctx.Value(instanceKey{}).(*instance)
	checkpoint(ctx, in)
	stack[0] = meter.Budget
}

// checkpoint stops the call once its context is done or past its deadline (checked directly, so
// a timer that has not fired yet cannot delay it). Guest code cannot be preempted by the Go
// scheduler, so it also yields the processor once the call has run for a time slice: without
// that a host with as many runaway plugins as cores would starve its other goroutines. (Yielding
// at every tick cost 10 µs a tick.) in is nil while an instance is being made.
func checkpoint(ctx context.Context, in *instance) {
	now := time.Now()
	if interrupted(ctx, now) {
		panic(errInterrupted)
	}
	if in != nil && now.Sub(in.slice) >= timeSlice {
		goruntime.Gosched()
		in.slice = time.Now()
	}
}

// Host functions are metered too, in bytes: each call costs callCost, and one that copies,
// allocates or clears n bytes costs n more, charged before it does so. Every checkpointBytes of
// cost the call reaches a checkpoint. Their work is Go code, which the scheduler can preempt, but
// the meter only counts guest instructions: a loop calling airlock_mem_read for 48 MiB at a time
// runs few of them and would never tick.
// The figures follow the meter's (host/internal/meter, byteShift): a checkpoint about every MiB.
const (
	callCost        = 1 << 10 // a host-function call costs about as much as copying 1 KiB (~100 ns)
	checkpointBytes = 1 << 20 // 0.1 ms of copying, 1 ms on fresh memory; a checkpoint costs ~0.2 µs
	copySlice       = 1 << 20 // the largest copy between two charges
)

// charge adds n bytes to the call's host-function cost and reaches a checkpoint when due.
func (in *instance) charge(n uint64) {
	in.spent += n
	if in.spent >= checkpointBytes && in.ctx != nil {
		in.spent = 0
		checkpoint(in.ctx, in)
	}
}

// write copies src to guest memory at dst, charging each slice of at most copySlice bytes before
// it is copied, so a long copy is stopped at the deadline. It reports false, having copied
// nothing, when the range is outside guest memory.
func (in *instance) write(mem api.Memory, dst uint32, src []byte) bool {
	if uint64(dst)+uint64(len(src)) > uint64(mem.Size()) {
		return false
	}
	for len(src) > 0 {
		k := min(len(src), copySlice)
		in.charge(uint64(k))
		mem.Write(dst, src[:k])
		dst += uint32(k)
		src = src[k:]
	}
	return true
}

// copySliced is copy in slices of copySlice bytes. A copy is a single runtime call that the Go
// scheduler cannot preempt: one of 32 MiB (an arena growing towards its cap) would keep a
// garbage collection waiting, and on a loaded machine fresh pages make that tens of milliseconds.
// Each slice is copied by a call, whose entry is a point where the scheduler can stop it.
func copySliced(dst, src []byte) {
	for len(src) > 0 && len(dst) > 0 {
		n := copyPreemptible(dst, src[:min(len(src), copySlice)])
		dst, src = dst[n:], src[n:]
	}
}

//go:noinline
func copyPreemptible(dst, src []byte) int { return copy(dst, src) }

func interrupted(ctx context.Context, now time.Time) bool {
	select {
	case <-ctx.Done():
		return true
	default:
	}
	d, ok := ctx.Deadline()
	return ok && !now.Before(d)
}

// sleep is the instance's WASI sleep. It returns after at most maxSleepSlice and never sleeps
// past the current call's deadline; once that has passed (or the call was cancelled) it stops
// the call.
func (in *instance) sleep(ns int64) {
	d := min(time.Duration(ns), maxSleepSlice)
	ctx := in.ctx
	if ctx == nil {
		time.Sleep(d)
		return
	}
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if interrupted(ctx, time.Now()) {
		panic(errInterrupted)
	}
}
