package mcp_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/fakeslack"
)

// traceHeader adds a W3C traceparent to every request, as an instrumented MCP client does.
type traceHeader struct {
	bearer
	traceparent string
}

func (t traceHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("traceparent", t.traceparent)
	return t.bearer.RoundTrip(r)
}

// TestCallJoinsClientTrace: a tool call's span is a child of the client's span, whether the
// client sends its traceparent as an HTTP header or in the request's _meta.
func TestCallJoinsClientTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	fake := fakeslack.New(botToken)
	url, stop := fake.Start()
	t.Cleanup(stop)
	m, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	sec := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { return botToken, n == "SLACK_BOT_TOKEN" }}}
	h, _ := hosttest.New(t, host.Config{Secrets: sec, TracerProvider: tp})
	g := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": url}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	srv := mcp.NewServer(h, &mcp.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	agents := mcp.OpenAgents(filepath.Join(t.TempDir(), "agents.json"))
	token, err := agents.Add("traced", "acme")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.HTTPHandler(agents, nil))
	t.Cleanup(ts.Close)

	cases := []struct {
		name, header string
		meta         map[string]any
		traceID      string
	}{
		{"header", "00-11111111111111111111111111111111-2222222222222222-01", nil, "11111111111111111111111111111111"},
		{"_meta", "", map[string]any{"traceparent": "00-33333333333333333333333333333333-4444444444444444-01"}, "33333333333333333333333333333333"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rt http.RoundTripper = bearer{token, http.DefaultTransport}
			if c.header != "" {
				rt = traceHeader{bearer{token, http.DefaultTransport}, c.header}
			}
			cl := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil)
			cs, err := cl.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: ts.URL + mcp.HTTPPath, MaxRetries: -1,
				HTTPClient: &http.Client{Transport: rt}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "slack.list_channels", Arguments: json.RawMessage(`{}`), Meta: c.meta})
			if err != nil || res.IsError {
				t.Fatalf("list_channels = %v, %v", res, err)
			}
			var found bool
			for _, s := range rec.Ended() {
				if s.Name() == "airlock.call" && s.SpanContext().TraceID().String() == c.traceID {
					found = s.Parent().IsRemote()
				}
			}
			if !found {
				t.Errorf("no airlock.call span in the client's trace %s with the client's span as remote parent", c.traceID)
			}
		})
	}
}
