// Package runtime runs Extism-compatible WebAssembly modules in wazero, one sandbox per connector.
//
// It knows nothing about HTTP, credentials or policy: it compiles a module once (keeping the
// compiled form in wazero's on-disk compilation cache so a restart does not recompile), keeps a
// bounded, pre-warmed pool of instances per module, calls a tool export with JSON input, and
// routes the plugin's host-function calls to a [Handler] supplied per call.
//
// The sandbox, per module:
//   - WASI with no directories, no environment, no arguments; real wall and monotonic clocks; a
//     sleep that returns in slices of at most 50 ms so a timed-out call is interruptible; and
//     crypto/rand as the random source (wasm-runtime-facts.md, pitfall 1);
//   - a module importing Extism's built-in http_request is refused at load (pitfall 2), as is
//     any import the host does not provide;
//   - memory capped per module (Limits.MemoryPages); every call bounded by Limits.Timeout, after
//     which the call fails and its instance is discarded (pitfall 3). The module is rewritten at
//     load by host/internal/meter so that it hands control back to the host about every million
//     instructions or 1–2 MiB of bulk memory work, whatever it runs; the host then checks the
//     call's deadline and yields the processor (wazero's own close-on-context-done checks exit
//     to Go at every loop header, which quadrupled the guest time of a Go plugin). Host
//     functions are charged by the bytes they copy, allocate or clear, and reach the same check
//     every MiB;
//   - an instance is never shared between subjects, is discarded after any trap or timeout
//     (pitfall 4), and is recycled after Options.MaxUses calls; Extism memory and vars are
//     cleared before every call (pitfall 5).
//
// Example:
//
//	eng, _ := runtime.NewEngine(runtime.EngineConfig{CacheDir: dir})
//	mod, _ := eng.Load(ctx, runtime.Options{Name: "slack", Wasm: wasm, Exports: []string{"post_message"}})
//	out, err := mod.Call(ctx, "tenant-a", "post_message", []byte(`{"channel":"C1","text":"hi"}`), handler)
package runtime

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/airlock-dev/airlock/host/internal/meter"
	"github.com/airlock-dev/airlock/internal/abi"
)

// Handler serves the airlock host functions for one call. Its methods are called on the calling
// goroutine, one at a time. Responses are JSON envelopes from internal/abi.
type Handler interface {
	HTTP(ctx context.Context, request []byte) []byte
	DB(ctx context.Context, request []byte) []byte
	Config(key string) (string, bool)
	Log(level int, message string)
}

// Errors returned by Module.Call. Callers branch on them with errors.Is / errors.As.
var (
	// ErrTimeout: the call ran past Limits.Timeout and was stopped.
	ErrTimeout = errors.New("plugin call timed out")
	// ErrInputTooLarge: the input exceeds Limits.MaxInputBytes.
	ErrInputTooLarge = errors.New("input too large")
	// ErrOutputTooLarge: the plugin's output exceeds Limits.MaxOutputBytes.
	ErrOutputTooLarge = errors.New("output too large")
	// ErrNoExport: the module has no such export.
	ErrNoExport = errors.New("no such export")
	// ErrClosed: the module was closed.
	ErrClosed = errors.New("module closed")
)

// TrapError reports a plugin that trapped, panicked or exited during a call. The instance has
// been discarded. Detail (the runtime's message and the tail of the plugin's stderr) is for logs
// only: it may contain anything the plugin printed.
type TrapError struct {
	Export string
	Detail string
	Err    error
}

func (e *TrapError) Error() string { return "plugin " + e.Export + " trapped: " + e.Detail }
func (e *TrapError) Unwrap() error { return e.Err }

// PluginError is a failure the plugin reported itself (error_set and a non-zero return).
type PluginError struct {
	Code    int32
	Message []byte // as the plugin set it; a JSON abi.ToolError for plugins built with pdk/
}

func (e *PluginError) Error() string { return fmt.Sprintf("plugin returned %d: %s", e.Code, e.Message) }

// EngineConfig configures an Engine. The zero value is valid.
type EngineConfig struct {
	// CacheDir holds wazero's compilation cache. "" keeps compiled code in memory only, so every
	// process start recompiles (about 1 s for a 4 MB module).
	CacheDir string
	// Logger receives plugin log lines and sandbox events. nil means slog.Default().
	Logger *slog.Logger
	// OnCompile, if set, is told how long each module's compilation took and whether it came
	// from the compilation cache: with CacheDir, when it wrote no new file there; without, when
	// this Engine had compiled the same bytes before. Concurrent loads may blur the former.
	OnCompile func(module string, d time.Duration, cached bool)
	// OnInstantiate, if set, is told how long each new instance took to make (instantiation
	// and the module's initialiser), at load and whenever the pool adds one.
	OnInstantiate func(module string, d time.Duration)
}

