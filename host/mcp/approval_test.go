package mcp_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
)

// TestApprovalFallbackWithoutElicitation: a client that does not declare elicitation gets the
// pending-approval result for a tool the grant marks confirm; nothing reaches Slack until an
// admin approves, then the same call runs exactly once.
func TestApprovalFallbackWithoutElicitation(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fake := fakeslack.New(botToken)
	url, stop := fake.Start()
	t.Cleanup(stop)
	m, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	sec := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { return botToken, n == "SLACK_BOT_TOKEN" }}}
	h, _ := hosttest.New(t, host.Config{Secrets: sec, Store: st})
	g := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Confirm:     []string{"post_message"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": url}}
	if err := h.LoadModule(ctx, m, wasm, g); err != nil {
		t.Fatal(err)
	}
	f := &fixture{h: h, srv: mcp.NewServer(h, &mcp.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})}
	cs, _ := f.connect(t) // the test client declares no elicitation capability
	args := `{"channel":"C0GENERAL","text":"ship it"}`
	before := len(fake.Messages("C0GENERAL")) // the fake's seeded history

	res := callTool(t, cs, "slack.post_message", args)
	if !res.IsError || !strings.Contains(text(res), host.CodeApprovalPending) {
		t.Fatalf("first call = %q, want an approval_pending tool error", text(res))
	}
	id := regexp.MustCompile(`ap_[0-9a-f]+`).FindString(text(res))
	if id == "" {
		t.Fatalf("no approval ID in %q", text(res))
	}
	if n := len(fake.Messages("C0GENERAL")) - before; n != 0 {
		t.Fatalf("%d messages reached Slack before approval", n)
	}
	if _, err := admin.New(st, h, nil).Approve(ctx, id, "alice"); err != nil {
		t.Fatal(err)
	}
	if res := callTool(t, cs, "slack.post_message", `{"channel":"C0GENERAL","text":"something else"}`); !res.IsError {
		t.Fatalf("a call with other arguments ran on the approval: %q", text(res))
	}
	if res := callTool(t, cs, "slack.post_message", args); res.IsError {
		t.Fatalf("approved call failed: %q", text(res))
	}
	if res := callTool(t, cs, "slack.post_message", args); !res.IsError {
		t.Fatalf("the approval was used twice: %q", text(res))
	}
	if n := len(fake.Messages("C0GENERAL")) - before; n != 1 {
		t.Fatalf("Slack got %d messages, want exactly the approved one", n)
	}
}
