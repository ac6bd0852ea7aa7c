// Command bench measures what airlock costs, side by side with the alternatives, and prints one
// markdown table (`make bench`, or `go run ./internal/cmd/bench`).
//
// Every timed row runs through testing.Benchmark -count times (default 5); the table shows the
// median ns/op with that run's allocs/op and B/op. The rows:
//
//  1. native — a Go net/http client with keep-alive POSTs chat.postMessage JSON with a bearer
//     header to internal/fakeslack on loopback and decodes the reply. The baseline.
//
//  2. airlock full path — host.Call of slack.post_message on the same fake: argument validation,
//     the Slack plugin in its sandbox, egress with credential injection, scrubbing, output
//     validation and an audit event (to a sink that discards it). Target (issue 19): ≤ 2× row 1,
//     stretch 1.5×.
//     Rows 1 and 2 are measured again over TLS, as production calls reach slack.com: the fake
//     offers HTTP/2, which the native client takes and airlock's egress declines (it speaks
//     HTTP/1.1); the fake's certificate is the process's only trusted root (SSL_CERT_FILE).
//     Beside it, the connector's own share: its post_message in the sandbox with a canned answer,
//     (target ≤ 15 µs), and the same call with Prometheus metrics on (tracing off; target ≤ 2% over the full
//     path) and with tracing on too (spans batched to an exporter that drops them).
//
//  3. no-I/O calls — the hostile plugin's noop through host.Call (target ≤ 1.5 µs and no
//     allocation above the raw sandbox call's), and the raw
//     sandbox (runtime.Module.Call, no policy) on hostile noop and echo of 100 B and 10 KB.
//
//  4. the same unmodified extism/go-pdk module (host/testdata/plugins/gopdk) under
//     extism/go-sdk v1.7.1 as shipped — the runtime airlock replaced — and under airlock's
//     runtime: noop, echo 100 B, echo 10 KB.
//
//  5. cold load — host.New plus LoadModule of the Slack connector (new runtime.Engine, compile,
//     first instance and its _initialize) with an empty compilation cache, and with an on-disk
//     cache a first load populated. Reported in ms.
//
//  6. throughput — calls/s of rows 1 and 2 with 1 and with 2 concurrent callers, each for a fixed
//     time, and how 2 callers scale over 1 (target ≥ 1.8×).
//
//  7. audit durability — rows 2 and 6 (20 callers of hostile.noop) with the audit trail in an
//     SQLite store (synchronous=FULL): the durable sink (a call returns once its records are
//     committed and fsynced; group commit) beside a queued one (a call returns when its record
//     is queued, as before issue 26); the throughput runs of the two alternate. Target: durable
//     throughput ≥ 90% of queued.
//
//  8. a crowd over MCP streamable HTTP on loopback (mcp.go): airlock composed as `airlock serve
//     --http` composes it (SQLite store, durable audit, agent tokens in the store) serving
//     hostile.noop, beside a minimal go-sdk server with a no-op tool (the floor), in turns; 200
//     clients with a session each, and 200 concurrent calls on one session: calls/s, p50, p99
//     and the process's CPU time per call (steadier than calls/s on a shared machine). Target:
//     airlock ≥ 1/1.5 of the floor's calls/s.
//
//  9. memory per pooled instance of the Slack connector (memory.go): resident set, guest
//     linear memory, Go heap, and how much of the guest memory instances hold in common.
//
// The raw-sandbox rows (3 and the airlock half of 4) run as `go test -bench BenchmarkRuntime
// ./host` in a subprocess, because host/internal/runtime cannot be imported from here; the
// benchmarks of host/bench_test.go give the other rows in the standard format too.
//
// Every row also shows the spread of its runs and the CPU time per op of the whole process,
// which other processes on a shared machine inflate less than the wall time.
//
// Flags: -count N (default 5), -benchtime D (per testing.Benchmark run, default 500ms), -short
// (count 1 and the cheap rows only, for a CI smoke run), -json FILE (also write the results as
// JSON), -runtime=false (skip the subprocess), -check FILE (make bench-check: only rows 1 and 2,
// as interleaved pairs, failing when their ratio is over 15% above the baseline FILE's),
// -write-baseline FILE (the same measurement, written as a new baseline). Plugins are built through internal/pluginbuild,
// which caches them.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }

const (
	token    = "xoxb-bench-7f3k2m9qZ"
	postArgs = `{"channel":"C0GENERAL","text":"benchmark: deploy finished"}`
)