// Engine compiles modules and shares one compilation cache between them. Safe for concurrent use.
type Engine struct {
	cache  wazero.CompilationCache
	logger *slog.Logger
	dir    string
	onComp func(string, time.Duration, bool)
	onInst func(string, time.Duration)

	mu       sync.Mutex
	compiled map[[32]byte]bool // modules compiled by this Engine, when there is no CacheDir
}

// NewEngine returns an Engine; the cache directory is created if needed.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	e := &Engine{logger: cfg.Logger, dir: cfg.CacheDir, onComp: cfg.OnCompile, onInst: cfg.OnInstantiate, compiled: map[[32]byte]bool{}}
	if e.logger == nil {
		e.logger = slog.Default()
	}
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("runtime: compilation cache %s: %w", cfg.CacheDir, err)
		}
		e.cache = c
	} else {
		e.cache = wazero.NewCompilationCache()
	}
	return e, nil
}

// Close releases the compilation cache (the on-disk copy stays).
func (e *Engine) Close(ctx context.Context) error { return e.cache.Close(ctx) }

// Limits bound what one module may use. Zero fields take the documented defaults.
type Limits struct {
	MemoryPages    uint32        // 64 KiB pages of guest memory; default 1024 (64 MiB)
	Timeout        time.Duration // per call; default 10 s
	MaxInputBytes  int64         // default 1 MiB
	MaxOutputBytes int64         // default 1 MiB
	MaxArenaBytes  int64         // Extism memory per call (payloads, host-function replies); default 64 MiB
}

func (l Limits) withDefaults() Limits {
	if l.MemoryPages == 0 {
		l.MemoryPages = 1024
	}
	if l.Timeout <= 0 {
		l.Timeout = 10 * time.Second
	}
	if l.MaxInputBytes <= 0 {
		l.MaxInputBytes = 1 << 20
	}
	if l.MaxOutputBytes <= 0 {
		l.MaxOutputBytes = 1 << 20
	}
	if l.MaxArenaBytes <= 0 {
		l.MaxArenaBytes = 64 << 20
	}
	return l
}

// Options describe a module to load.
type Options struct {
	Name string // for errors and logs
	Wasm []byte // the module's bytes (already verified against the manifest digest)
	// SHA256 is the digest of Wasm when the caller has it (it checked Wasm against a manifest);
	// the zero value makes Load compute it. It names the instrumented module in the cache, so it
	// must be the digest of these very bytes.
	SHA256  [sha256.Size]byte
	Exports []string // the tool exports; each must exist with signature () -> i32
	Limits  Limits
	// PoolSize bounds the live instances of this module (idle and busy); default 4. A call that
	// finds every instance busy waits for one, up to its context's deadline.
	PoolSize int
	// Warm is how many fresh instances are kept ready; default 1. 0 after defaults is not possible:
	// use -1 for none.
	Warm int
	// MaxUses recycles an instance after this many calls; default 100,000. Making an instance
	// costs ~5 ms, so recycling every 1,000 calls would add ~5 µs to every call.
	MaxUses int
}

// Module is a loaded connector module with its instance pool. Safe for concurrent use.
type Module struct {
	name    string
	rt      wazero.Runtime
	code    wazero.CompiledModule
	exports []string
	limits  Limits
	logger  *slog.Logger
	onInst  func(string, time.Duration)
	pool    pool
	// stopAll cancels every call in progress; Close uses it once its grace period is over.
	stopCtx context.Context
	stopAll context.CancelFunc
}

// maxSleepSlice bounds one WASI sleep, so a timed-out plugin that sleeps is stopped promptly.
const maxSleepSlice = 50 * time.Millisecond

