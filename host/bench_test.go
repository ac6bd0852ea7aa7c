package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/internal/runtime"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// The benchmarks here are the `go test -bench` form of the rows `make bench`
// (internal/cmd/bench) prints: BenchmarkNativeSlack is its row 1, BenchmarkCallSlack row 2,
// BenchmarkCallNoop and BenchmarkRuntime row 3 and the airlock half of row 4. internal/cmd/bench
// runs BenchmarkRuntime in a `go test` subprocess, because it cannot import host/internal/runtime.

const benchPostArgs = `{"channel":"C0GENERAL","text":"benchmark: deploy finished"}`

// discardSink is an audit.Sink that keeps nothing, so a long benchmark's memory does not grow.
type discardSink struct{}

func (discardSink) Write(context.Context, audit.Event) error { return nil }

// benchLogger logs JSON lines at Info, as a production host would (airlock serve --log-json
// --log-level info), into nothing: anything the call path logs per call is formatted and so
// counted.
func benchLogger() *slog.Logger {
	return slog.New(secret.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// benchSlack serves a fake Slack on loopback (it remembers at most fakeslack.MaxKept requests,
// so a long benchmark does not grow the heap).
func benchSlack(b *testing.B) string {
	b.Helper()
	url, stop := fakeslack.New(canary).Start()
	b.Cleanup(stop)
	return url
}

// benchHost starts a host that audits into nothing and logs at Info into nothing.
func benchHost(b *testing.B) *host.Host {
	b.Helper()
	h, _ := hosttest.New(b, host.Config{Secrets: secrets(), Audit: discardSink{}, Logger: benchLogger()})
	return h
}

func BenchmarkNativeSlack(b *testing.B) {
	url := benchSlack(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if err := fakeslack.PostMessage(context.Background(), client, url, canary, "C0GENERAL", "benchmark: deploy finished"); err != nil {
			b.Fatal(err)
		}
	}
}

// loadBenchSlack loads the Slack connector into h, routed to the fake Slack at url.
func loadBenchSlack(b *testing.B, h *host.Host, url string) {
	b.Helper()
	m, wasm := hosttest.Connector(b, "./plugins/slack", "manifests/slack.yaml")
	g := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": url}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkCallSlack(b *testing.B) {
	url := benchSlack(b)
	h := benchHost(b)
	loadBenchSlack(b, h, url)
	req := host.CallRequest{Tool: "slack.post_message", Arguments: json.RawMessage(benchPostArgs), Agent: "bench"}
	ctx := context.Background()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if res := h.Call(ctx, req); !res.OK {
			b.Fatalf("post_message: %+v", res.Error)
		}
	}
}

// BenchmarkCallSlackObserved is BenchmarkCallSlack on three hosts — no telemetry, Prometheus
// metrics, metrics and tracing (every span sampled, batched to an exporter that drops them) —
// run as sub-benchmarks so that -count interleaves them and a loaded machine's drift hits all three.
func BenchmarkCallSlackObserved(b *testing.B) {
	url := benchSlack(b)
	for _, v := range []struct {
		name             string
		metrics, tracing bool
	}{{"off", false, false}, {"metrics", true, false}, {"metrics+tracing", true, true}} {
		cfg := host.Config{Secrets: secrets(), Audit: discardSink{}, Logger: benchLogger()}
		if v.metrics {
			cfg.Metrics = host.NewMetrics(nil)
		}
		if v.tracing {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(dropSpans{}))
			b.Cleanup(func() { tp.Shutdown(context.Background()) })
			cfg.TracerProvider = tp
		}
		h, _ := hosttest.New(b, cfg)
		loadBenchSlack(b, h, url)
		req := host.CallRequest{Tool: "slack.post_message", Arguments: json.RawMessage(benchPostArgs), Agent: "bench"}
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if res := h.Call(context.Background(), req); !res.OK {
					b.Fatalf("post_message: %+v", res.Error)
				}
			}
		})
	}
}

// dropSpans is a span exporter that drops what it is given.
type dropSpans struct{}

func (dropSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (dropSpans) Shutdown(context.Context) error                             { return nil }

// noopHost starts a host that audits into nothing and logs into logger, with hostile.noop
// granted: a tool call that does no I/O.
func noopHost(tb testing.TB, logger *slog.Logger) *host.Host {
	tb.Helper()
	m, wasm := hosttest.Connector(tb, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, _ := hosttest.New(tb, host.Config{Secrets: secrets(), Audit: discardSink{}, Logger: logger})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"noop"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "env:HOSTILE_TOKEN", "other_key": "env:OTHER_KEY"})}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		tb.Fatal(err)
	}
	return h
}

func BenchmarkCallNoop(b *testing.B) {
	h := noopHost(b, benchLogger())
	req := host.CallRequest{Tool: "hostile.noop", Arguments: json.RawMessage(`{}`), Agent: "bench"}
	ctx := context.Background()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if res := h.Call(ctx, req); !res.OK {
			b.Fatalf("noop: %+v", res.Error)
		}
	}
}