// Row is one line of the table.
type Row struct {
	Group string `json:"group"`
	What  string `json:"what"`
	// Unit is "ns/op" (Median is the median ns/op), "ms" (Median is the median ns/op of an
	// operation reported in ms), "calls/s" (Median is the median calls per second), or "KiB"
	// or "%" (Median is the measured value).
	Unit        string    `json:"unit"`
	Median      float64   `json:"median"`
	Samples     []float64 `json:"samples"`
	AllocsPerOp int64     `json:"allocs_per_op"`
	BytesPerOp  int64     `json:"bytes_per_op"`
	Ratio       float64   `json:"ratio,omitempty"`
	RatioTo     string    `json:"ratio_to,omitempty"`
	// RatioSamples are per-run ratios when the row was measured in pairs with its baseline
	// (-check); Ratio is then their median.
	RatioSamples []float64 `json:"ratio_samples,omitempty"`
	// CPU is the median CPU time per op of the whole process (every thread: the fake upstream,
	// the transport, the collector), which other processes on the machine inflate less than
	// the wall time; CPURatio is the full path's ratio in CPU time, as measured by -check.
	CPU      float64 `json:"cpu_ns_per_op,omitempty"`
	CPURatio float64 `json:"cpu_ratio,omitempty"`
	// P50 and P99 are latencies in ns, for the calls/s rows that record them.
	P50 float64 `json:"p50_ns,omitempty"`
	P99 float64 `json:"p99_ns,omitempty"`
	// Key names the row for ratios, targets and the README table.
	Key string `json:"key"`
}

type options struct {
	count     int
	benchtime time.Duration
	short     bool
	json      string
	runtime   bool
	root      string
	stderr    io.Writer
	// check is the baseline file of -check (make bench-check): only rows 1 and 2 run, in
	// interleaved pairs, and their ratio is compared with the baseline's.
	check string
	// writeBaseline is where -write-baseline writes the measured ratio as a new baseline.
	writeBaseline string
	// readme is the file whose speed table (between readmeStart and readmeEnd) is rewritten from
	// this run, or from the -from file.
	readme, from string
	// ratioOnly: measure rows 1 and 2 only, as interleaved pairs (pairedRows).
	ratioOnly bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.count, "count", 5, "runs of each row; the table shows the median")
	fs.DurationVar(&o.benchtime, "benchtime", 500*time.Millisecond, "duration of each testing.Benchmark run")
	fs.BoolVar(&o.short, "short", false, "count 1 and the cheap rows only (CI smoke run)")
	fs.StringVar(&o.json, "json", "", "also write the results to this `file` as JSON")
	fs.BoolVar(&o.runtime, "runtime", true, "run the raw-sandbox rows (a `go test` subprocess)")
	fs.StringVar(&o.check, "check", "", "measure only the full-path ratio and fail if it is more than the tolerance above the ratio in this baseline `file`")
	fs.StringVar(&o.readme, "readme", "", "rewrite the speed table of this `file` (README.md) from the run")
	fs.StringVar(&o.from, "from", "", "measure nothing: render the README table from this -json `file` (into -readme, or to stdout)")
	fs.StringVar(&o.writeBaseline, "write-baseline", "", "measure only the full-path ratio and write it to this `file` as the new baseline")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.check != "" || o.writeBaseline != "" {
		return runCheck(ctx, &o, stdout, stderr)
	}
	if o.short {
		o.count, o.benchtime, o.runtime = 1, 100*time.Millisecond, false
	}
	if o.count < 1 {
		fmt.Fprintln(stderr, "bench: -count must be at least 1")
		return 2
	}
	o.stderr = stderr
	testing.Init()
	if err := setBenchtime(o.benchtime); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	if o.from != "" {
		res, err := readResults(o.from)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		return writeReadme(res, &o, stdout, stderr)
	}
	start := time.Now()
	res := &Results{Go: goruntime.Version(), GOOS: goruntime.GOOS, GOARCH: goruntime.GOARCH, CPUs: goruntime.NumCPU(),
		Count: o.count, BenchTime: int64(o.benchtime), Date: start.UTC().Format(time.DateOnly), LoadStart: loadAverage()}
	rows, err := measure(ctx, &o)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	ratios(rows)
	res.Rows, res.LoadEnd, res.TookSec = rows, loadAverage(), time.Since(start).Seconds()
	report(stdout, rows, &o, time.Since(start))
	if o.json != "" {
		if err := writeJSON(o.json, res); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	}
	if o.readme != "" {
		return writeReadme(res, &o, stdout, stderr)
	}
	return 0
}

// writeReadme puts the speed table of res into the -readme file, or prints it (-from alone).
func writeReadme(res *Results, o *options, stdout, stderr io.Writer) int {
	table := readmeTable(res)
	if o.readme == "" {
		fmt.Fprint(stdout, table)
		return 0
	}
	if err := updateReadme(o.readme, table); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	fmt.Fprintf(stderr, "bench: wrote the speed table into %s\n", o.readme)
	return 0
}