// Load compiles (or fetches from the cache) and validates a module, then starts its pool with
// Warm instances. A module is refused if it imports anything the host does not provide, imports
// Extism's http_request, or lacks one of the exports.
func (e *Engine) Load(ctx context.Context, opts Options) (_ *Module, err error) {
	lim := opts.Limits.withDefaults()
	m := &Module{name: opts.Name, exports: opts.Exports, limits: lim, logger: e.logger.With("connector", opts.Name), onInst: e.onInst}
	m.stopCtx, m.stopAll = context.WithCancel(context.Background())
	metered, err := e.instrument(opts.Wasm, opts.SHA256)
	if err != nil {
		return nil, fmt.Errorf("runtime: %s: not a valid WebAssembly module: %w", opts.Name, err)
	}
	m.rt = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(lim.MemoryPages))
	defer func() {
		if err != nil {
			m.rt.Close(ctx)
		}
	}()
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, m.rt); err != nil {
		return nil, fmt.Errorf("runtime: %s: wasi: %w", opts.Name, err)
	}
	env := m.rt.NewHostModuleBuilder(abi.KernelModule)
	exportFuncs(env, kernelFuncs)
	if _, err := env.Instantiate(ctx); err != nil {
		return nil, fmt.Errorf("runtime: %s: kernel: %w", opts.Name, err)
	}
	user := m.rt.NewHostModuleBuilder(abi.HostModule)
	exportFuncs(user, userFuncs)
	if _, err := user.Instantiate(ctx); err != nil {
		return nil, fmt.Errorf("runtime: %s: host functions: %w", opts.Name, err)
	}
	if _, err := m.rt.NewHostModuleBuilder(meter.ImportModule).NewFunctionBuilder().
		WithGoFunction(api.GoFunc(tick), nil, []api.ValueType{api.ValueTypeI32}).
		Export(meter.ImportName).Instantiate(ctx); err != nil {
		return nil, fmt.Errorf("runtime: %s: meter: %w", opts.Name, err)
	}
	// Compile on every core: a cold compile of a 3.7 MB Go module is the slowest step of a load.
	var before int
	if e.onComp != nil && e.dir != "" {
		before = countFiles(e.dir)
	}
	start := time.Now()
	m.code, err = m.rt.CompileModule(experimental.WithCompilationWorkers(ctx, goruntime.GOMAXPROCS(0)), metered)
	if err != nil {
		return nil, fmt.Errorf("runtime: %s: not a valid WebAssembly module: %w", opts.Name, err)
	}
	if e.onComp != nil {
		d := time.Since(start)
		var cached bool
		if e.dir != "" {
			cached = countFiles(e.dir) == before
		} else {
			sum := sha256.Sum256(metered)
			e.mu.Lock()
			cached, e.compiled[sum] = e.compiled[sum], true
			e.mu.Unlock()
		}
		e.onComp(opts.Name, d, cached)
	}
	if err := checkImports(m.code); err != nil {
		return nil, fmt.Errorf("runtime: %s: %w", opts.Name, err)
	}
	if err := checkExports(m.code, opts.Exports); err != nil {
		return nil, fmt.Errorf("runtime: %s: %w", opts.Name, err)
	}
	m.pool.init(m, opts)
	// The first instance is made now, so a module that cannot start fails at load, not at its
	// first call.
	in, err := m.newInstance(ctx)
	if err != nil {
		return nil, err
	}
	m.pool.add(in)
	m.pool.refillAsync()
	return m, nil
}

// meteredDir is the folder of CacheDir holding instrumented modules.
const meteredDir = "airlock-metered"

