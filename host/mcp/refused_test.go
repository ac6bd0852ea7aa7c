package mcp_test

import (
	"context"
	"encoding/json"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// A call of a tool the agent may not use — never granted, or a name never offered — goes to the
// host first, which refuses it before anything runs and records the refusal in the audit trail;
// the agent then gets the protocol's "unknown tool" error (-32602), as the MCP specification says
// for a name the server never listed. (A tool listed and then revoked is an isError result:
// TestHTTPUngrantedToolIsAResult.)
func TestRefusedCallsAreAudited(t *testing.T) {
	f := newFixture(t, false)
	cs, _ := f.connect(t)
	seeded := len(f.fake.Messages("C0GENERAL"))
	for _, name := range []string{"slack.post_message", "nosuch.tool"} {
		res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: json.RawMessage(`{"channel":"C0GENERAL","text":"hi"}`)})
		if err == nil && !res.IsError {
			t.Errorf("call of unserved %s succeeded: %q", name, text(res))
		}
		if last := lastCall(t, f.rec); last.Tool != name || last.Outcome == "ok" {
			t.Errorf("audit of the refused call of %s = %+v; want a refused call record", name, last)
		}
	}
	if n := len(f.fake.Messages("C0GENERAL")); n != seeded {
		t.Errorf("a refused call reached Slack (%d messages, %d before)", n, seeded)
	}
}
