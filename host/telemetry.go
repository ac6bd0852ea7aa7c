package host

import (
	"context"
	"log/slog"
	"net/http"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/internal/egress"
	"github.com/airlock-dev/airlock/host/internal/telemetry"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/abi"
)

// Metrics holds a host's Prometheus metrics (see README.md, "Observability", for the families).
// Serve Handler on a listener of its own: metrics name connectors, tools and hosts. Give one
// Metrics to one Host. Safe for concurrent use.
type Metrics struct{ m *telemetry.Metrics }

// MetricsOptions configures NewMetrics. A nil *MetricsOptions means the defaults.
type MetricsOptions struct {
	// Agent reports whether an agent name may be a label value: only names from a closed set an
	// admin controls (those registered with 'airlock agent add') should. Nil: every call counts
	// under agent "other". At most 256 distinct names are labels whatever it says.
	Agent func(name string) bool
}

// NewMetrics returns an empty set of metrics, to pass as Config.Metrics.
func NewMetrics(opts *MetricsOptions) *Metrics {
	var cfg telemetry.MetricsConfig
	if opts != nil {
		cfg.Agent = opts.Agent
	}
	return &Metrics{telemetry.NewMetrics(cfg)}
}

// Handler serves the metrics in the Prometheus text format, or OpenMetrics when asked.
func (m *Metrics) Handler() http.Handler { return m.m.Handler() }

// AuthRefused counts one request refused for a missing, wrong or revoked token on listener
// ("mcp" or "admin"; anything else counts as "other").
func (m *Metrics) AuthRefused(listener string) { m.m.AuthRefused(listener) }

// TracingFromEnv returns a tracer provider configured by the standard OTEL_* environment
// variables (OTLP over HTTP), to pass as Config.TracerProvider, and the function that flushes
// and stops it. With no OTLP endpoint set it returns nil: tracing off, at no cost.
func TracingFromEnv(ctx context.Context) (trace.TracerProvider, func(context.Context) error, error) {
	return telemetry.TracingFromEnv(ctx)
}

// metrics returns the host's metrics, nil without Config.Metrics.
func (h *Host) metrics() *telemetry.Metrics {
	if h.cfg.Metrics == nil {
		return nil
	}
	return h.cfg.Metrics.m
}

// finishCall records a finished call (started at start, d ago) in the metrics, its span and the
// log: one line per call, timed at the call's end (start + d: no second reading of the clock),
// with the request ID the audit record and the trace carry.
func (h *Host) finishCall(span trace.Span, req *CallRequest, res *Result, ev *audit.Event, start time.Time, d time.Duration) {
	tool := ""
	if ev.Connector != "" && (res.Error == nil || res.Error.Code != abi.CodeUnknownTool) {
		_, tool, _ = strings.Cut(req.Tool, ".") // declared: an undeclared tool fails with unknown_tool
	}
	var code, category string
	if res.Error != nil {
		code, category = res.Error.Code, string(res.Error.Category)
	}
	h.metrics().Call(telemetry.CallLabels{Connector: ev.Connector, Tool: tool, Outcome: ev.Outcome, Code: code,
		Category: category, Agent: req.Agent}, d)
	if h.logger.Enabled(context.Background(), slog.LevelInfo) {
		// LogAttrs with typed values: no boxing of each value into an interface.
		attrs := [8]slog.Attr{slog.String("request_id", res.Meta.RequestID), slog.String("agent", req.Agent),
			slog.String("connector", ev.Connector), slog.String("tool", req.Tool), slog.String("outcome", ev.Outcome),
			slog.String("code", code), slog.Float64("duration_ms", res.Meta.DurationMS)}
		n := 7
		if sc := span.SpanContext(); sc.IsValid() {
			attrs[n] = slog.String("trace_id", sc.TraceID().String())
			n++
		}
		// As Logger.LogAttrs, but without walking the stack for the record's PC on every call:
		// the line is always logged from here.
		pc := callLinePC.Load()
		if pc == 0 {
			var pcs [1]uintptr
			goruntime.Callers(1, pcs[:])
			pc = pcs[0]
			callLinePC.Store(pc)
		}
		_ = secret.LogAttrs(context.Background(), h.logger.Handler(), start.Add(d), slog.LevelInfo, "tool call", pc, attrs[:n]...)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.String("airlock.connector", ev.Connector), attribute.String("airlock.tool", tool),
			attribute.String("airlock.outcome", ev.Outcome), attribute.String("airlock.error.code", code),
			attribute.Int("airlock.requests", res.Meta.Requests))
		if res.Error != nil {
			span.SetStatus(codes.Error, code)
		}
	}
	span.End()
}

// callLinePC is the program counter of finishCall's log line (slog.Record.PC), found once.
var callLinePC atomic.Uintptr

// startCall starts a call's span: a child of the client's trace when ctx carries one. With
// tracing off and no recording span in ctx it returns ctx as it is, with the span ctx holds (the
// client's span context, for the log line's trace_id, or none): the no-op tracer would only
// store it again, in a context and an allocation per call.
func (h *Host) startCall(ctx context.Context, req *CallRequest, requestID string) (context.Context, trace.Span) {
	if !h.tracing {
		if span := trace.SpanFromContext(ctx); !span.IsRecording() {
			return ctx, span
		}
	}
	ctx, span := h.tracer.Start(ctx, "airlock.call", serverKind)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("airlock.request_id", requestID), attribute.String("airlock.tool.name", telemetryName(req.Tool)))
	}
	return ctx, span
}

