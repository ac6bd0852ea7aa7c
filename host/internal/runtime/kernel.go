package runtime

import (
	"context"
	"encoding/binary"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/airlock-dev/airlock/internal/abi"
)

// The Extism kernel, implemented in Go.
//
// Extism plugins keep their input, output and host-function payloads in "Extism memory", a
// second address space owned by the host and reached through the extism:host/env imports. The
// reference host (go-sdk) implements it in a separate wasm module and crosses into it through Go
// on every call, looking exported functions up each time; that is where its per-call cost goes
// (RATIONALE.md, "Runtime"). Here Extism memory is a per-instance byte arena in Go: a bump
// allocator reset before every call, so nothing outlives a call and no lookup happens per call.
//
// Offsets are arena indices; 0 is never a valid offset (the first 8 bytes are reserved) and is
// the kernel's "none". Out-of-range reads return 0 and out-of-range writes are ignored: a host
// function never traps on a guest-caused condition (CONVENTIONS.md, "Errors").

const arenaBase = 8 // first valid offset; offset 0 means "none"

type kernelFunc struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
	fn      func(in *instance, mod api.Module, stack []uint64)
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// kernelFuncs is the extism:host/env surface. http_request is deliberately absent: a module that
// imports it is refused at load (wasm-runtime-facts.md, pitfall 2), and http_status_code /
// http_headers answer "no request was made".
var kernelFuncs = []kernelFunc{
	{"alloc", []api.ValueType{i64}, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = in.alloc(s[0])
	}},
	{"free", []api.ValueType{i64}, nil, func(in *instance, _ api.Module, s []uint64) {
		delete(in.blocks, s[0])
	}},
	{"length", []api.ValueType{i64}, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = in.blocks[s[0]]
	}},
	{"length_unsafe", []api.ValueType{i64}, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = in.blocks[s[0]]
	}},
	{"load_u8", []api.ValueType{i64}, []api.ValueType{i32}, func(in *instance, _ api.Module, s []uint64) {
		if s[0] < uint64(len(in.arena)) {
			s[0] = uint64(in.arena[s[0]])
		} else {
			s[0] = 0
		}
	}},
	{"load_u64", []api.ValueType{i64}, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		if s[0] <= uint64(len(in.arena))-8 && len(in.arena) >= 8 {
			s[0] = binary.LittleEndian.Uint64(in.arena[s[0]:])
		} else {
			s[0] = 0
		}
	}},
	{"store_u8", []api.ValueType{i64, i32}, nil, func(in *instance, _ api.Module, s []uint64) {
		if s[0] >= arenaBase && s[0] < uint64(len(in.arena)) {
			in.arena[s[0]] = byte(s[1])
		}
	}},
	{"store_u64", []api.ValueType{i64, i64}, nil, func(in *instance, _ api.Module, s []uint64) {
		if s[0] >= arenaBase && s[0] <= uint64(len(in.arena))-8 {
			binary.LittleEndian.PutUint64(in.arena[s[0]:], s[1])
		}
	}},
	{"input_length", nil, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = in.blocks[in.inputOff]
	}},
	{"input_offset", nil, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = in.inputOff
	}},
	{"input_load_u8", []api.ValueType{i64}, []api.ValueType{i32}, func(in *instance, _ api.Module, s []uint64) {
		if n := in.blocks[in.inputOff]; s[0] < n {
			s[0] = uint64(in.arena[in.inputOff+s[0]])
		} else {
			s[0] = 0
		}
	}},
	{"input_load_u64", []api.ValueType{i64}, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		// Like the Extism kernel, a load that runs past the end of the input reads zeros.
		n := in.blocks[in.inputOff]
		if s[0] >= n {
			s[0] = 0
			return
		}
		var buf [8]byte
		copy(buf[:], in.arena[in.inputOff+s[0]:in.inputOff+n])
		s[0] = binary.LittleEndian.Uint64(buf[:])
	}},
	{"input_set", []api.ValueType{i64, i64}, nil, func(in *instance, _ api.Module, s []uint64) {
		// Plugins have no business replacing their own input; ignore it.
	}},
	{"output_set", []api.ValueType{i64, i64}, nil, func(in *instance, _ api.Module, s []uint64) {
		in.outputOff, in.outputLen = s[0], s[1]
	}},
	{"output_length", nil, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = in.outputLen
	}},
	{"output_offset", nil, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = in.outputOff
	}},
	{"error_set", []api.ValueType{i64}, nil, func(in *instance, _ api.Module, s []uint64) {
		in.errorOff = s[0]
	}},
	{"error_get", nil, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = in.errorOff
	}},
	{"memory_bytes", nil, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = uint64(len(in.arena))
	}},
	{"reset", nil, nil, func(in *instance, _ api.Module, s []uint64) {
		// Keep the input: the call is still running and may read it again.
		input := in.arena[in.inputOff : in.inputOff+in.blocks[in.inputOff]]
		saved := append([]byte(nil), input...)
		in.resetArena()
		in.inputOff = in.allocBytes(saved)
	}},
	{"config_get", []api.ValueType{i64}, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = in.configGet(s[0])
	}},
	{"var_get", []api.ValueType{i64}, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		key, ok := in.block(s[0])
		if !ok {
			s[0] = 0
			return
		}
		v, ok := in.vars[string(key)]
		if !ok {
			s[0] = 0
			return
		}
		s[0] = in.allocBytes(v)
	}},
	{"var_set", []api.ValueType{i64, i64}, nil, func(in *instance, _ api.Module, s []uint64) {
		in.varSet(s[0], s[1])
	}},
	{"http_status_code", nil, []api.ValueType{i32}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = 0
	}},
	{"http_headers", nil, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = 0
	}},
	{"get_log_level", nil, []api.ValueType{i32}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = 2 // Extism's "info": debug and trace lines are not even formatted by the plugin
	}},
	{"log_trace", []api.ValueType{i64}, nil, logAt(abi.LogDebug)},
	{"log_debug", []api.ValueType{i64}, nil, logAt(abi.LogDebug)},
	{"log_info", []api.ValueType{i64}, nil, logAt(abi.LogInfo)},
	{"log_warn", []api.ValueType{i64}, nil, logAt(abi.LogWarn)},
	{"log_error", []api.ValueType{i64}, nil, logAt(abi.LogError)},
}

