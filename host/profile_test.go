package host_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
)

func callAs(h *host.Host, req host.CallRequest) *host.Result {
	if req.Arguments == nil {
		req.Arguments = json.RawMessage(`{}`)
	}
	return h.Call(context.Background(), req)
}

// What an embedder sees: a profile narrows the grant for its members only, globs and bare
// connector names work as documented, and every refusal names the rule and the fix.
func TestProfileNarrowsGrant(t *testing.T) {
	h, rec, _ := slackHost(t)
	h.SetProfiles([]host.Profile{
		{Name: "readers", Members: []string{"reader", "reader-2"}, Tools: []string{"slack.list_*", "slack.channel_?istory"}},
		{Name: "posters", Members: []string{"poster"}, Tools: []string{"slack"}},
	})
	for _, c := range []struct {
		agent, tool string
		ok          bool
	}{
		{"reader", "slack.list_channels", true},
		{"reader-2", "slack.channel_history", true},
		{"reader", "slack.post_message", false},
		{"poster", "slack.post_message", true},
		{"poster", "slack.list_channels", true},
		{"nobody", "slack.post_message", true}, // in no profile: what the grant allows
	} {
		if got := h.Permits(c.agent, c.tool); got != c.ok {
			t.Errorf("Permits(%s, %s) = %v; want %v", c.agent, c.tool, got, c.ok)
		}
	}
	if got := len(h.ToolsFor("reader")); got != 2 {
		t.Errorf("ToolsFor(reader) has %d tools; want 2", got)
	}
	res := callAs(h, host.CallRequest{Tool: "slack.post_message", Agent: "reader", Arguments: json.RawMessage(`{"channel":"C0GENERAL","text":"x"}`)})
	if res.OK || res.Error.Code != abi.CodeNotGranted || res.Error.Category != abi.Fatal ||
		res.Error.Message != "profile readers does not allow slack.post_message; ask an admin: airlock profile allow readers slack.post_message" {
		t.Errorf("call outside the profile = %+v", res.Error)
	}
	// A tool that does not exist is refused by the profile too: the agent learns nothing about
	// tools outside its profile.
	res = callAs(h, host.CallRequest{Tool: "billing.refund", Agent: "reader"})
	if res.OK || !strings.Contains(res.Error.Message, "profile readers does not allow billing.refund") {
		t.Errorf("call of an unknown tool outside the profile = %+v", res.Error)
	}
	// Nor does the list of available tools in an unknown tool's error.
	for _, tool := range []string{"slack.list_nosuch", "nodot"} {
		res = callAs(h, host.CallRequest{Tool: tool, Agent: "reader"})
		if res.OK || strings.Contains(res.Error.Message, "post_message") || !strings.Contains(res.Error.Message, "slack.list_channels") {
			t.Errorf("call of %s by a profiled agent = %+v; want the tools of its profile only", tool, res.Error)
		}
	}
	if res := callAs(h, host.CallRequest{Tool: "slack.list_channels", Agent: "reader"}); !res.OK {
		t.Errorf("call inside the profile = %+v", res.Error)
	}
	evs := rec.Audit.Events()
	if e := evs[0]; e.Outcome != "denied" || e.Profile != "readers" || e.Agent != "reader" {
		t.Errorf("audit record of the refusal = %+v", e)
	}

	// An agent named in two profiles is refused everything rather than given the union.
	h.SetProfiles([]host.Profile{
		{Name: "a", Members: []string{"twice"}, Tools: []string{"*"}},
		{Name: "b", Members: []string{"twice"}, Tools: []string{"slack.list_channels"}},
	})
	res = callAs(h, host.CallRequest{Tool: "slack.list_channels", Agent: "twice"})
	if res.OK || !strings.Contains(res.Error.Message, "member of profiles a and b") {
		t.Errorf("call of an agent in two profiles = %+v", res.Error)
	}
	// A profile that does not check fails closed for its members.
	h.SetProfiles([]host.Profile{{Name: "bad", Members: []string{"reader"}, Tools: []string{"slack.[list"}}})
	if h.Permits("reader", "slack.list_channels") {
		t.Error("a member of a broken profile is permitted a tool")
	}
	// No profiles: back to the grants alone.
	h.SetProfiles(nil)
	if !h.Permits("reader", "slack.post_message") {
		t.Error("after SetProfiles(nil) an agent is still restricted")
	}
}

// With Config.RequireProfiles an agent in no profile gets nothing.
func TestRequireProfiles(t *testing.T) {
	h, _, _ := slackHostWith(t, host.Config{RequireProfiles: true})
	if got := h.ToolsFor("stranger"); len(got) != 0 {
		t.Errorf("ToolsFor(stranger) = %d tools; want none", len(got))
	}
	res := callAs(h, host.CallRequest{Tool: "slack.list_channels", Agent: "stranger"})
	if res.OK || !strings.Contains(res.Error.Message, "stranger is in no profile") ||
		!strings.Contains(res.Error.Message, "airlock profile set NAME --member stranger --allow slack.list_channels") {
		t.Errorf("call of an agent in no profile = %+v", res.Error)
	}
}