// telemetryName bounds a caller-supplied name before it goes into a span.
func telemetryName(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}

// span starts a child span of the call (validation, approval, plugin, audit append). With
// tracing off it returns ctx as it is: the no-op tracer would only store again the no-op span
// startCall already put in ctx (a context and an allocation per span, for nothing).
func (h *Host) span(ctx context.Context, name string) (context.Context, trace.Span) {
	if !h.tracing {
		return ctx, trace.SpanFromContext(ctx)
	}
	return h.tracer.Start(ctx, name)
}

// serverKind is startCall's span option, made once (an option is an interface value).
var serverKind = trace.WithSpanKind(trace.SpanKindServer)

// auditCall appends the call's record, timed for the metrics and traced.
func (h *Host) auditCall(ctx context.Context, ev *audit.Event) error {
	m := h.metrics()
	var start time.Time
	if m != nil { // the clock is read for the metrics only
		start = time.Now()
	}
	_, span := h.span(ctx, "audit.append")
	err := h.audit.Write(ctx, *ev)
	if err != nil {
		span.SetStatus(codes.Error, "audit write failed")
	}
	span.End()
	if m != nil {
		m.AuditAppend(time.Since(start), err != nil)
	}
	return err
}

// observeRequest records one outbound hop in the metrics and, as a span of its own placed at
// the time it ran, under the plugin's span.
func (hc *callHandler) observeRequest(r egress.Record) {
	hc.h.metrics().Request(hc.ev.Connector, hc.c.hosts.Label(r.Host), r)
	if !trace.SpanFromContext(hc.ctx).IsRecording() {
		return
	}
	end := time.Now()
	_, span := hc.h.tracer.Start(hc.ctx, "HTTP "+telemetry.Method(r.Method), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(end.Add(-r.Duration)))
	span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("server.address", r.Host),
		attribute.String("url.path", hc.h.scrub.String(pathOf(r.URL))), attribute.Int("http.response.status_code", r.Status),
		attribute.Int("airlock.attempt", r.Attempt), attribute.Int("airlock.redirect", r.Redirect),
		attribute.Float64("airlock.retry_wait_ms", durationMS(r.Wait)), attribute.String("airlock.decision", r.Decision))
	if r.Decision != egress.DecisionAllowed || r.Status >= 500 {
		span.SetStatus(codes.Error, r.Decision)
	}
	span.End(trace.WithTimestamp(end))
}

// pathOf is the path of a record's URL (scheme://host/path, no query).
func pathOf(u string) string {
	if _, rest, ok := strings.Cut(u, "://"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return rest[i:]
		}
		return "/"
	}
	return u
}

// hostCollector reports a host's instance pools and pending approvals at each scrape.
type hostCollector struct{ h *Host }

var (
	instancesDesc = prometheus.NewDesc("airlock_instances", "Plugin instances per connector by state (busy, idle, fresh).", []string{"connector", "state"}, nil)
	approvalsDesc = prometheus.NewDesc("airlock_approvals_pending", "Calls waiting for a human's approval.", nil, nil)
	connectorDesc = prometheus.NewDesc("airlock_connectors", "Loaded connectors.", nil, nil)
	queueDesc     = prometheus.NewDesc("airlock_audit_queue_depth", "Audit records waiting in the sink's queue to be appended.", nil, nil)
	breakerDesc   = prometheus.NewDesc("airlock_breaker_state", "Circuit breaker state per connector and granted host: 0 closed, 1 half-open, 2 open (the worst of the hosts a wildcard rule stands for).", []string{"connector", "host"}, nil)
	droppedDesc   = prometheus.NewDesc("airlock_audit_dropped_total", "Audit records a fail-open sink dropped, or any sink gave up on.", nil, nil)
)

func (c hostCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- instancesDesc
	ch <- approvalsDesc
	ch <- connectorDesc
	ch <- droppedDesc
	ch <- queueDesc
	ch <- breakerDesc
}

func (c hostCollector) Collect(ch chan<- prometheus.Metric) {
	c.h.mu.RLock()
	conns := make(map[string]*connector, len(c.h.connectors))
	for n, cn := range c.h.connectors {
		conns[n] = cn
	}
	c.h.mu.RUnlock()
	ch <- prometheus.MustNewConstMetric(connectorDesc, prometheus.GaugeValue, float64(len(conns)))
	now := time.Now()
	for name, cn := range conns {
		s := cn.module.Stats()
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(s.Live-s.Idle-s.Fresh), name, "busy")
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(s.Idle), name, "idle")
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(s.Fresh), name, "fresh")
		if cn.egress != nil {
			for host, v := range cn.hosts.BreakerStates(cn.egress.BreakerStates(now)) {
				ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, v, name, host)
			}
		}
	}
	if d, ok := c.h.audit.(interface{ Dropped() int64 }); ok {
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(d.Dropped()))
	}
	if q, ok := c.h.audit.(interface{ Queued() int }); ok {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(q.Queued()))
	}
	if c.h.store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if list, err := c.h.store.ListApprovals(ctx, store.ApprovalPending); err == nil {
			ch <- prometheus.MustNewConstMetric(approvalsDesc, prometheus.GaugeValue, float64(len(list)))
		}
	}
}