// userFuncs is the extism:host/user surface: the airlock host functions (internal/abi).
var userFuncs = []kernelFunc{
	{abi.FuncHTTP, []api.ValueType{i64}, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		req, ok := in.block(s[0])
		if !ok {
			s[0] = 0
			return
		}
		in.charge(uint64(len(req)))
		s[0] = in.allocBytes(in.handler.HTTP(in.ctx, req))
	}},
	{abi.FuncDB, []api.ValueType{i64}, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		req, ok := in.block(s[0])
		if !ok {
			s[0] = 0
			return
		}
		in.charge(uint64(len(req)))
		s[0] = in.allocBytes(in.handler.DB(in.ctx, req))
	}},
	{abi.FuncConfig, []api.ValueType{i64}, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = in.configGet(s[0])
	}},
	{abi.FuncLog, []api.ValueType{i64, i64}, nil, func(in *instance, _ api.Module, s []uint64) {
		in.log(int(s[0]), s[1])
	}},
	{abi.FuncABIVersion, nil, []api.ValueType{i64}, func(in *instance, _ api.Module, s []uint64) {
		s[0] = abi.Version
	}},
	{abi.FuncMemRead, []api.ValueType{i64, i32, i64}, []api.ValueType{i64}, func(in *instance, mod api.Module, s []uint64) {
		off, dst, n := s[0], uint32(s[1]), s[2]
		if off < arenaBase || n > uint64(len(in.arena)) || off > uint64(len(in.arena))-n || n > 1<<32 ||
			!in.write(mod.Memory(), dst, in.arena[off:off+n]) {
			s[0] = ^uint64(0) // -1
			return
		}
		s[0] = n
	}},
	{abi.FuncMemWrite, []api.ValueType{i32, i64}, []api.ValueType{i64}, func(in *instance, mod api.Module, s []uint64) {
		src, n := uint32(s[0]), s[1]
		if n > 1<<32 {
			s[0] = 0
			return
		}
		buf, ok := mod.Memory().Read(src, uint32(n))
		if !ok {
			s[0] = 0
			return
		}
		s[0] = in.allocBytes(buf)
	}},
	{abi.FuncInputRead, []api.ValueType{i32, i64}, []api.ValueType{i64}, func(in *instance, mod api.Module, s []uint64) {
		dst, n := uint32(s[0]), s[1]
		input := in.arena[in.inputOff : in.inputOff+in.blocks[in.inputOff]]
		if n > uint64(len(input)) {
			n = uint64(len(input))
		}
		if !in.write(mod.Memory(), dst, input[:n]) {
			s[0] = ^uint64(0)
			return
		}
		s[0] = n
	}},
}

func logAt(level int) func(in *instance, _ api.Module, s []uint64) {
	return func(in *instance, _ api.Module, s []uint64) { in.log(level, s[0]) }
}

// exportFuncs adds fns to a host module builder. Each host function finds its instance through
// the call's context (set once per call in instance.call), so no lookup by name happens per call.
func exportFuncs(b wazero.HostModuleBuilder, fns []kernelFunc) {
	for _, f := range fns {
		fn := f.fn
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
				in, ok := ctx.Value(instanceKey{}).(*instance)
				if !ok {
					// Called outside a tool call (for example from _initialize): answer "none".
					for i := range stack {
						stack[i] = 0
					}
					return
				}
				in.charge(callCost)
				fn(in, mod, stack)
			}), f.params, f.results).
			Export(f.name)
	}
}

// knownImports lists every function a module may import, by import module.
func knownImports() map[string]map[string]bool {
	known := map[string]map[string]bool{abi.KernelModule: {}, abi.HostModule: {}}
	for _, f := range kernelFuncs {
		known[abi.KernelModule][f.name] = true
	}
	for _, f := range userFuncs {
		known[abi.HostModule][f.name] = true
	}
	return known
}

type instanceKey struct{}