// instrument returns wasm with the meter's checks (meter.Instrument). With a CacheDir, the
// result is kept there, named after the meter's version and the digest of wasm, so a module
// loaded again is not instrumented again (about 25 ms for the 3.7 MB Slack connector); sum is the
// digest of wasm, or zero to have it computed (3 ms for 4 MB). A file
// starts with the CRC-32C of the rest (a tenth of a millisecond where a SHA-256 takes 3): a
// corrupted one is instrumented afresh and replaced; a torn one cannot be, files are renamed
// into place once written. The directory is trusted as wazero's compilation cache beside it is
// (that one holds native code): only this process's user may write either.
func (e *Engine) instrument(wasm []byte, sum [sha256.Size]byte) ([]byte, error) {
	if e.dir == "" {
		metered, _, err := meter.Instrument(wasm)
		return metered, err
	}
	if sum == ([sha256.Size]byte{}) {
		sum = sha256.Sum256(wasm)
	}
	path := filepath.Join(e.dir, meteredDir, "v"+meter.Version+"-"+hex.EncodeToString(sum[:]))
	if b, err := os.ReadFile(path); err == nil && len(b) > 4 && binary.BigEndian.Uint32(b) == crc32.Checksum(b[4:], castagnoli) {
		return b[4:], nil
	}
	metered, _, err := meter.Instrument(wasm)
	if err != nil {
		return nil, err
	}
	if err := writeMetered(path, metered); err != nil {
		e.logger.Debug("could not keep the instrumented module in the cache; it is instrumented again at the next load", "err", err)
	}
	return metered, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeMetered writes the checksum of metered and metered to path, atomically.
func writeMetered(path string, metered []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(binary.BigEndian.AppendUint32(nil, crc32.Checksum(metered, castagnoli)))
	if err == nil {
		_, err = f.Write(metered)
	}
	if err := errors.Join(err, f.Close()); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// countFiles counts the regular files under dir (the compilation cache writes one per module
// it compiles).
func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

func checkImports(code wazero.CompiledModule) error {
	known := knownImports()
	var bad []string
	for _, f := range code.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch {
		case mod == wasi_snapshot_preview1.ModuleName:
		case mod == meter.ImportModule && name == meter.ImportName: // added by meter.Instrument
		case mod == abi.KernelModule && name == "http_request":
			return errors.New("module imports Extism's built-in http_request, which airlock refuses: " +
				"make requests through the airlock_http host function (pdk.HTTP or pdkhttp.Transport)")
		case known[mod][name]:
		default:
			bad = append(bad, mod+"."+name)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("module imports functions airlock does not provide: %s (see pdk/ABI.md for the host functions)",
			strings.Join(bad, ", "))
	}
	return nil
}

func checkExports(code wazero.CompiledModule, exports []string) error {
	defs := code.ExportedFunctions()
	var missing []string
	for _, name := range exports {
		d, ok := defs[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		if len(d.ParamTypes()) != 0 || len(d.ResultTypes()) != 1 || d.ResultTypes()[0] != api.ValueTypeI32 {
			return fmt.Errorf("export %q has the wrong signature: a tool export takes no parameters and returns i32", name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("module has no export named %s: the manifest's tools[].export must name functions the module exports",
			strings.Join(missing, ", "))
	}
	return nil
}

// newInstance instantiates the module and runs its WASI reactor initialiser.
func (m *Module) newInstance(ctx context.Context) (*instance, error) {
	in := &instance{
		stderr:   &tailBuffer{max: 4 << 10},
		arena:    make([]byte, arenaBase, 64<<10),
		hw:       arenaBase,
		blocks:   make(map[uint64]uint64),
		vars:     make(map[string][]byte),
		maxArena: int(m.limits.MaxArenaBytes),
		fns:      make(map[string]api.Function, len(m.exports)),
		stack:    make([]uint64, 1),
	}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // reactor: _initialize is called below, with a timeout
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(in.sleep).
		WithRandSource(rand.Reader).
		WithStderr(in.stderr).
		WithStdout(in.stderr)
	// Instantiation runs the module's start function, if any, and then _initialize: both are
	// guest code, bounded like a call (the meter's ticks read this deadline).
	ictx, cancel := context.WithTimeout(ctx, m.limits.Timeout)
	defer cancel()
	in.ctx = ictx // for sleeps; host functions answer "none" outside a tool call
	defer func() { in.ctx = nil }()
	start := time.Now()
	mod, err := m.rt.InstantiateModule(experimental.WithMemoryAllocator(ictx, guestMemory), m.code, cfg)
	if err != nil {
		if errors.Is(err, errInterrupted) {
			return nil, fmt.Errorf("runtime: %s: instantiate: the module's start function ran past the %v timeout", m.name, m.limits.Timeout)
		}
		return nil, fmt.Errorf("runtime: %s: instantiate: %w", m.name, err)
	}
	in.mod = mod
	if init := mod.ExportedFunction("_initialize"); init != nil {
		if _, err := init.Call(ictx); err != nil {
			mod.Close(ctx)
			if errors.Is(err, errInterrupted) {
				return nil, fmt.Errorf("runtime: %s: module initialisation ran past the %v timeout", m.name, m.limits.Timeout)
			}
			return nil, fmt.Errorf("runtime: %s: module initialisation failed: %v %s", m.name, err, in.stderr.take())
		}
	}
	for _, name := range m.exports {
		in.fns[name] = mod.ExportedFunction(name)
	}
	if m.onInst != nil {
		m.onInst(m.name, time.Since(start))
	}
	return in, nil
}

// Call runs export with input for subject and returns the plugin's output. h serves the host
// functions during the call. A trap, panic, timeout or oversized output fails this call only.
func (m *Module) Call(ctx context.Context, subject, export string, input []byte, h Handler) ([]byte, error) {
	if int64(len(input)) > m.limits.MaxInputBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrInputTooLarge, len(input), m.limits.MaxInputBytes)
	}
	in, err := m.pool.get(ctx, subject)
	if err != nil {
		return nil, err
	}
	out, err := m.call(ctx, in, export, input, h)
	m.pool.put(in)
	return out, err
}

func (m *Module) call(ctx context.Context, in *instance, export string, input []byte, h Handler) ([]byte, error) {
	fn := in.fns[export]
	if fn == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoExport, export)
	}
	in.uses++
	now := time.Now()
	deadline, callers := now.Add(m.limits.Timeout), false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, callers = d, true
	}
	// The meter's ticks (and sleeps) stop the call once ctx is done or its deadline has passed;
	// Close cancels it too when its grace period is over (callContext).
	cc := callContextFor(h, ctx, m.stopCtx, in, deadline)
	defer cc.end()
	in.begin(cc, now, input, h)
	defer in.end()
	return m.result(cc, in, export, fn.CallWithStack(cc, in.stack), callers)
}