func measure(ctx context.Context, o *options) (rows []*Row, err error) {
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		return nil, err
	}
	o.root = root
	progress := func(what string) { fmt.Fprintf(o.stderr, "bench: %s\n", what) }

	progress("building plugins")
	slackM, slackWasm, err := connector(ctx, root, "./plugins/slack", "manifests/slack.yaml")
	if err != nil {
		return nil, err
	}
	hostileM, hostileWasm, err := connector(ctx, root, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	if err != nil {
		return nil, err
	}
	gopdkWasm, err := build(ctx, root, "./host/testdata/plugins/gopdk")
	if err != nil {
		return nil, err
	}

	state, err := os.MkdirTemp("", "airlock-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(state)
	slackURL, stopSlack := fakeslack.New(token).Start()
	defer stopSlack()
	// A second fake over TLS with HTTP/2 offered, as slack.com is reached: its certificate is
	// this process's only trusted root (SSL_CERT_FILE, read when the system roots are first
	// needed, which is after this point), so the host's egress verifies it as it would Slack's.
	tlsURL, tlsCert, stopTLS := fakeslack.New(token).StartTLS()
	defer stopTLS()
	caFile := filepath.Join(state, "fake-slack-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsCert.Raw}), 0o600); err != nil {
		return nil, err
	}
	os.Setenv("SSL_CERT_FILE", caFile)
	os.Setenv("SSL_CERT_DIR", state)

	// One host serves rows 2, 3 and 6. Its compilation cache is the one hosttest uses, so a
	// developer's machine compiles each module once.
	cacheDir := filepath.Join(filepath.Dir(pluginbuild.DefaultCacheDir()), "wazero")
	h, err := host.New(hostConfig(filepath.Join(state, "main"), cacheDir))
	if err != nil {
		return nil, err
	}
	defer h.Close(context.Background())
	if err := h.LoadModule(ctx, slackM, slackWasm, slackGrant(slackURL)); err != nil {
		return nil, err
	}
	hostileGrant := &manifest.Grant{Connector: "hostile", Tools: []string{"noop"}, Scopes: []string{"test"},
		Hosts: []string{"*"}, Credentials: manifest.SecretRefs(map[string]string{"token": "env:TOKEN", "other_key": "env:TOKEN"})}
	if err := h.LoadModule(ctx, hostileM, hostileWasm, hostileGrant); err != nil {
		return nil, err
	}
	slackReq := host.CallRequest{Tool: "slack.post_message", Arguments: json.RawMessage(postArgs), Agent: "bench"}
	noopReq := host.CallRequest{Tool: "hostile.noop", Arguments: json.RawMessage(`{}`), Agent: "bench"}
	callSlack := func() error {
		if res := h.Call(ctx, slackReq); !res.OK {
			return fmt.Errorf("slack.post_message: %s", res.Error)
		}
		return nil
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	native := func() error {
		return fakeslack.PostMessage(ctx, client, slackURL, token, "C0GENERAL", "benchmark: deploy finished")
	}

	if o.ratioOnly {
		progress("native and full path, interleaved")
		return pairedRows(o.count, native, callSlack)
	}
	hTLS, err := host.New(hostConfig(filepath.Join(state, "tls"), cacheDir))
	if err != nil {
		return nil, err
	}
	defer hTLS.Close(context.Background())
	if err := hTLS.LoadModule(ctx, slackM, slackWasm, slackGrant(tlsURL)); err != nil {
		return nil, err
	}
	callSlackTLS := func() error {
		if res := hTLS.Call(ctx, slackReq); !res.OK {
			return fmt.Errorf("slack.post_message over TLS: %s", res.Error)
		}
		return nil
	}
	roots := x509.NewCertPool()
	roots.AddCert(tlsCert)
	tlsClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer tlsClient.CloseIdleConnections()
	nativeTLS := func() error {
		return fakeslack.PostMessage(ctx, tlsClient, tlsURL, token, "C0GENERAL", "benchmark: deploy finished")
	}

	bench := func(group, key, what string, fn func() error) error {
		progress(what)
		r, err := benchRow(o.count, fn)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		r.Group, r.Key, r.What = group, key, what
		rows = append(rows, r)
		return nil
	}

	// Rows 1 and 2, as interleaved pairs: the ratio is the median of the pairs' ratios, so a
	// busy moment of a shared machine hits both halves of a pair rather than one row.
	progress("native and full path, interleaved")
	pair, err := pairedRows(o.count, native, callSlack)
	if err != nil {
		return nil, err
	}
	pair[0].What = "native: net/http POST chat.postMessage + JSON decode (keep-alive)"
	pair[1].What = "airlock: host.Call slack.post_message (full path; ratio: median of interleaved pairs)"
	rows = append(rows, pair...)
	// The same pair over TLS, as production calls reach slack.com: the fake offers HTTP/2, which
	// the native client takes (as Go's default client does); airlock's egress speaks HTTP/1.1.
	progress("native and full path over TLS, interleaved")
	if pair, err = pairedRows(o.count, nativeTLS, callSlackTLS); err != nil {
		return nil, err
	}
	pair[0].Key, pair[0].RatioTo = "native-tls", "native over TLS"
	pair[1].Key, pair[1].RatioTo = "full-tls", "native over TLS"
	pair[0].What = "native over TLS (HTTP/2, offered by the fake): net/http POST chat.postMessage + JSON decode"
	pair[1].What = "airlock over TLS (egress speaks HTTP/1.1): host.Call slack.post_message (full path; median of interleaved pairs)"
	rows = append(rows, pair...)
	// Row 2, observability: the same call on hosts with Prometheus metrics (tracing off) and
	// with metrics and tracing on (every span sampled, batched to an exporter that drops them,
	// so the row counts building and queueing spans, not a collector's network).
	for _, v := range []struct {
		key, what string
		traced    bool
	}{
		{"full-metrics", "airlock: full path, metrics on, tracing off", false},
		{"full-traced", "airlock: full path, metrics and tracing on", true},
	} {
		cfg := hostConfig(filepath.Join(state, v.key), cacheDir)
		cfg.Metrics = host.NewMetrics(nil)
		if v.traced {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(dropSpans{}))
			defer tp.Shutdown(context.Background())
			cfg.TracerProvider = tp
		}
		ho, err := host.New(cfg)
		if err != nil {
			return nil, err
		}
		defer ho.Close(context.Background())
		if err := ho.LoadModule(ctx, slackM, slackWasm, slackGrant(slackURL)); err != nil {
			return nil, err
		}
		if err := bench("2", v.key, v.what, func() error {
			if res := ho.Call(ctx, slackReq); !res.OK {
				return fmt.Errorf("slack.post_message: %s", res.Error)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if err := bench("3", "host-noop", "airlock: host.Call hostile.noop (no I/O)", func() error {
		if res := h.Call(ctx, noopReq); !res.OK {
			return fmt.Errorf("hostile.noop: %s", res.Error)
		}
		return nil
	}); err != nil {
		return nil, err
	}

	// Row 4, go-sdk half.
	sizes := []struct {
		key, what string
		in        []byte
	}{
		{"noop", "noop", nil},
		{"echo100", "echo 100 B", bytes.Repeat([]byte("x"), 100)},
		{"echo10k", "echo 10 KB", bytes.Repeat([]byte("x"), 10<<10)},
	}
	if o.short {
		sizes = sizes[:1]
	}
	plugin, err := goSDKPlugin(ctx, gopdkWasm)
	if err != nil {
		return nil, err
	}
	for _, s := range sizes {
		export := "echo"
		if s.in == nil {
			export = "noop"
		}
		err := bench("4", "gosdk-"+s.key, "go-sdk v1.7.1: gopdk "+s.what, func() error {
			rc, out, err := plugin.CallWithContext(ctx, export, s.in)
			if err != nil || rc != 0 || len(out) != len(s.in) {
				return fmt.Errorf("%s: rc %d, %d bytes, %v", export, rc, len(out), err)
			}
			return nil
		})
		if err != nil {
			plugin.Close(ctx)
			return nil, err
		}
	}
	plugin.Close(ctx)

	// Row 6 (before the cold loads, which leave a lot of garbage behind).
	dur := 2 * o.benchtime
	for _, c := range []struct {
		key, what string
		fn        func() error
	}{
		{"native", "native", native},
		{"full", "airlock slack.post_message", callSlack},
	} {
		for _, n := range []int{1, 2} {
			what := fmt.Sprintf("throughput: %s, %d caller", c.what, n)
			if n > 1 {
				what += "s"
			}
			progress(what)
			r, err := throughputRow(o.count, n, dur, c.fn)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			r.Group, r.Key, r.What = "6", fmt.Sprintf("tput-%s-%d", c.key, n), what
			rows = append(rows, r)
		}
	}

	// Row 7: the audit trail in an SQLite store (synchronous=FULL), today's durable sink (a
	// call returns once its records are committed and fsynced, group commit) beside a queued one
	// (returns when its record is queued; a crash loses the queue). The throughput runs of the
	// two alternate, so that a change in the machine's load hits both.
	type auditHost struct {
		key, what string
		h         *host.Host
	}
	var audited []auditHost
	for _, v := range []struct {
		key, what string
		queued    bool
	}{
		{"queued", "audit queued", true},
		{"durable", "audit durable", false},
	} {
		dir := filepath.Join(state, "audit-"+v.key)
		st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "state.db"))
		if err != nil {
			return nil, err
		}
		defer st.Close()
		sink := audit.NewStoreSink(st, &audit.StoreSinkOptions{Queued: v.queued})
		defer sink.Close()
		cfg := hostConfig(dir, cacheDir)
		cfg.Audit = sink
		ho, err := host.New(cfg)
		if err != nil {
			return nil, err
		}
		defer ho.Close(context.Background())
		if err := ho.LoadModule(ctx, slackM, slackWasm, slackGrant(slackURL)); err != nil {
			return nil, err
		}
		if err := ho.LoadModule(ctx, hostileM, hostileWasm, hostileGrant); err != nil {
			return nil, err
		}
		if err := bench("7", "full-"+v.key, "airlock: full path, "+v.what+" (SQLite)", func() error {
			if res := ho.Call(ctx, slackReq); !res.OK {
				return fmt.Errorf("slack.post_message: %s", res.Error)
			}
			return nil
		}); err != nil {
			return nil, err
		}
		audited = append(audited, auditHost{v.key, v.what, ho})
	}
	tput := make([]*Row, len(audited))
	for i, a := range audited {
		tput[i] = &Row{Group: "7", Key: "tput-noop20-" + a.key, What: "throughput: hostile.noop, 20 callers, " + a.what + " (SQLite)", Unit: "calls/s"}
	}
	progress("throughput: hostile.noop, 20 callers, audit queued and durable, alternating (SQLite)")
	for range o.count {
		for i, a := range audited {
			r, err := throughputRow(1, 20, dur, func() error {
				if res := a.h.Call(ctx, noopReq); !res.OK {
					return fmt.Errorf("hostile.noop: %s", res.Error)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", tput[i].What, err)
			}
			tput[i].Samples = append(tput[i].Samples, r.Samples...)
		}
	}
	for _, r := range tput {
		r.Median = median(r.Samples)
		rows = append(rows, r)
	}

	// Row 8: a crowd over MCP streamable HTTP, airlock beside a go-sdk floor.
	mcp, err := mcpRows(ctx, o, filepath.Join(state, "mcp"), cacheDir, hostileM, hostileWasm, hostileGrant)
	if err != nil {
		return nil, err
	}
	rows = append(rows, mcp...)

	// Row 5.
	if !o.short {
		load := func(cacheDir string) error {
			dir, err := os.MkdirTemp(state, "load-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			if cacheDir == "" {
				cacheDir = filepath.Join(dir, "cache")
			}
			h, err := host.New(hostConfig(dir, cacheDir))
			if err != nil {
				return err
			}
			err = h.LoadModule(ctx, slackM, slackWasm, slackGrant(slackURL))
			return errors.Join(err, h.Close(ctx))
		}
		warmCache := filepath.Join(state, "warm-cache")
		if err := load(warmCache); err != nil { // populates the on-disk cache
			return nil, err
		}
		for _, c := range []struct{ key, what, cache string }{
			{"cold", "cold load of slack: empty compilation cache", ""},
			{"warm", "cold load of slack: warm on-disk cache", warmCache},
		} {
			// The process's CPU time per load too: steadier than the wall time on a shared machine.
			var cpu time.Duration
			var loads int
			if err := bench("5", "load-"+c.key, c.what, func() error {
				c0 := testenv.CPUTime()
				defer func() { cpu, loads = cpu+time.Duration(testenv.CPUTime()-c0), loads+1 }()
				return load(c.cache)
			}); err != nil {
				return nil, err
			}
			rows[len(rows)-1].Unit = "ms"
			rows[len(rows)-1].CPU = float64(cpu) / float64(max(loads, 1))
		}
	}

	// Rows 3 and 4, the raw sandbox, and row 9, memory per instance, in subprocesses.
	if o.runtime {
		progress("memory per instance: go test -bench BenchmarkInstanceMemory ./host/internal/runtime (subprocess)")
		mem, err := memoryRows(ctx, o)
		if err != nil {
			fmt.Fprintf(o.stderr, "bench: the memory rows are missing: %v\n", err)
		}
		rows = append(rows, mem...)
		progress("raw sandbox: go test -bench BenchmarkRuntime ./host (subprocess)")
		rt, err := runtimeRows(ctx, o)
		if err != nil {
			fmt.Fprintf(o.stderr, "bench: the raw-sandbox rows are missing: %v\n", err)
		}
		rows = append(rows, rt...)
	}
	return rows, nil
}

// connector builds a plugin and parses its manifest, pinning the built module's digest (what
// hosttest.Connector does for tests).
func connector(ctx context.Context, root, pkg, manifestPath string) (*manifest.Manifest, []byte, error) {
	wasm, err := build(ctx, root, pkg)
	if err != nil {
		return nil, nil, err
	}
	m, err := manifest.Load(filepath.Join(root, manifestPath))
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(wasm)
	m.Module.SHA256 = hex.EncodeToString(sum[:])
	return m, wasm, nil
}

func build(ctx context.Context, root, pkg string) ([]byte, error) {
	path, err := pluginbuild.Build(ctx, pluginbuild.Options{Package: pkg, Root: root})
	if err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// discardSink is an audit.Sink that keeps nothing (audit.Memory would grow for as long as the
// benchmark runs).
type discardSink struct{}

func (discardSink) Write(context.Context, audit.Event) error { return nil }

// dropSpans is a span exporter that drops what it is given.
type dropSpans struct{}

func (dropSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (dropSpans) Shutdown(context.Context) error                             { return nil }

func hostConfig(stateDir, cacheDir string) host.Config {
	return host.Config{
		StateDir: stateDir,
		CacheDir: cacheDir,
		Secrets: secret.Mux{"env": secret.Env{Lookup: func(name string) (string, bool) {
			return token, name == "SLACK_BOT_TOKEN" || name == "TOKEN"
		}}},
		Audit: discardSink{},
		// Info, as in production, into nothing: whatever the call path logs per call is
		// formatted, so it is counted.
		Logger: slog.New(secret.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

func slackGrant(url string) *manifest.Grant {
	return &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": url}}
}

// goSDKPlugin loads module under extism/go-sdk configured sanely: WASI on, -1 (default) memory
// limits for vars and HTTP bodies, the same 64 MiB memory cap as airlock's default, and real
// clocks and randomness (without them a standard-Go plugin's GC stalls; wasm-runtime-facts.md,
// pitfall 1). Everything else is as shipped.
func goSDKPlugin(ctx context.Context, module []byte) (*extism.Plugin, error) {
	m := extism.Manifest{
		Wasm:   []extism.Wasm{extism.WasmData{Data: module, Name: "main"}},
		Memory: &extism.ManifestMemory{MaxPages: 1024, MaxHttpResponseBytes: -1, MaxVarBytes: -1},
	}
	cfg := extism.PluginConfig{
		EnableWasi: true,
		ModuleConfig: wazero.NewModuleConfig().WithSysWalltime().WithSysNanotime().
			WithRandSource(rand.Reader),
	}
	p, err := extism.NewPlugin(ctx, m, cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("go-sdk: %w", err)
	}
	// The first call runs _initialize.
	if rc, _, err := p.CallWithContext(ctx, "noop", nil); err != nil || rc != 0 {
		p.Close(ctx)
		return nil, fmt.Errorf("go-sdk: first call: rc %d, %v", rc, err)
	}
	return p, nil
}

func setBenchtime(d time.Duration) error { return flag.Set("test.benchtime", d.String()) }

// machine describes where the figures were measured.
func machine() string {
	return fmt.Sprintf("%s/%s, %d CPUs (GOMAXPROCS %d)", goruntime.GOOS, goruntime.GOARCH, goruntime.NumCPU(), goruntime.GOMAXPROCS(0))
}

// benchRow runs fn under testing.Benchmark count times and keeps the median run.
func benchRow(count int, fn func() error) (*Row, error) {
	var results []testing.BenchmarkResult
	for range count {
		r, err := benchOnce(fn)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	slices.SortFunc(results, func(a, b testing.BenchmarkResult) int {
		return cmpFloat(nsPerOp(a), nsPerOp(b))
	})
	med := results[len(results)/2]
	row := &Row{Unit: "ns/op", Median: nsPerOp(med), AllocsPerOp: med.AllocsPerOp(), BytesPerOp: med.AllocedBytesPerOp()}
	var cpu []float64
	for _, r := range results {
		if c := r.Extra["cpu-ns/op"]; c > 0 {
			cpu = append(cpu, c)
		}
	}
	if len(cpu) > 0 {
		row.CPU = median(cpu)
	}
	if len(results)%2 == 0 {
		row.Median = (nsPerOp(results[len(results)/2-1]) + row.Median) / 2
	}
	for _, r := range results {
		row.Samples = append(row.Samples, nsPerOp(r))
	}
	return row, nil
}

func nsPerOp(r testing.BenchmarkResult) float64 { return float64(r.T.Nanoseconds()) / float64(r.N) }

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// throughputRow runs fn on callers goroutines for d, count times, and reports the median calls/s.
func throughputRow(count, callers int, d time.Duration, fn func() error) (*Row, error) {
	row := &Row{Unit: "calls/s"}
	for range count {
		goruntime.GC()
		var calls atomic.Int64
		var wg sync.WaitGroup
		errs := make([]error, callers)
		start := time.Now()
		deadline := start.Add(d)
		for i := range callers {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					if err := fn(); err != nil {
						errs[i] = err
						return
					}
					calls.Add(1)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		row.Samples = append(row.Samples, float64(calls.Load())/time.Since(start).Seconds())
	}
	row.Median = median(row.Samples)
	return row, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runtimeRows runs BenchmarkRuntime of host/bench_test.go and turns its output into rows.
func runtimeRows(ctx context.Context, o *options) ([]*Row, error) {
	bin, err := os.MkdirTemp("", "airlock-bench-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(bin)
	out, err := goTest(ctx, o, "-o", filepath.Join(bin, "host.test"), "-run", "^$",
		"-bench", "^BenchmarkRuntime$", "-benchmem", "-count", strconv.Itoa(o.count),
		"-benchtime", o.benchtime.String(), "./host")
	if err != nil {
		return nil, err
	}
	type sample struct {
		ns, cpu       float64
		allocs, bytes int64
	}
	samples := map[string][]sample{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkRuntime/") {
			continue
		}
		name := strings.TrimPrefix(f[0], "BenchmarkRuntime/")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		var s sample
		for i := 2; i+1 < len(f); i += 2 {
			v, _ := strconv.ParseFloat(f[i], 64)
			switch f[i+1] {
			case "ns/op":
				s.ns = v
			case "allocs/op":
				s.allocs = int64(v)
			case "B/op":
				s.bytes = int64(v)
			case "cpu-ns/op":
				s.cpu = v
			}
		}
		if _, ok := samples[name]; !ok {
			order = append(order, name)
		}
		samples[name] = append(samples[name], s)
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("no BenchmarkRuntime results in:\n%s", out)
	}
	var rows []*Row
	for _, name := range order {
		ss := samples[name]
		slices.SortFunc(ss, func(a, b sample) int { return cmpFloat(a.ns, b.ns) })
		med := ss[len(ss)/2]
		r := &Row{Unit: "ns/op", AllocsPerOp: med.allocs, BytesPerOp: med.bytes}
		var cpu []float64
		for _, s := range ss {
			r.Samples = append(r.Samples, s.ns)
			if s.cpu > 0 {
				cpu = append(cpu, s.cpu)
			}
		}
		r.Median = median(r.Samples)
		if len(cpu) > 0 {
			r.CPU = median(cpu)
		}
		plugin, size, _ := strings.Cut(name, "/")
		what := map[string]string{"noop": "noop", "echo_100B": "echo 100 B", "echo_10KB": "echo 10 KB",
			"post_message": "post_message with a canned Slack answer (the connector's own work)"}[size]
		if plugin == "hostile" && size == "echo_10KB" {
			what += " (1 byte per kernel call, on purpose)"
		}
		key := map[string]string{"noop": "noop", "echo_100B": "echo100", "echo_10KB": "echo10k", "post_message": "post"}[size]
		r.Group, r.Key, r.What = "3", "rt-"+plugin+"-"+key, "airlock runtime.Module.Call: "+plugin+" "+what
		switch plugin {
		case "gopdk":
			r.Group = "4"
		case "slack":
			r.Group = "2" // the share of row 2 spent in the connector itself
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// ratios fills each row's ratio to its baseline.
func ratios(rows []*Row) {
	byKey := map[string]*Row{}
	for _, r := range rows {
		byKey[r.Key] = r
	}
	set := func(key, base, label string) {
		r, b := byKey[key], byKey[base]
		if r == nil || b == nil || b.Median == 0 {
			return
		}
		r.Ratio, r.RatioTo = r.Median/b.Median, label
	}
	set("native", "native", "native")
	if r := byKey["full"]; r != nil && len(r.RatioSamples) == 0 { // pairedRows set it otherwise
		set("full", "native", "native")
	}
	set("rt-slack-post", "native", "native")
	set("full-metrics", "full", "full path")
	set("full-traced", "full", "full path")
	set("host-noop", "rt-hostile-noop", "raw noop")
	for _, s := range []string{"noop", "echo100", "echo10k"} {
		set("gosdk-"+s, "gosdk-"+s, "go-sdk")
		set("rt-gopdk-"+s, "gosdk-"+s, "go-sdk")
	}
	set("load-cold", "load-cold", "cold")
	set("load-warm", "load-cold", "cold")
	for _, c := range []string{"native", "full"} {
		set("tput-"+c+"-1", "tput-"+c+"-1", "1 caller")
		set("tput-"+c+"-2", "tput-"+c+"-1", "1 caller")
	}
	set("tput-full-1", "tput-native-1", "native")
	mcpRatios(set)
	set("full-queued", "full-queued", "queued")
	set("full-durable", "full-queued", "queued")
	set("tput-noop20-queued", "tput-noop20-queued", "queued")
	set("tput-noop20-durable", "tput-noop20-queued", "queued")
}

func report(w io.Writer, rows []*Row, o *options, took time.Duration) {
	fmt.Fprintf(w, "# airlock bench\n\n")
	fmt.Fprintf(w, "%s %s/%s, %d CPUs (GOMAXPROCS %d); median of %d runs of %v each; took %v\n\n",
		goruntime.Version(), goruntime.GOOS, goruntime.GOARCH, goruntime.NumCPU(), goruntime.GOMAXPROCS(0),
		o.count, o.benchtime, took.Round(time.Second))
	fmt.Fprintln(w, "| what | median | spread (min–max) | CPU/op | allocs/op | B/op | ratio |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b *Row) int { return strings.Compare(a.Group, b.Group) })
	for _, r := range sorted {
		med, allocs, bytes := "", "", ""
		format := duration
		switch r.Unit {
		case "calls/s":
			format = func(x float64) string { return fmt.Sprintf("%.0f", x) }
			med = format(r.Median) + " calls/s"
			if r.P50 > 0 {
				med += fmt.Sprintf(" (p50 %s, p99 %s)", duration(r.P50), duration(r.P99))
			}
		case "KiB", "%":
			unit := r.Unit
			format = func(x float64) string { return fmt.Sprintf("%.0f %s", x, unit) }
			med = format(r.Median)
		case "ms":
			format = func(x float64) string { return fmt.Sprintf("%.1f ms", x/1e6) }
			med = format(r.Median)
			allocs, bytes = strconv.FormatInt(r.AllocsPerOp, 10), strconv.FormatInt(r.BytesPerOp, 10)
		default:
			med = duration(r.Median)
			allocs, bytes = strconv.FormatInt(r.AllocsPerOp, 10), strconv.FormatInt(r.BytesPerOp, 10)
		}
		ratio := ""
		if r.RatioTo != "" {
			ratio = fmt.Sprintf("%s× %s", num(r.Ratio), r.RatioTo)
		}
		cpu := ""
		switch {
		case r.CPU > 0 && r.Unit == "calls/s":
			cpu = duration(r.CPU) + "/call"
		case r.CPU > 0:
			cpu = format(r.CPU)
		}
		fmt.Fprintf(w, "| %s. %s | %s | %s | %s | %s | %s | %s |\n", r.Group, r.What, med, spread(r.Samples, format), cpu, allocs, bytes, ratio)
	}
	fmt.Fprintln(w)
	for _, t := range targets(rows) {
		fmt.Fprintln(w, "target:", t)
	}
}

// targets are issue 19's targets, each with its verdict and the figure it was judged on.
func targets(rows []*Row) []string {
	byKey := map[string]*Row{}
	for _, r := range rows {
		byKey[r.Key] = r
	}
	var out []string
	if r := byKey["full"]; r != nil && r.Ratio > 0 {
		line := fmt.Sprintf("full path ≤ 2× native at the median: %s (%s×; stretch 1.5×: %s)",
			verdict(r.Ratio <= 2), num(r.Ratio), verdict(r.Ratio <= 1.5))
		if c := cpuRatio(r, byKey["native"]); c > 0 {
			line += fmt.Sprintf("; in CPU time %s×", num(c))
		}
		if t := byKey["full-tls"]; t != nil && t.Ratio > 0 {
			line += fmt.Sprintf("; over TLS (native on HTTP/2) %s× (%s)", num(t.Ratio), verdict(t.Ratio <= 2))
		}
		out = append(out, line)
	}
	if r := byKey["rt-slack-post"]; r != nil {
		line := fmt.Sprintf("the connector's own work for post_message ≤ 15 µs: %s (%s", verdict(r.Median <= 15000), duration(r.Median))
		if r.CPU > 0 {
			line += fmt.Sprintf("; CPU %s", duration(r.CPU))
		}
		out = append(out, line+")")
	}
	if r := byKey["host-noop"]; r != nil {
		line := fmt.Sprintf("no-I/O call through host.Call ≤ 1.5 µs: %s (%s", verdict(r.Median <= 1500), duration(r.Median))
		if r.CPU > 0 {
			line += fmt.Sprintf("; CPU %s", duration(r.CPU))
		}
		line += ")"
		if raw := byKey["rt-hostile-noop"]; raw != nil {
			own := r.AllocsPerOp - raw.AllocsPerOp
			line += fmt.Sprintf("; 0 allocations in the host's own code: %s (%d allocs/op, %d of them above the raw sandbox call)",
				verdict(own <= 0), r.AllocsPerOp, own)
		}
		out = append(out, line)
	}
	if r := byKey["load-warm"]; r != nil {
		out = append(out, fmt.Sprintf("load from the warm on-disk cache ≤ 30 ms: %s (%.1f ms)", verdict(r.Median <= 30e6), r.Median/1e6))
	}
	for _, k := range []string{"mcp-airlock-clients", "mcp-airlock-session"} {
		if r := byKey[k]; r != nil && r.Ratio > 0 {
			out = append(out, fmt.Sprintf("MCP crowd (%s) within 1.5× of the go-sdk floor: %s (%s× its calls/s, median of rounds in turns %s; CPU per call %s× the floor's)",
				strings.TrimPrefix(k, "mcp-airlock-"), verdict(r.Ratio >= 1/1.5), num(r.Ratio),
				pairRatios(rows, k, strings.Replace(k, "airlock", "floor", 1)), num(cpuRatio(r, byKey[strings.Replace(k, "airlock", "floor", 1)]))))
		}
	}
	if r := byKey["tput-noop20-durable"]; r != nil && r.RatioTo != "" {
		out = append(out, fmt.Sprintf("durable audit in-process, no MCP, 20 callers (stricter than issue 26's measure: the sink alone is the limit) ≥ 90%% of queued: %s (%s×; per-run ratios %s)",
			verdict(r.Ratio >= 0.9), num(r.Ratio), pairRatios(rows, "tput-noop20-durable", "tput-noop20-queued")))
	}
	if r := byKey["mcp20-durable"]; r != nil && r.RatioTo != "" {
		out = append(out, fmt.Sprintf("durable audit over MCP (one session, 20 callers of a no-I/O tool, issue 26's measure) ≥ 90%% of queued: %s (%s×; per-run ratios %s)",
			verdict(r.Ratio >= 0.9), num(r.Ratio), pairRatios(rows, "mcp20-durable", "mcp20-queued")))
	}
	if r := byKey["tput-full-2"]; r != nil && r.Ratio > 0 {
		out = append(out, fmt.Sprintf("full-path throughput scales ≥ 1.8× from 1 to 2 callers: %s (%s×)", verdict(r.Ratio >= 1.8), num(r.Ratio)))
	}
	return out
}

// cpuRatio is the full path's ratio to native in CPU time: the median of the pairs' ratios
// when the rows were measured in pairs, else the ratio of the medians; 0 when not measured.
func cpuRatio(full, native *Row) float64 {
	switch {
	case full.CPURatio > 0:
		return full.CPURatio
	case native != nil && native.CPU > 0 && full.CPU > 0:
		return full.CPU / native.CPU
	}
	return 0
}

// pairRatios lists sample i of row key over sample i of row base (runs made side by side).
func pairRatios(rows []*Row, key, base string) string {
	var r, b *Row
	for _, x := range rows {
		switch x.Key {
		case key:
			r = x
		case base:
			b = x
		}
	}
	var out []string
	for i := range min(len(r.Samples), len(b.Samples)) {
		out = append(out, fmt.Sprintf("%.2f", r.Samples[i]/b.Samples[i]))
	}
	return strings.Join(out, " ")
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func duration(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	}
	return fmt.Sprintf("%.2f s", ns/1e9)
}

func num(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 0.1:
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprintf("%.3f", x)
}

func writeJSON(path string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
