package mcp_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/host"
)

// BenchmarkRoundTrip measures what MCP adds to a tool call: the same slack.list_channels call
// (against the local fake Slack) made directly with host.Call, over the SDK's in-memory
// transport (JSON-RPC encoding and the SDK's dispatch), over the stdio framing on OS pipes, and over streamable HTTP on loopback
// (plus HTTP, bearer-token check and SSE framing). Compare ns/op across the sub-benchmarks.
func BenchmarkRoundTrip(b *testing.B) {
	const args = `{"limit":1}`
	f := newFixture(b, true)
	b.Run("direct", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			if res := f.h.Call(ctx, host.CallRequest{Tool: "slack.list_channels", Arguments: json.RawMessage(args)}); !res.OK {
				b.Fatal(res.Error)
			}
		}
	})
	run := func(b *testing.B, cs *sdk.ClientSession) {
		params := &sdk.CallToolParams{Name: "slack.list_channels", Arguments: json.RawMessage(args)}
		for b.Loop() {
			res, err := cs.CallTool(context.Background(), params)
			if err != nil || res.IsError {
				b.Fatal(err, res)
			}
		}
	}
	b.Run("mcp-inmemory", func(b *testing.B) {
		cs, _ := f.connect(b)
		run(b, cs)
	})
	b.Run("mcp-stdio-pipes", func(b *testing.B) {
		// The stdio transport's framing over OS pipes, as between an agent and `airlock serve`.
		sr, cw, _ := os.Pipe()
		cr, sw, _ := os.Pipe()
		ss, err := f.srv.SDK().Connect(context.Background(), &sdk.IOTransport{Reader: sr, Writer: sw}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ss.Close()
		cs, err := sdk.NewClient(&sdk.Implementation{Name: "bench", Version: "1"}, nil).
			Connect(context.Background(), &sdk.IOTransport{Reader: cr, Writer: cw}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		run(b, cs)
	})
	b.Run("mcp-http", func(b *testing.B) {
		hf := newHTTPFixture(b)
		token, err := hf.agents.Add("bench", "")
		if err != nil {
			b.Fatal(err)
		}
		cs, _, err := hf.connectHTTP(b, token)
		if err != nil {
			b.Fatal(err)
		}
		run(b, cs)
	})
}
