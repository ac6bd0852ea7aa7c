package runtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

var (
	buildOnce sync.Map // package -> func() ([]byte, error)
)

// plugin builds (or fetches from the cache) a test plugin and returns its bytes.
func plugin(t testing.TB, pkg string) []byte {
	t.Helper()
	f, _ := buildOnce.LoadOrStore(pkg, sync.OnceValues(func() ([]byte, error) {
		path, err := pluginbuild.Build(context.Background(), pluginbuild.Options{Package: pkg})
		if err != nil {
			return nil, err
		}
		return os.ReadFile(path)
	}))
	wasm, err := f.(func() ([]byte, error))()
	if err != nil {
		t.Fatalf("building %s: %v", pkg, err)
	}
	return wasm
}

var hostileExports = []string{"noop", "echo", "echo_u64", "loop", "sleep", "alloc_bomb", "host_alloc_bomb", "panic",
	"exit", "peek_outside", "sandbox", "fetch", "dump", "stash", "peek", "log", "big_output"}

// testEngine is shared so each test module is compiled once per test binary.
// Its compilation cache is on disk next to the plugin build cache, shared with the host's tests,
// so a module is compiled once per machine rather than once per test binary.
var testEngine = sync.OnceValue(func() *Engine {
	eng, err := NewEngine(EngineConfig{CacheDir: filepath.Join(filepath.Dir(pluginbuild.DefaultCacheDir()), "wazero")})
	if err != nil {
		panic(err)
	}
	return eng
})

func load(t testing.TB, opts Options) *Module {
	t.Helper()
	eng := testEngine()
	if opts.Wasm == nil {
		opts.Wasm = plugin(t, "./host/testdata/plugins/hostile")
	}
	if opts.Exports == nil {
		opts.Exports = hostileExports
	}
	if opts.Name == "" {
		opts.Name = "hostile"
	}
	m, err := eng.Load(context.Background(), opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// fakeHandler answers host functions from maps and records what the plugin did.
type fakeHandler struct {
	mu     sync.Mutex
	config map[string]string
	http   func(req []byte) []byte
	logs   []string
}

func (h *fakeHandler) HTTP(ctx context.Context, req []byte) []byte {
	if h.http != nil {
		return h.http(req)
	}
	b, _ := json.Marshal(abi.HTTPResponse{Error: &abi.Error{Code: abi.CodeEgressDenied, Category: abi.Fatal, Message: "denied"}})
	return b
}
func (h *fakeHandler) DB(ctx context.Context, req []byte) []byte { return []byte(`{}`) }
func (h *fakeHandler) Config(key string) (string, bool) {
	v, ok := h.config[key]
	return v, ok
}
func (h *fakeHandler) Log(level int, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, msg)
}

func TestEcho(t *testing.T) {
	m := load(t, Options{})
	for _, export := range []string{"echo", "echo_u64"} {
		for _, size := range []int{0, 1, 7, 8, 9, 100, 10_000, 100_003} {
			in := bytes.Repeat([]byte("abcdefghijk"), size/11+1)[:size]
			out, err := m.Call(context.Background(), "s", export, in, &fakeHandler{})
			if err != nil {
				t.Fatalf("Call(%s, %d bytes): %v", export, size, err)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("Call(%s, %d bytes) returned %d bytes, want the input back", export, size, len(out))
			}
		}
	}
}

// The unmodified Extism Go PDK works: a connector written for any Extism host runs here.
func TestGoPDKCompatibility(t *testing.T) {
	m := load(t, Options{Wasm: plugin(t, "./host/testdata/plugins/gopdk"), Exports: []string{"noop", "echo", "greet"}})
	h := &fakeHandler{config: map[string]string{"greeting": "hi"}}
	out, err := m.Call(context.Background(), "s", "greet", []byte(`{"name":"ada"}`), h)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), `{"message":"hi, ada"}`; got != want {
		t.Errorf("greet = %s, want %s", got, want)
	}
	if len(h.logs) != 1 || h.logs[0] != "greeting ada" {
		t.Errorf("logs = %q, want [greeting ada]", h.logs)
	}
	_, err = m.Call(context.Background(), "s", "greet", []byte(`{}`), h)
	var pe *PluginError
	if !errors.As(err, &pe) || string(pe.Message) != "name is required" {
		t.Errorf("greet({}) error = %v, want PluginError(name is required)", err)
	}
	big := bytes.Repeat([]byte("x"), 50_001)
	out, err = m.Call(context.Background(), "s", "echo", big, h)
	if err != nil || !bytes.Equal(out, big) {
		t.Errorf("echo(50001 bytes) = %d bytes, %v", len(out), err)
	}
}

