package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/abi"
)

// snapshot is everything an agent must not be able to change.
type snapshot struct {
	Grants    []store.GrantRecord
	Approvals []store.Approval
	Installed []store.Installed
}

func (e *env) snapshot(t *testing.T) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	var err error
	if s.Grants, err = e.st.GrantHistory(ctx, "slack"); err != nil {
		t.Fatal(err)
	}
	if s.Approvals, err = e.st.ListApprovals(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if s.Installed, err = e.st.ListInstalled(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// adminLikeTools are names an agent might try to change grants, approvals or audit with.
var adminLikeTools = []string{
	"admin.grant", "admin.revoke", "admin.approve", "admin.deny", "admin.audit",
	"airlock.grant", "airlock.approve", "airlock.audit_delete", "grants.put", "approvals.approve",
	"slack.grant", "slack.approve", "slack..post_message", ".grant", "admin", "slack.", "slack.post_message.approve",
	"audit.delete", "store.put_grant",
}

// Through host.Call, no tool name reaches the admin functions: grants, approvals and the audit
// chain are unchanged, and every attempt is itself audited.
func TestAgentCannotAdministerThroughCall(t *testing.T) {
	ctx := context.Background()
	e := approvalEnv(t, "")
	id := pendingID(t, e.call("slack.post_message", argsA))
	before := e.snapshot(t)

	for _, tool := range adminLikeTools {
		for _, args := range []string{`{}`, `{"connector":"slack","tools":["*"]}`, `{"id":"` + id + `","status":"approved"}`} {
			res := e.call(tool, args)
			if res.OK {
				t.Errorf("%s(%s) ran: %s", tool, args, res.Data)
				continue
			}
			if res.Error.Code != abi.CodeUnknownTool && res.Error.Code != abi.CodeInvalidArguments {
				t.Errorf("%s: %+v, want unknown_tool", tool, res.Error)
			}
		}
	}
	// Arguments of a real tool cannot smuggle an approval either.
	for _, args := range []string{
		`{"channel":"C0GENERAL","text":"deploy v42 to production","approval":"` + id + `"}`,
		`{"channel":"C0GENERAL","text":"deploy v42 to production","confirmed":true}`,
	} {
		if res := e.call("slack.post_message", args); res.OK {
			t.Errorf("post_message(%s) ran without an admin's approval", args)
		}
	}
	if n := e.slackCalls("chat.postMessage"); n != 0 {
		t.Errorf("upstream posts = %d, want 0", n)
	}
	after := e.snapshot(t)
	// The smuggling attempts that passed validation would have made their own pending requests:
	// only new pending ones are allowed, and the first one is untouched.
	if diff := cmp.Diff(before.Grants, after.Grants); diff != "" {
		t.Errorf("grants changed through the agent path (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(before.Installed, after.Installed); diff != "" {
		t.Errorf("installed connectors changed through the agent path (-before +after):\n%s", diff)
	}
	for _, ap := range after.Approvals {
		if ap.Status != store.ApprovalPending {
			t.Errorf("approval %s is %s after agent calls, want every approval still pending", ap.ID, ap.Status)
		}
	}
	if _, err := e.st.VerifyAudit(ctx); err != nil {
		t.Errorf("VerifyAudit: %v", err)
	}
	recs := e.auditRecords(t, store.AuditFilter{Decision: "error"})
	if len(recs) < len(adminLikeTools) {
		t.Errorf("%d error records, want every refused attempt audited", len(recs))
	}
}

// The MCP tool list an agent sees holds only the granted connector tools; a revoke removes
// them; admin-like names are not tools.
func TestMCPListsOnlyGrantedTools(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	g := e.slackGrant()
	g.Tools = []string{"list_channels", "post_message"}
	g.Scopes = []string{"channels:read", "channels:history"} // post_message lacks chat:write
	e.grant(t, "", g)

	srv := mcp.NewServer(e.h, &mcp.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	list := func() []string {
		t.Helper()
		srv.Sync()
		st, ct := sdk.NewInMemoryTransports()
		ss, err := srv.SDK().Connect(ctx, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Close()
		cs, err := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil).Connect(ctx, ct, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		var names []string
		for tool, err := range cs.Tools(ctx, nil) {
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, tool.Name)
		}
		// Calling an admin-like name is a protocol error or a failed tool, never a change.
		for _, name := range adminLikeTools[:5] {
			res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: json.RawMessage(`{"connector":"slack"}`)})
			if err == nil && !res.IsError {
				t.Errorf("MCP tools/call %s succeeded", name)
			}
		}
		slices.Sort(names)
		return names
	}
	if diff := cmp.Diff([]string{"slack.list_channels"}, list()); diff != "" {
		t.Errorf("MCP tools/list mismatch (-want +got):\n%s", diff)
	}
	for _, name := range list() {
		for _, bad := range []string{"admin", "grant", "approv", "audit", "revoke"} {
			if strings.Contains(name, bad) {
				t.Errorf("MCP lists %s", name)
			}
		}
	}
	if err := e.a.Revoke(ctx, "slack", nil, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 0 {
		t.Errorf("MCP tools/list after revoke = %v, want none", got)
	}
	hist, _ := e.st.GrantHistory(ctx, "slack")
	if len(hist) != 2 {
		t.Errorf("grant history has %d versions, want 2 (grant, revoke): MCP calls changed it", len(hist))
	}
}