// The subject comes from the caller's identity; ActAs changes it only to a subject the agent's
// profile lists, and the audit record names the subject the call ran for.
func TestActAs(t *testing.T) {
	h, rec, _ := slackHost(t)
	h.SetProfiles([]host.Profile{{Name: "ops", Members: []string{"ops-bot"}, Tools: []string{"*"}, Subjects: []string{"globex"}}})
	for _, c := range []struct {
		agent, actAs, want, refusal string
	}{
		{"ops-bot", "", "acme", ""},
		{"ops-bot", "acme", "acme", ""},
		{"ops-bot", "globex", "globex", ""},
		{"ops-bot", "initech", "", "profile ops does not allow acting for subject initech; ask an admin: airlock profile allow ops --subject initech"},
		{"other", "globex", "", "agent other may act only for its token's subject acme, not for globex"},
	} {
		res := callAs(h, host.CallRequest{Tool: "slack.list_channels", Agent: c.agent, Subject: "acme", ActAs: c.actAs})
		evs := rec.Audit.Events()
		e := evs[len(evs)-1]
		switch {
		case c.refusal == "" && (!res.OK || e.Subject != c.want):
			t.Errorf("%s acting as %q: ok=%v subject %q (%+v); want subject %s", c.agent, c.actAs, res.OK, e.Subject, res.Error, c.want)
		case c.refusal != "" && (res.OK || !strings.HasPrefix(res.Error.Message, c.refusal) || e.Subject != "acme"):
			t.Errorf("%s acting as %q = %+v, audited subject %q; want refused (%s) under acme", c.agent, c.actAs, res.Error, e.Subject, c.refusal)
		}
	}
}

// A per-profile quota counts every member's calls to every tool of the profile, and a refusal
// says which profile's quota it is; other agents are not counted.
func TestProfileQuota(t *testing.T) {
	h, _, _ := slackHost(t)
	h.SetProfiles([]host.Profile{{Name: "metered", Members: []string{"m1", "m2"}, Tools: []string{"*"},
		Quotas: &manifest.Quotas{PerTool: &manifest.Quota{Calls: 2, PeriodS: 3600}}}})
	for i, agent := range []string{"m1", "m2"} {
		if res := callAs(h, host.CallRequest{Tool: "slack.list_channels", Agent: agent}); !res.OK {
			t.Fatalf("call %d within the quota: %+v", i+1, res.Error)
		}
	}
	res := callAs(h, host.CallRequest{Tool: "slack.list_channels", Agent: "m1"})
	if res.OK || res.Error.Code != abi.CodeRateLimited || res.Error.RetryAfter <= 0 || !strings.Contains(res.Error.Message, "slack.list_channels has used its quota") {
		t.Errorf("third call = %+v; want rate_limited", res.Error)
	}
	if res := callAs(h, host.CallRequest{Tool: "slack.list_channels", Agent: "outsider"}); !res.OK {
		t.Errorf("an agent outside the profile was counted: %+v", res.Error)
	}
	// Re-applying the same profiles (a store re-read) keeps the count.
	h.SetProfiles(h.Profiles())
	if res := callAs(h, host.CallRequest{Tool: "slack.list_channels", Agent: "m2"}); res.OK {
		t.Error("re-applying unchanged profiles refilled the quota")
	}

	h.SetProfiles([]host.Profile{{Name: "solo", Members: []string{"s"}, Tools: []string{"*"},
		Quotas: &manifest.Quotas{PerAgent: &manifest.Quota{Calls: 1, PeriodS: 3600}}}})
	callAs(h, host.CallRequest{Tool: "slack.list_channels", Agent: "s"})
	res = callAs(h, host.CallRequest{Tool: "slack.channel_history", Agent: "s", Arguments: json.RawMessage(`{"channel":"C0GENERAL"}`)})
	if res.OK || !strings.Contains(res.Error.Message, "this agent has used its quota for the profile solo") {
		t.Errorf("second call of a member with a per-agent quota of 1 = %+v", res.Error)
	}
}

// Who-asked labels are recorded as sent, bounded and without control or formatting characters.
func TestWhoAskedLabels(t *testing.T) {
	h, rec, _ := slackHost(t)
	long := strings.Repeat("é", 100) // 200 bytes
	res := callAs(h, host.CallRequest{Tool: "slack.list_channels", Agent: "a", Subject: "acme",
		Session: "s-1", Conversation: "c\u200b-\x1b[31m42\n\tnext", User: long})
	if !res.OK {
		t.Fatal(res.Error)
	}
	e := rec.Audit.Events()[len(rec.Audit.Events())-1]
	if e.Session != "s-1" || e.Conversation != "c-[31m42 next" || e.Subject != "acme" {
		t.Errorf("labels = session %q conversation %q subject %q", e.Session, e.Conversation, e.Subject)
	}
	if len(e.User) > host.MaxLabelLen || !strings.HasSuffix(e.User, "…") || !strings.HasPrefix(e.User, "éé") || !utf8Valid(e.User) {
		t.Errorf("a 200-byte user label became %q (%d bytes); want at most %d bytes ending in …", e.User, len(e.User), host.MaxLabelLen)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\ufffd") == s }
