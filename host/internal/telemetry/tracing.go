package telemetry

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracerName is the instrumentation scope of the host's spans.
const TracerName = "github.com/airlock-dev/airlock/host"

// Tracer returns tp's tracer for the host, or a no-op tracer when tp is nil: with tracing off
// no SDK is set up and starting a span costs a few nanoseconds.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return noop.NewTracerProvider().Tracer(TracerName)
	}
	return tp.Tracer(TracerName)
}

// TracingFromEnv returns a tracer provider that exports spans with OTLP over HTTP or, when
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL is "grpc", gRPC, configured by
// the standard OpenTelemetry environment variables (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, _HEADERS, _TIMEOUT, OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER …), and the function that flushes and stops it.
// It returns a nil provider when no endpoint is set, OTEL_SDK_DISABLED=true or
// OTEL_TRACES_EXPORTER=none: tracing is then off.
func TracingFromEnv(ctx context.Context) (trace.TracerProvider, func(context.Context) error, error) {
	nop := func(context.Context) error { return nil }
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") || os.Getenv("OTEL_TRACES_EXPORTER") == "none" ||
		os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")+os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, nop, nil
	}
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch proto {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, nop, errors.New("tracing: OTEL_EXPORTER_OTLP_PROTOCOL=" + proto + " is not supported: airlock exports OTLP over HTTP (http/protobuf, port 4318) or gRPC (grpc, port 4317); set it to one of them, or unset it for http/protobuf")
	}
	if err != nil {
		return nil, nop, errors.New("tracing: the OTLP exporter could not be set up from the OTEL_* variables: " + err.Error())
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(serviceName())))
	if err != nil {
		res = resource.Default()
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

func serviceName() string {
	if s := os.Getenv("OTEL_SERVICE_NAME"); s != "" {
		return s
	}
	return "airlock"
}

var traceContext = propagation.TraceContext{}

// Extract returns ctx with the remote span context of a W3C traceparent (and tracestate) taken
// from the MCP client's HTTP request header or, if that has none, from the request's _meta
// ("traceparent", "tracestate"), so a tool call's span joins the client's trace. A malformed
// traceparent is ignored.
func Extract(ctx context.Context, header http.Header, meta map[string]any) context.Context {
	if header.Get("traceparent") != "" {
		return traceContext.Extract(ctx, propagation.HeaderCarrier(header))
	}
	if tp, ok := meta["traceparent"].(string); ok && tp != "" {
		c := propagation.MapCarrier{"traceparent": tp}
		if ts, ok := meta["tracestate"].(string); ok {
			c["tracestate"] = ts
		}
		return traceContext.Extract(ctx, c)
	}
	return ctx
}

// Inject sets the traceparent (and tracestate) header of an outbound request to ctx's span,
// replacing any the plugin set, when ctx's span is sampled; otherwise it leaves headers alone.
func Inject(ctx context.Context, headers *map[string][]string) {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return
	}
	h := http.Header{}
	traceContext.Inject(ctx, propagation.HeaderCarrier(h))
	if *headers == nil {
		*headers = map[string][]string{}
	}
	for k := range *headers {
		if strings.EqualFold(k, "traceparent") || strings.EqualFold(k, "tracestate") {
			delete(*headers, k)
		}
	}
	for k, v := range h {
		(*headers)[k] = v
	}
}
