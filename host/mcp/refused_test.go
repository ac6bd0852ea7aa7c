package mcp_test

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/abi"
)

// A call of a tool the agent may not use — revoked after it listed the tools, or never granted —
// is refused by the host with an explanation, and the refusal is in the audit trail.
func TestRefusedCallsAreAudited(t *testing.T) {
	f := newFixture(t, false)
	cs, _ := f.connect(t)
	seeded := len(f.fake.Messages("C0GENERAL"))
	for _, name := range []string{"slack.post_message", "nosuch.tool"} {
		res := callTool(t, cs, name, `{"channel":"C0GENERAL","text":"hi"}`)
		if !res.IsError || !strings.Contains(text(res), abi.CodeUnknownTool) {
			t.Errorf("call of unserved %s = isError %v, %q; want the host's unknown_tool refusal", name, res.IsError, text(res))
		}
		if last := lastCall(t, f.rec); last.Tool != name || last.Outcome == "ok" {
			t.Errorf("audit of the refused call of %s = %+v; want a refused call record", name, last)
		}
	}
	if n := len(f.fake.Messages("C0GENERAL")); n != seeded {
		t.Errorf("a refused call reached Slack (%d messages, %d before)", n, seeded)
	}
}
