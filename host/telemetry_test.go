package host_test

// Observability (issue 17): the metrics' label sets stay closed whatever callers send, a retried
// call's trace has the documented span tree without a secret in it, and each call logs one line
// with the request ID of its audit record.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/fakeslack"
)

// scrape returns the text exposition of a metrics handler.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	if rr.Code != 200 {
		t.Fatalf("GET /metrics = %d", rr.Code)
	}
	return rr.Body.String()
}

// airlockSeries counts the airlock_ sample lines of an exposition (each histogram bucket is one).
func airlockSeries(text string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "airlock_") {
			n++
		}
	}
	return n
}

func randName(r *rand.Rand) string {
	const chars = "abcdefghijklmnopqrstuvwxyz_.-/{}\"\\ \n"
	b := make([]byte, 1+r.IntN(24))
	for i := range b {
		b[i] = chars[r.IntN(len(chars))]
	}
	return string(b)
}

// TestMetricsCardinality: 10,000 calls with random tool names, agents and subjects — an embedder
// even vouching for every agent name — add a bounded number of series, none after the first half.
func TestMetricsCardinality(t *testing.T) {
	fake := fakeslack.New(canary)
	url, stop := fake.Start()
	t.Cleanup(stop)
	metrics := host.NewMetrics(&host.MetricsOptions{Agent: func(string) bool { return true }})
	h, _ := resilientHost(t, slackOpts{cfg: host.Config{Metrics: metrics}, target: url})
	r := rand.New(rand.NewPCG(1, 2))
	var half int
	for i := range 10_000 {
		req := host.CallRequest{Agent: randName(r), Subject: randName(r)}
		switch i % 20 {
		case 0:
			req.Tool, req.Arguments = "slack.list_channels", json.RawMessage(`{}`)
		case 1, 2, 3:
			req.Tool, req.Arguments = "slack.post_message", json.RawMessage(`{"channel":"`+hex.EncodeToString([]byte(randName(r)))+`"}`)
		case 4, 5, 6, 7, 8:
			req.Tool = "slack." + randName(r)
		default:
			req.Tool = randName(r) + "." + randName(r)
		}
		h.Call(context.Background(), req)
		if i == 4_999 {
			half = airlockSeries(scrape(t, metrics.Handler()))
		}
	}
	text := scrape(t, metrics.Handler())
	full := airlockSeries(text)
	if full != half {
		t.Errorf("series grew from %d after 5,000 hostile calls to %d after 10,000; want no growth", half, full)
	}
	if full > 700 {
		t.Errorf("%d airlock_ series after 10,000 calls with random names; want a bound well below the calls' count", full)
	}
	if !strings.Contains(text, `airlock_tool_calls_total{category="correctable",code="unknown_tool",connector="other",outcome="error",tool="other"}`) {
		t.Errorf("unknown connectors and tools are not counted under \"other\":\n%s", grepLines(text, "airlock_tool_calls_total"))
	}
	if strings.Contains(text, canary) {
		t.Error("the canary secret is in the metrics")
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// otlpReceiver is an in-process OTLP/HTTP trace receiver.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	o := &otlpReceiver{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				o.spans = append(o.spans, ss.Spans...)
			}
		}
		o.mu.Unlock()
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	}))
	t.Cleanup(o.Close)
	return o
}

// TestTraceOfARetriedCall: one call whose GET the upstream answers 503 once, then 200, under a
// client's traceparent, is one trace: the call span (child of the client's span) with
// validation, plugin and audit append, and under the plugin one span per attempt.
func TestTraceOfARetriedCall(t *testing.T) {
	recv := newOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	tp, shutdown, err := host.TracingFromEnv(context.Background())
	if err != nil || tp == nil {
		t.Fatalf("TracingFromEnv = %v, %v; want a provider", tp, err)
	}
	fake := fakeslack.New(canary)
	var hits atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	h, rec := resilientHost(t, slackOpts{cfg: host.Config{TracerProvider: tp}, target: front.URL})

	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": parent})
	res := h.Call(ctx, host.CallRequest{Tool: "slack.list_channels", Arguments: json.RawMessage(`{}`), Agent: "a"})
	if !res.OK {
		t.Fatalf("list_channels = %+v", res.Error)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	recv.mu.Lock()
	spans := recv.spans
	recv.mu.Unlock()

	byID := map[string]*tracepb.Span{}
	children := map[string][]string{}
	var root *tracepb.Span
	for _, s := range spans {
		byID[hex.EncodeToString(s.SpanId)] = s
		if hex.EncodeToString(s.TraceId) != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("span %s is in trace %x, not the client's", s.Name, s.TraceId)
		}
		if s.Name == "airlock.call" {
			root = s
		}
		for _, kv := range s.Attributes {
			if strings.Contains(kv.String(), canary) {
				t.Errorf("span %s attribute %s holds the canary secret", s.Name, kv.Key)
			}
		}
	}
	if root == nil {
		t.Fatalf("no airlock.call span among %d spans", len(spans))
	}
	if got := hex.EncodeToString(root.ParentSpanId); got != "00f067aa0ba902b7" {
		t.Errorf("call span's parent = %s, want the client's span 00f067aa0ba902b7", got)
	}
	for _, s := range spans {
		if p := hex.EncodeToString(s.ParentSpanId); byID[p] != nil {
			children[byID[p].Name] = append(children[byID[p].Name], s.Name)
		}
	}
	if got := strings.Join(children["airlock.call"], ","); got != "validate,plugin,audit.append" {
		t.Errorf("children of airlock.call = %s, want validate,plugin,audit.append", got)
	}
	var attempts []string
	for _, s := range spans {
		if s.Name == "HTTP GET" {
			attempts = append(attempts, fmt.Sprintf("attempt %s status %s", attr(s, "airlock.attempt"), attr(s, "http.response.status_code")))
		}
	}
	if got := strings.Join(attempts, "; "); got != "attempt 1 status 503; attempt 2 status 200" || strings.Join(children["plugin"], ",") != "HTTP GET,HTTP GET" {
		t.Errorf("outbound spans under plugin = %q (children %v), want attempt 1 status 503; attempt 2 status 200", got, children["plugin"])
	}
	if got := attr(root, "airlock.request_id"); got != res.Meta.RequestID {
		t.Errorf("call span's request ID = %q, want the result's %q", got, res.Meta.RequestID)
	}
	var audited bool
	for _, e := range rec.Audit.Events() {
		audited = audited || (e.Kind == "call" && e.RequestID == res.Meta.RequestID)
	}
	if !audited {
		t.Errorf("no audit record with the trace's request ID %s", res.Meta.RequestID)
	}
}

