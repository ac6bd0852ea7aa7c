package mcp_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
)

// TestDeferredCallOverMCP is what an MCP client sees of a deferred call: it asks for one with
// _meta dev.airlock/defer, gets accepted with a job ID at once, finds airlock_job_status in
// tools/list and polls it until the job is done, with the post's own result inside.
func TestDeferredCallOverMCP(t *testing.T) {
	fake := fakeslack.New(botToken)
	url, stop := fake.Start()
	t.Cleanup(stop)
	st, err := store.Open(context.Background(), "sqlite:"+t.TempDir()+"/state.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	for i := range m.Tools {
		if m.Tools[i].Name == "post_message" {
			m.Tools[i].Annotations.Deferrable = true
		}
	}
	sec := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { return botToken, n == "SLACK_BOT_TOKEN" }}}
	h, _ := hosttest.New(t, host.Config{Secrets: sec, Store: st})
	g := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": url}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	f := &fixture{h: h, srv: mcp.NewServer(h, &mcp.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})}
	cs, _ := f.connect(t)
	ctx := context.Background()

	if names := toolNames(t, cs); !slices.Contains(names, host.JobStatusTool) {
		t.Fatalf("tools/list = %v; want %s since slack.post_message is deferrable", names, host.JobStatusTool)
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "slack.post_message", Meta: sdk.Meta{mcp.DeferMetaKey: true},
		Arguments: json.RawMessage(`{"channel":"C0GENERAL","text":"deferred over MCP"}`)})
	if err != nil || res.IsError {
		t.Fatalf("deferred call: %v %s", err, text(res))
	}
	var acc host.Accepted
	if b, _ := json.Marshal(res.StructuredContent); json.Unmarshal(b, &acc) != nil || acc.Status != "accepted" || acc.JobID == "" {
		t.Fatalf("deferred call answered %s; want {status: accepted, job_id}", text(res))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := callTool(t, cs, host.JobStatusTool, `{"job_id":"`+acc.JobID+`"}`)
		if res.IsError {
			t.Fatalf("%s: %s", host.JobStatusTool, text(res))
		}
		var js host.JobStatus
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, &js); err != nil {
			t.Fatalf("job status %s: %v", text(res), err)
		}
		if js.State == "done" {
			var out host.Result
			if err := json.Unmarshal(js.Result, &out); err != nil || !out.OK || out.Meta.Tool != "slack.post_message" {
				t.Fatalf("done job's result = %s (%v); want the post's ok result", js.Result, err)
			}
			break
		}
		if js.State != "queued" && js.State != "running" || time.Now().After(deadline) {
			t.Fatalf("job state %s (%s)", js.State, text(res))
		}
		time.Sleep(50 * time.Millisecond)
	}
	n := 0
	for _, msg := range fake.Messages(fakeslack.General) {
		if msg.Text == "deferred over MCP" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("Slack holds %d copies of the deferred post, want 1", n)
	}
}