// nopHandler serves no host function: the runtime benchmarks call exports that make none.
type nopHandler struct{}

func (nopHandler) HTTP(context.Context, []byte) []byte { return []byte(`{}`) }
func (nopHandler) DB(context.Context, []byte) []byte   { return []byte(`{}`) }
func (nopHandler) Config(string) (string, bool)        { return "", false }
func (nopHandler) Log(int, string)                     {}

// cannedSlack answers airlock_http as the fake Slack answers chat.postMessage, without a network.
type cannedSlack struct{ nopHandler }

var cannedSlackReply = func() []byte {
	body := `{"ok":true,"channel":"C0GENERAL","ts":"1795443394.714321","message":{"type":"message",` +
		`"user":"U0BOT","bot_id":"B0BOT","text":"benchmark: deploy finished","ts":"1795443394.714321","team":"T0AIRLOCK"}}`
	b, _ := json.Marshal(map[string]any{"status": 200, "body": []byte(body), "headers": map[string][]string{
		"Content-Type": {"application/json; charset=utf-8"}, "Date": {"Mon, 23 Nov 2026 14:16:34 GMT"}}})
	return b
}()

// cannedSlackResponse is that answer decoded; HTTP sends it as the host would for the request
// (headers named by it only, the body raw when it asks, as pdk.HTTP does).
var cannedSlackResponse = func() abi.HTTPResponse {
	var resp abi.HTTPResponse
	if err := abi.DecodeHTTPResponse(cannedSlackReply, &resp); err != nil {
		panic(err)
	}
	return resp
}()

func (cannedSlack) HTTP(_ context.Context, req []byte) []byte {
	var r abi.HTTPRequest
	if abi.DecodeHTTPRequest(req, &r) != nil || !r.RawBody && len(r.ResponseHeaders) == 0 {
		return cannedSlackReply
	}
	resp := cannedSlackResponse
	if len(r.ResponseHeaders) > 0 {
		resp.Headers = abi.KeepHeaders(resp.Headers, r.ResponseHeaders)
	}
	if r.RawBody {
		return abi.AppendHTTPResponseRaw(nil, &resp)
	}
	return abi.AppendHTTPResponse(nil, &resp)
}

// BenchmarkRuntime calls the sandbox directly (no validation, egress or audit): the hostile
// plugin, written straight against the ABI (its echo moves one byte per kernel call, on
// purpose), gopdk, the unmodified extism/go-pdk (the same module internal/cmd/bench runs under
// extism/go-sdk), and the Slack connector with a canned answer.
func BenchmarkRuntime(b *testing.B) {
	eng, err := runtime.NewEngine(runtime.EngineConfig{CacheDir: b.TempDir(), Logger: benchLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close(context.Background()) })
	payloads := []struct {
		name string
		in   []byte
	}{
		{"noop", nil},
		{"echo_100B", bytes.Repeat([]byte("x"), 100)},
		{"echo_10KB", bytes.Repeat([]byte("x"), 10<<10)},
	}
	for _, plugin := range []string{"hostile", "gopdk"} {
		b.Run(plugin, func(b *testing.B) {
			path, err := pluginbuild.Build(context.Background(), pluginbuild.Options{Package: "./host/testdata/plugins/" + plugin})
			if err != nil {
				b.Fatal(err)
			}
			wasm, err := os.ReadFile(path)
			if err != nil {
				b.Fatal(err)
			}
			mod, err := eng.Load(context.Background(), runtime.Options{Name: plugin, Wasm: wasm, Exports: []string{"noop", "echo"}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { mod.Close(context.Background()) })
			for _, p := range payloads {
				export := "echo"
				if p.in == nil {
					export = "noop"
				}
				b.Run(p.name, func(b *testing.B) {
					ctx := context.Background()
					b.SetBytes(int64(len(p.in)))
					b.ReportAllocs()
					defer reportCPU(b)()
					for b.Loop() {
						out, err := mod.Call(ctx, "bench", export, p.in, nopHandler{})
						if err != nil || len(out) != len(p.in) {
							b.Fatalf("%s: %d bytes, %v", export, len(out), err)
						}
					}
				})
			}
		})
	}
	// The Slack connector's post_message with a canned answer to its one HTTP request: the
	// connector's own work (decode the arguments, encode the request, decode the answer, encode
	// the result) without egress, network or policy.
	b.Run("slack/post_message", func(b *testing.B) {
		_, wasm := hosttest.Connector(b, "./plugins/slack", "manifests/slack.yaml")
		mod, err := eng.Load(context.Background(), runtime.Options{Name: "slack", Wasm: wasm, Exports: []string{"post_message"}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { mod.Close(context.Background()) })
		ctx := context.Background()
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := mod.Call(ctx, "bench", "post_message", []byte(benchPostArgs), cannedSlack{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