// result turns a finished call of export into its output or error. It is call's second half,
// apart so that call has few enough returns for its defers to be open-coded.
func (m *Module) result(cc *callContext, in *instance, export string, err error, callers bool) ([]byte, error) {
	if err != nil {
		in.broken = true
		detail := strings.TrimSpace(in.stderr.take())
		if errors.Is(err, errInterrupted) || cc.Err() != nil {
			if errors.Is(cc.Err(), context.Canceled) {
				return nil, context.Cause(cc)
			}
			if callers {
				return nil, fmt.Errorf("%w: the caller's deadline passed", ErrTimeout)
			}
			return nil, fmt.Errorf("%w after %v", ErrTimeout, m.limits.Timeout)
		}
		if detail == "" {
			detail = err.Error()
		} else {
			detail = err.Error() + "; stderr: " + detail
		}
		return nil, &TrapError{Export: export, Detail: detail, Err: err}
	}
	if rc := int32(in.stack[0]); rc != 0 {
		msg, _ := in.block(in.errorOff)
		return nil, &PluginError{Code: rc, Message: append([]byte(nil), msg...)}
	}
	if in.outputLen > uint64(m.limits.MaxOutputBytes) {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrOutputTooLarge, in.outputLen, m.limits.MaxOutputBytes)
	}
	if in.outputLen == 0 {
		return nil, nil
	}
	out, ok := in.span(in.outputOff, in.outputLen)
	if !ok {
		return nil, &TrapError{Export: export, Detail: "output_set named memory outside any block", Err: errors.New("bad output offset")}
	}
	return append([]byte(nil), out...), nil
}

// Close stops the pool, waits for calls in progress to finish (until ctx is done; then they are
// cancelled, stop at their next meter tick and fail) and releases every instance.
func (m *Module) Close(ctx context.Context) error {
	m.pool.close()
	m.pool.bg.Wait()
	defer m.stopAll()
	for range m.pool.max {
		select {
		case m.pool.slots <- struct{}{}:
			continue
		case <-ctx.Done():
		}
		// Grace is over: cancel what still runs and wait for it to stop (a cancelled call
		// returns within milliseconds, at its next tick or sleep slice, or when its host
		// function returns).
		m.stopAll()
		m.pool.slots <- struct{}{}
	}
	return m.rt.Close(context.Background())
}

// Stats reports the pool's current state.
type Stats struct{ Live, Idle, Fresh int }

// Stats returns a snapshot of the instance pool.
func (m *Module) Stats() Stats { return m.pool.stats() }

// pool holds a module's instances: fresh ones (never used, no subject yet) and idle ones keyed by
// the subject that last used them. An instance only ever serves one subject.
type pool struct {
	m       *Module
	slots   chan struct{} // one token per instance that may be busy
	mu      sync.Mutex
	fresh   []*instance
	idle    map[string][]*instance
	empty   int         // idle lists emptied by get and kept, so that put does not make one per call
	order   []*instance // idle instances with a subject, least recently used first
	live    int
	max     int
	warm    int
	maxUses int
	closed  bool
	done    chan struct{} // closed by close: callers waiting for a slot give up
	filling bool
	bg      sync.WaitGroup // refill goroutines
}