func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			if _, ok := kv.Value.Value.(*commonpb.AnyValue_StringValue); ok {
				return kv.Value.GetStringValue()
			}
			return fmt.Sprint(kv.Value.GetIntValue())
		}
	}
	return ""
}

// TestTracingOffByDefault: without OTEL_* variables there is no provider, calls run, and their
// log lines carry no trace ID.
func TestTracingOffByDefault(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tp, _, err := host.TracingFromEnv(context.Background())
	if tp != nil || err != nil {
		t.Fatalf("TracingFromEnv with no endpoint = %v, %v; want nil, nil", tp, err)
	}
	h, rec, _ := slackHost(t)
	if res := call(h, "slack.list_channels", `{}`); !res.OK {
		t.Fatalf("list_channels without tracing = %+v", res.Error)
	}
	if logs := rec.Logs(); !strings.Contains(logs, `"msg":"tool call"`) || strings.Contains(logs, "trace_id") {
		t.Errorf("without tracing, want a tool call line without trace_id:\n%s", logs)
	}
}

// TestOneLogLinePerCall: each call logs one "tool call" line whose request ID is its audit
// record's, with the agent, connector, tool, outcome, code and duration.
func TestOneLogLinePerCall(t *testing.T) {
	h, rec, _ := slackHost(t)
	ok := call(h, "slack.post_message", `{"channel":"C0GENERAL","text":"hi"}`)
	bad := call(h, "slack.post_message", `{"channel":"C0GENERAL"}`)
	if !ok.OK || bad.OK || bad.Error.Code != abi.CodeInvalidArguments {
		t.Fatalf("calls = %+v, %+v", ok.Error, bad.Error)
	}
	var lines []map[string]any
	for _, l := range bytes.Split([]byte(rec.Logs()), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil && m["msg"] == "tool call" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d tool call log lines for 2 calls:\n%s", len(lines), rec.Logs())
	}
	for i, want := range []*host.Result{ok, bad} {
		l := lines[i]
		code := ""
		if want.Error != nil {
			code = want.Error.Code
		}
		if l["request_id"] != want.Meta.RequestID || l["agent"] != "test-agent" || l["connector"] != "slack" ||
			l["tool"] != "slack.post_message" || l["code"] != code || l["duration_ms"] == nil {
			t.Errorf("log line %d = %v, want request_id %s code %q", i, l, want.Meta.RequestID, code)
		}
	}
	var ids []string
	for _, e := range rec.Audit.Events() {
		if e.Kind == "call" {
			ids = append(ids, e.RequestID)
		}
	}
	if len(ids) != 2 || ids[0] != ok.Meta.RequestID || ids[1] != bad.Meta.RequestID {
		t.Errorf("audit call IDs = %v, want the logged ones", ids)
	}
}

// TestTracePropagatedPerGrant: an upstream sees the call's traceparent only when the grant
// says propagate_trace, and the plugin cannot forge one then.
func TestTracePropagatedPerGrant(t *testing.T) {
	fake := fakeslack.New(canary)
	var seen atomic.Value
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("Traceparent"))
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	const parent = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": parent})
	for _, propagate := range []bool{false, true} {
		h, _ := resilientHost(t, slackOpts{cfg: host.Config{TracerProvider: tp}, target: front.URL,
			grant: func(g *manifest.Grant) { g.PropagateTrace = propagate }})
		if res := h.Call(ctx, host.CallRequest{Tool: "slack.list_channels", Arguments: json.RawMessage(`{}`)}); !res.OK {
			t.Fatalf("list_channels = %+v", res.Error)
		}
		got, _ := seen.Load().(string)
		switch {
		case !propagate && got != "":
			t.Errorf("without propagate_trace the upstream saw traceparent %q", got)
		case propagate && !strings.HasPrefix(got, "00-5bf92f3577b34da6a3ce929d0e0e4736-"):
			t.Errorf("with propagate_trace the upstream saw traceparent %q, want the call's trace", got)
		}
	}
}