func TestRefusesExtismHTTP(t *testing.T) {
	eng := testEngine()
	_, err := eng.Load(context.Background(), Options{Name: "x", Wasm: plugin(t, "./host/testdata/plugins/gopdkhttp"), Exports: []string{"get"}})
	if err == nil || !strings.Contains(err.Error(), "http_request") || !strings.Contains(err.Error(), "airlock_http") {
		t.Fatalf("Load(module importing http_request) error = %v, want a refusal naming http_request and airlock_http", err)
	}
}

func TestRefusesBadModules(t *testing.T) {
	eng := testEngine()
	for name, tc := range map[string]struct {
		wasm    []byte
		exports []string
		want    string
	}{
		"not wasm":       {[]byte("not a module"), nil, "not a valid WebAssembly module"},
		"truncated":      {plugin(t, "./host/testdata/plugins/hostile")[:1000], nil, "not a valid WebAssembly module"},
		"missing export": {plugin(t, "./host/testdata/plugins/hostile"), []string{"nope"}, `no export named nope`},
		"wrong signature": {plugin(t, "./host/testdata/plugins/hostile"), []string{"_initialize"},
			"wrong signature"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := eng.Load(context.Background(), Options{Name: "x", Wasm: tc.wasm, Exports: tc.exports})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// Every way a plugin can die fails that one call, and the next call on the module succeeds.
func TestFailuresAreContained(t *testing.T) {
	m := load(t, Options{Limits: Limits{Timeout: 2 * time.Second, MemoryPages: 512}})
	cases := []struct {
		export string
		check  func(error) bool
		want   string
	}{
		{"loop", func(err error) bool { return errors.Is(err, ErrTimeout) }, "ErrTimeout"},
		{"sleep", func(err error) bool { return errors.Is(err, ErrTimeout) }, "ErrTimeout"},
		{"alloc_bomb", func(err error) bool { var te *TrapError; return errors.As(err, &te) }, "TrapError"},
		{"panic", func(err error) bool {
			var te *TrapError
			return errors.As(err, &te) && strings.Contains(te.Detail, "panics on purpose")
		}, "TrapError with the panic text"},
		{"exit", func(err error) bool { var te *TrapError; return errors.As(err, &te) }, "TrapError"},
		{"host_alloc_bomb", func(err error) bool {
			var pe *PluginError
			return errors.As(err, &pe) && string(pe.Message) == "host refused the allocation"
		}, "PluginError (alloc returned 0)"},
		{"big_output", func(err error) bool { return errors.Is(err, ErrOutputTooLarge) }, "ErrOutputTooLarge"},
	}
	for _, tc := range cases {
		t.Run(tc.export, func(t *testing.T) {
			start := time.Now()
			_, err := m.Call(context.Background(), "s", tc.export, nil, &fakeHandler{})
			if !tc.check(err) {
				t.Fatalf("Call(%s) error = %v, want %s", tc.export, err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Call(%s) took %v: the timeout did not stop it", tc.export, d)
			}
			out, err := m.Call(context.Background(), "s", "echo", []byte("still serving"), &fakeHandler{})
			if err != nil || string(out) != "still serving" {
				t.Fatalf("after %s: echo = %q, %v; want the module to keep serving", tc.export, out, err)
			}
		})
	}
	if st := m.Stats(); st.Live > 4 {
		t.Errorf("pool has %d live instances after the failures, want at most 4 (broken ones discarded)", st.Live)
	}
}

func TestCallerCancellation(t *testing.T) {
	m := load(t, Options{Limits: Limits{Timeout: time.Minute}})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := m.Call(ctx, "s", "loop", nil, &fakeHandler{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Call(loop) after cancel = %v, want context.Canceled", err)
	}
}

func TestInputLimit(t *testing.T) {
	m := load(t, Options{Limits: Limits{MaxInputBytes: 10}})
	if _, err := m.Call(context.Background(), "s", "echo", make([]byte, 11), &fakeHandler{}); !errors.Is(err, ErrInputTooLarge) {
		t.Fatalf("Call(11 bytes) = %v, want ErrInputTooLarge", err)
	}
}

// The plugin cannot read or write outside the Extism memory it was given, and out-of-range
// requests are answered, not trapped.
func TestOutOfRangeMemory(t *testing.T) {
	m := load(t, Options{})
	out, err := m.Call(context.Background(), "s", "peek_outside", []byte("hello"), &fakeHandler{})
	if err != nil {
		t.Fatalf("peek_outside: %v", err)
	}
	// 8 probes of (u64 load, u8 load), then three bulk-copy results.
	if len(out) != 8*9+24 {
		t.Fatalf("peek_outside returned %d bytes", len(out))
	}
	tail := out[8*9:]
	if got := int64(binary.LittleEndian.Uint64(tail[0:])); got != -1 {
		t.Errorf("mem_read(out of range) = %d, want -1", got)
	}
	if got := int64(binary.LittleEndian.Uint64(tail[8:])); got != -1 {
		t.Errorf("mem_read(to guest memory out of range) = %d, want -1", got)
	}
	if got := binary.LittleEndian.Uint64(tail[16:]); got != 0 {
		t.Errorf("mem_write(from guest memory out of range) = %d, want 0", got)
	}
	out, err = m.Call(context.Background(), "s", "echo", []byte("ok"), &fakeHandler{})
	if err != nil || string(out) != "ok" {
		t.Fatalf("echo after peek_outside = %q, %v", out, err)
	}
}

func TestSandbox(t *testing.T) {
	t.Setenv("AIRLOCK_CANARY_ENV", "canary-env-value")
	m := load(t, Options{})
	out, err := m.Call(context.Background(), "s", "sandbox", nil, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("sandbox output %s: %v", out, err)
	}
	for _, k := range []string{"read_file", "read_dir", "write_file"} {
		if raw[k] == "ok" {
			t.Errorf("%s succeeded inside the sandbox; want no filesystem at all", k)
		}
	}
	if env, _ := raw["environ"].([]any); len(env) != 0 {
		t.Errorf("plugin sees environment %v, want none", env)
	}
	if y, _ := raw["year"].(float64); int(y) != time.Now().Year() {
		t.Errorf("plugin clock says year %v, want the real year %d (fake clocks stall Go's GC)", raw["year"], time.Now().Year())
	}
	if bytes.Contains(out, []byte("canary-env-value")) {
		t.Error("the host's environment reached the plugin")
	}
}

// Instance state (Go globals, Extism vars) never crosses from one subject to another.
func TestSubjectsAreIsolated(t *testing.T) {
	m := load(t, Options{PoolSize: 1, Warm: 1})
	ctx := context.Background()
	if _, err := m.Call(ctx, "tenant-a", "stash", []byte("tenant-A secret token"), &fakeHandler{}); err != nil {
		t.Fatal(err)
	}
	// Same subject, same instance: globals survive (that is Go), vars do not (cleared per call).
	out, err := m.Call(ctx, "tenant-a", "peek", nil, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "global=tenant-A secret token\nvar="; got != want {
		t.Errorf("tenant-a peek = %q, want %q", got, want)
	}
	// Another subject with a pool of one must get a new instance, not tenant-a's.
	out, err = m.Call(ctx, "tenant-b", "peek", nil, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("tenant-A")) {
		t.Fatalf("tenant-b read tenant-a's data: %q", out)
	}
}

func TestRecycleAfterMaxUses(t *testing.T) {
	m := load(t, Options{PoolSize: 1, MaxUses: 2})
	ctx := context.Background()
	m.Call(ctx, "a", "stash", []byte("x"), &fakeHandler{})
	m.Call(ctx, "a", "noop", nil, &fakeHandler{})
	out, _ := m.Call(ctx, "a", "peek", nil, &fakeHandler{})
	if string(out) != "global=\nvar=" {
		t.Errorf("after MaxUses, peek = %q, want a fresh instance", out)
	}
}

func TestHostFunctions(t *testing.T) {
	m := load(t, Options{})
	h := &fakeHandler{http: func(req []byte) []byte {
		var r abi.HTTPRequest
		if err := json.Unmarshal(req, &r); err != nil {
			return []byte(`{"error":{"code":"bad_request"}}`)
		}
		b, _ := json.Marshal(abi.HTTPResponse{Status: 200, Body: []byte(r.Method + " " + r.URL)})
		return b
	}}
	out, err := m.Call(context.Background(), "s", "fetch", []byte(`{"method":"GET","url":"https://x.test/y"}`), h)
	if err != nil {
		t.Fatal(err)
	}
	var resp abi.HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil || string(resp.Body) != "GET https://x.test/y" {
		t.Fatalf("fetch = %s (%v)", out, err)
	}
	if _, err := m.Call(context.Background(), "s", "log", []byte("a line"), h); err != nil {
		t.Fatal(err)
	}
	if len(h.logs) != 1 || h.logs[0] != "a line" {
		t.Errorf("logs = %q", h.logs)
	}
}

// A hammer: many goroutines, several subjects, a small pool.
func TestConcurrentCalls(t *testing.T) {
	m := load(t, Options{PoolSize: 3, Warm: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subject := []string{"a", "b", "c", "d"}[g%4]
			for i := range 25 {
				in := []byte(subject + string(rune('0'+i%10)))
				out, err := m.Call(context.Background(), subject, "echo", in, &fakeHandler{})
				if err != nil || !bytes.Equal(out, in) {
					errs <- errors.New("echo mismatch or error")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Live > 3+1 {
		t.Errorf("live instances = %d, want at most the pool size", st.Live)
	}
}

func TestCompilationCacheOnDisk(t *testing.T) {
	dir := t.TempDir()
	wasm := plugin(t, "./host/testdata/plugins/hostile")
	for i := range 2 {
		eng, err := NewEngine(EngineConfig{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		m, err := eng.Load(context.Background(), Options{Name: "h", Wasm: wasm, Exports: []string{"noop"}})
		if err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
		m.Close(context.Background())
		eng.Close(context.Background())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) == 0 {
		t.Fatal("the compilation cache directory is empty after loading a module")
	}
}

// TestRunawaysDoNotStarveTheHost runs as many runaway plugins as there are processors for Go
// code (one, here) and checks the rest of the host still gets scheduled while they spin. Guest
// code cannot be preempted by the Go scheduler; the meter's ticks call into Go (where it can)
// and yield. Without them the heartbeat below would not beat once until the calls timed out.
func TestRunawaysDoNotStarveTheHost(t *testing.T) {
	m := load(t, Options{Limits: Limits{Timeout: 400 * time.Millisecond}, PoolSize: 2})
	// Warm both instances first: instantiation is Go code and is not what this test is about.
	for _, s := range []string{"a", "b"} {
		if _, err := m.Call(context.Background(), s, "noop", nil, &fakeHandler{}); err != nil {
			t.Fatal(err)
		}
	}
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(1))

	var beats atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				beats.Add(1)
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	start := time.Now()
	for i, s := range []string{"a", "b"} {
		wg.Go(func() { _, errs[i] = m.Call(context.Background(), s, "loop", nil, &fakeHandler{}) })
	}
	time.Sleep(200 * time.Millisecond) // both calls are spinning now
	during := beats.Load()
	wg.Wait()
	close(stop)
	for i, err := range errs {
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("runaway call %d: err = %v, want ErrTimeout", i, err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the runaway calls took %v to stop, with a 400ms timeout", d)
	}
	// 200 ms at one beat per 5 ms is 40 beats; a starved heartbeat has none.
	if during < 5 {
		t.Errorf("the heartbeat beat %d times while two plugins spun on one processor, want it scheduled", during)
	}
}

// TestCloseStopsRunningCalls: Close waits for calls in progress until its context is done, then
// cancels them; a runaway call with a minute left of its timeout fails at once and Close returns.
func TestCloseStopsRunningCalls(t *testing.T) {
	eng := testEngine()
	m, err := eng.Load(context.Background(), Options{Name: "hostile", Wasm: plugin(t, "./host/testdata/plugins/hostile"),
		Exports: hostileExports, Limits: Limits{Timeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := m.Call(context.Background(), "s", "loop", nil, &fakeHandler{})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // the call is spinning
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := m.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a 100ms grace period", d)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("the runaway call succeeded; want it stopped by Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the runaway call still runs after Close returned")
	}
	if _, err := m.Call(context.Background(), "s", "noop", nil, &fakeHandler{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Call after Close = %v, want ErrClosed", err)
	}
}

// TestStartFunctionIsBounded: a module whose start function never returns fails to load at the
// timeout instead of holding a goroutine (and a core) forever.
func TestStartFunctionIsBounded(t *testing.T) {
	wasm := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00,
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type 0: () -> ()
		0x03, 0x02, 0x01, 0x00, // func 0: type 0
		0x08, 0x01, 0x00, // start: func 0
		0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop br 0 end
	}
	start := time.Now()
	_, err := testEngine().Load(context.Background(), Options{Name: "spinner", Wasm: wasm, Exports: []string{},
		Limits: Limits{Timeout: 200 * time.Millisecond}})
	if err == nil || !strings.Contains(err.Error(), "start function ran past the 200ms timeout") {
		t.Fatalf("Load = %v, want the start function's timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Load took %v with a 200ms timeout", d)
	}
}

// TestInstrumentedModuleCache: with a CacheDir, a module's instrumented form is kept there and
// reused by the next load; a kept file that was corrupted on disk is not used: the module is
// instrumented again (its runaway loop still stopped by the meter) and the file replaced.
func TestInstrumentedModuleCache(t *testing.T) {
	dir := t.TempDir()
	wasm := plugin(t, "./host/testdata/plugins/hostile")
	var digest [sha256.Size]byte // zero: Load hashes the module
	loadOnce := func() {
		t.Helper()
		eng, err := NewEngine(EngineConfig{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close(context.Background())
		m, err := eng.Load(context.Background(), Options{Name: "h", Wasm: wasm, SHA256: digest, Exports: []string{"noop", "loop"},
			Limits: Limits{Timeout: 300 * time.Millisecond}})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		defer m.Close(context.Background())
		if _, err := m.Call(context.Background(), "s", "loop", nil, &fakeHandler{}); !errors.Is(err, ErrTimeout) {
			t.Fatalf("loop = %v; want ErrTimeout (the meter stops it)", err)
		}
	}
	loadOnce()
	files, _ := filepath.Glob(filepath.Join(dir, meteredDir, "*"))
	if len(files) != 1 {
		t.Fatalf("files kept under %s after a load: %v; want the instrumented module", meteredDir, files)
	}
	kept, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, corrupt := range []func([]byte) []byte{
		func(b []byte) []byte { b = slices.Clone(b); b[len(b)/2] ^= 0xff; return b }, // a flipped byte
		func(b []byte) []byte { return b[:len(b)/2] },                                // cut short
		func([]byte) []byte { return []byte("junk") },
	} {
		if err := os.WriteFile(files[0], corrupt(kept), 0o600); err != nil {
			t.Fatal(err)
		}
		loadOnce()
		if again, _ := os.ReadFile(files[0]); !bytes.Equal(again, kept) {
			t.Error("a corrupted instrumented module was not replaced by a good one")
		}
	}
	// A caller that has the digest (the host, from the manifest check) finds the same file, and
	// a file an older meter left is not read.
	digest = sha256.Sum256(wasm)
	stale := filepath.Join(dir, meteredDir, "v0-"+hex.EncodeToString(digest[:]))
	if err := os.WriteFile(stale, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	loadOnce()
	if again, _ := filepath.Glob(filepath.Join(dir, meteredDir, "*")); len(again) != 2 {
		t.Errorf("files after a load given the digest: %v; want the same instrumented module and the stale one", again)
	}
	if b, _ := os.ReadFile(stale); string(b) != "junk" {
		t.Error("the file of another meter version was read and replaced")
	}
}