func (p *pool) init(m *Module, o Options) {
	p.m = m
	p.max = o.PoolSize
	if p.max <= 0 {
		p.max = 4
	}
	p.warm = o.Warm
	switch {
	case p.warm == 0:
		p.warm = 1
	case p.warm < 0:
		p.warm = 0
	}
	p.warm = min(p.warm, p.max)
	p.maxUses = o.MaxUses
	if p.maxUses <= 0 {
		p.maxUses = 100_000
	}
	p.slots = make(chan struct{}, p.max)
	p.done = make(chan struct{})
	p.idle = make(map[string][]*instance)
}

func (p *pool) add(in *instance) {
	p.mu.Lock()
	p.live++
	p.fresh = append(p.fresh, in)
	p.mu.Unlock()
}

func (p *pool) get(ctx context.Context, subject string) (*instance, error) {
	select {
	case p.slots <- struct{}{}: // a free slot: the common case, without a three-way select
	default:
		select {
		case p.slots <- struct{}{}:
		case <-p.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("runtime: %s: every instance is busy: %w", p.m.name, context.Cause(ctx))
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, ErrClosed
	}
	if list := p.idle[subject]; len(list) > 0 {
		in := list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[subject] = list[:len(list)-1]
		if len(list) == 1 {
			p.emptied() // kept for put, which gives the instance back to it
		}
		p.removeOrder(in)
		p.mu.Unlock()
		return in, nil
	}
	if n := len(p.fresh); n > 0 {
		in := p.fresh[n-1]
		p.fresh = p.fresh[:n-1]
		in.subject = subject
		p.mu.Unlock()
		p.refillAsync()
		return in, nil
	}
	// No instance for this subject: make one, evicting another subject's idle instance if the
	// pool is full.
	var evict *instance
	if p.live >= p.max && len(p.order) > 0 {
		evict = p.order[0]
		p.order = p.order[1:]
		p.removeIdle(evict)
		p.live--
	}
	p.live++
	p.mu.Unlock()
	if evict != nil {
		evict.mod.Close(context.Background())
	}
	in, err := p.m.newInstance(ctx)
	if err != nil {
		p.mu.Lock()
		p.live--
		p.mu.Unlock()
		<-p.slots
		return nil, err
	}
	in.subject = subject
	return in, nil
}

func (p *pool) put(in *instance) {
	p.mu.Lock()
	discard := in.broken || in.uses >= p.maxUses || p.closed
	if discard {
		p.live--
	} else {
		list, ok := p.idle[in.subject]
		if ok && len(list) == 0 {
			p.empty--
		}
		p.idle[in.subject] = append(list, in)
		p.order = append(p.order, in)
	}
	p.mu.Unlock()
	<-p.slots
	if discard {
		in.mod.Close(context.Background())
		p.refillAsync()
	}
}

// refillAsync starts refill in the background unless the pool is closed. Close waits for it.
func (p *pool) refillAsync() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.filling {
		return
	}
	p.filling = true
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		p.refill()
	}()
}

// refill tops the fresh instances up to warm. Only one runs at a time (p.filling).
func (p *pool) refill() {
	defer func() {
		p.mu.Lock()
		p.filling = false
		p.mu.Unlock()
	}()
	for {
		p.mu.Lock()
		if p.closed || len(p.fresh) >= p.warm || p.live >= p.max {
			p.mu.Unlock()
			return
		}
		p.live++
		p.mu.Unlock()
		in, err := p.m.newInstance(context.Background())
		p.mu.Lock()
		if err != nil || p.closed {
			p.live--
			p.mu.Unlock()
			if err != nil {
				p.m.logger.Warn("pre-warming an instance failed", "err", err)
			} else {
				in.mod.Close(context.Background())
			}
			return
		}
		p.fresh = append(p.fresh, in)
		p.mu.Unlock()
	}
}

func (p *pool) removeOrder(in *instance) {
	for i, x := range p.order {
		if x == in {
			p.order = append(p.order[:i], p.order[i+1:]...)
			return
		}
	}
}

func (p *pool) removeIdle(in *instance) {
	list := p.idle[in.subject]
	for i, x := range list {
		if x == in {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(p.idle, in.subject)
	} else {
		p.idle[in.subject] = list
	}
}

// emptied counts an idle list get has emptied; once there are more than the pool's size
// (subjects that no longer call), the empty ones are dropped. Called with p.mu held.
func (p *pool) emptied() {
	if p.empty++; p.empty > p.max {
		for subject, list := range p.idle {
			if len(list) == 0 {
				delete(p.idle, subject)
			}
		}
		p.empty = 0
	}
}

func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
}

func (p *pool) stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Live: p.live, Idle: len(p.order), Fresh: len(p.fresh)}
}