// grpcReceiver is an in-process OTLP/gRPC trace receiver.
type grpcReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (g *grpcReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			g.spans = append(g.spans, ss.Spans...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestTraceOverGRPC: with OTEL_EXPORTER_OTLP_PROTOCOL=grpc, as a collector's port 4317 expects,
// a call's spans reach an OTLP/gRPC receiver.
func TestTraceOverGRPC(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	recv := &grpcReceiver{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, recv)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+l.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	tp, shutdown, err := host.TracingFromEnv(context.Background())
	if err != nil || tp == nil {
		t.Fatalf("TracingFromEnv with protocol grpc = %v, %v; want a provider", tp, err)
	}
	fake := fakeslack.New(canary)
	url, stop := fake.Start()
	t.Cleanup(stop)
	h, _ := resilientHost(t, slackOpts{cfg: host.Config{TracerProvider: tp}, target: url})
	res := h.Call(context.Background(), host.CallRequest{Tool: "slack.list_channels", Arguments: json.RawMessage(`{}`)})
	if !res.OK {
		t.Fatalf("list_channels = %+v", res.Error)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	var names []string
	for _, s := range recv.spans {
		names = append(names, s.Name)
		if s.Name == "airlock.call" && attr(s, "airlock.request_id") != res.Meta.RequestID {
			t.Errorf("call span's request ID = %q, want %q", attr(s, "airlock.request_id"), res.Meta.RequestID)
		}
	}
	if !slices.Contains(names, "airlock.call") || !slices.Contains(names, "HTTP GET") {
		t.Errorf("spans over gRPC = %v, want airlock.call and HTTP GET among them", names)
	}
}

// TestBreakerStateMetric: an upstream that keeps failing opens its host's breaker, and the
// scrape says so per connector and granted host: 2 (open) for slack.com, 0 for its other
// granted hosts; no series for a host outside the grant.
func TestBreakerStateMetric(t *testing.T) {
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(front.Close)
	metrics := host.NewMetrics(nil)
	h, _ := resilientHost(t, slackOpts{cfg: host.Config{Metrics: metrics}, target: front.URL})
	const closed = `airlock_breaker_state{connector="slack",host="slack.com"} 0`
	if text := scrape(t, metrics.Handler()); !strings.Contains(text, closed) {
		t.Fatalf("before any call, want %s; got:\n%s", closed, grepLines(text, "airlock_breaker_state"))
	}
	const open = `airlock_breaker_state{connector="slack",host="slack.com"} 2`
	var text string
	for range 10 {
		if res := call(h, "slack.list_channels", `{}`); res.OK {
			t.Fatal("list_channels succeeded against a failing upstream")
		}
		if text = scrape(t, metrics.Handler()); strings.Contains(text, open) {
			break
		}
	}
	if !strings.Contains(text, open) {
		t.Fatalf("after repeated 503s, want %s; got:\n%s", open, grepLines(text, "airlock_breaker_state"))
	}
	if strings.Contains(text, `airlock_breaker_state{connector="slack",host="other"}`) {
		t.Errorf("a breaker state series for an ungranted host:\n%s", grepLines(text, "airlock_breaker_state"))
	}
}

// TestPluginCompileMetrics: the first load into an empty compilation cache is a miss, a second
// host on the same cache directory a hit; each load makes at least one instance, timed.
func TestPluginCompileMetrics(t *testing.T) {
	fake := fakeslack.New(canary)
	url, stop := fake.Start()
	t.Cleanup(stop)
	cache := t.TempDir()
	for _, want := range []string{"miss", "hit"} {
		metrics := host.NewMetrics(nil)
		h, _ := resilientHost(t, slackOpts{cfg: host.Config{Metrics: metrics, CacheDir: cache}, target: url})
		if res := call(h, "slack.list_channels", `{}`); !res.OK {
			t.Fatalf("list_channels = %+v", res.Error)
		}
		text := scrape(t, metrics.Handler())
		if line := `airlock_plugin_compile_seconds_count{cache="` + want + `",connector="slack"} 1`; !strings.Contains(text, line) {
			t.Errorf("want %s; got:\n%s", line, grepLines(text, "airlock_plugin_compile_seconds_count"))
		}
		if !regexp.MustCompile(`(?m)^airlock_plugin_instantiate_seconds_count\{connector="slack"\} [1-9]`).MatchString(text) {
			t.Errorf("no instance creation timed:\n%s", grepLines(text, "airlock_plugin_instantiate_seconds_count"))
		}
	}
}
