package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
)

// A new admin following 'airlock help profile': profiles narrow what an agent may call, every
// refusal says which profile refused and the command that fixes it, every change is audited,
// and the audit search finds calls by who asked.
func TestProfileCLI(t *testing.T) {
	w := newGrantWorld(t)
	w.install(t)
	file := filepath.Join(w.dir, "grant.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf("connector: slack\ntools: ['*']\nscopes: ['*']\nhosts: ['*']\n"+
		"credentials: {bot_token: store:slack_bot}\nupstreams: {\"https://slack.com\": %q}\n", w.url)), 0o600)
	w.must(t, exitOK, "grant", "slack", "--file", file)
	callAs := func(agent, tool, args string) (int, string) {
		t.Helper()
		code, out, _ := w.run(t, "call", tool, "--agent", agent, "--args", args)
		return code, out
	}
	post := `{"channel":"C0GENERAL","text":"x"}`

	out, _ := w.must(t, exitOK, "profile", "set", "support", "--member", "support-bot", "--allow", "slack.list_channels", "--note", "ticket 9")
	if !strings.Contains(out, "Profile support is now version 1") {
		t.Errorf("profile set printed:\n%s", out)
	}
	if out, _ := w.must(t, exitOK, "tools", "--agent", "support-bot"); !strings.Contains(out, "slack.list_channels") || strings.Contains(out, "slack.post_message") {
		t.Errorf("tools --agent support-bot:\n%s", out)
	}
	code, res := callAs("support-bot", "slack.post_message", post)
	if code == exitOK || !strings.Contains(res, "profile support does not allow slack.post_message; ask an admin: airlock profile allow support slack.post_message") {
		t.Fatalf("support-bot posting = %d %s; want refused by its profile, with the fix", code, res)
	}
	if code, res := callAs("support-bot", "slack.list_channels", `{}`); code != exitOK {
		t.Fatalf("support-bot listing = %d %s", code, res)
	}
	if code, res := callAs("someone-else", "slack.post_message", post); code != exitOK {
		t.Errorf("an agent in no profile posting = %d %s; want the grant's tools", code, res)
	}

	// The fix the refusal named works; deny takes it back.
	w.must(t, exitOK, "profile", "allow", "support", "slack.post_message")
	if code, res := callAs("support-bot", "slack.post_message", post); code != exitOK {
		t.Errorf("after profile allow = %d %s", code, res)
	}
	w.must(t, exitOK, "profile", "deny", "support", "slack.post_message")
	if code, _ := callAs("support-bot", "slack.post_message", post); code == exitOK {
		t.Error("after profile deny the tool is still callable")
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"profile", "set", "other", "--member", "support-bot", "--allow", "*"}, "already a member of profile support"},
		{[]string{"profile", "deny", "support", "slack.channel_history"}, "does not allow slack.channel_history"},
		{[]string{"profile", "allow", "nosuch", "slack.list_channels"}, "profile nosuch does not exist"},
		{[]string{"profile", "set", "support", "--per-agent", "ten/1m"}, "CALLS/PERIOD"},
		{[]string{"profile", "set", "support", "--allow", "slack.[x"}, "tool pattern"},
	} {
		code, out, errOut := w.run(t, bad.args...)
		if code == exitOK || !strings.Contains(out+errOut, bad.want) {
			t.Errorf("airlock %s = %d %s%s; want an error saying %q", strings.Join(bad.args, " "), code, out, errOut, bad.want)
		}
	}

	// A quota for the profile's members (counted per process without --redis, like a grant's).
	w.must(t, exitOK, "profile", "set", "support", "--per-agent", "1/1h")

	out, _ = w.must(t, exitOK, "profile", "show", "support", "--history", "--json")
	var hist []admin.ProfileView
	if err := json.Unmarshal([]byte(out), &hist); err != nil || len(hist) != 4 || hist[0].Note != "ticket 9" ||
		hist[3].Quotas == nil || hist[3].Quotas.PerAgent.PeriodS != 3600 {
		t.Errorf("profile show --history --json = %s (%v)", out, err)
	}
	out, _ = w.must(t, exitOK, "profile", "list")
	if !strings.Contains(out, "support-bot") || !strings.Contains(out, "per agent 1/1h0m0s") {
		t.Errorf("profile list:\n%s", out)
	}
	w.must(t, exitOK, "profile", "delete", "support")
	if code, res := callAs("support-bot", "slack.post_message", post); code != exitOK {
		t.Errorf("after the profile was deleted = %d %s; want the grant's tools", code, res)
	}

	// Every change is in the audit trail with the CLI's actor.
	out, _ = w.must(t, exitOK, "audit", "search", "--kind", "admin", "--json")
	var actions []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev audit.Event
		json.Unmarshal([]byte(line), &ev)
		if strings.HasPrefix(ev.Action, "profile") && ev.Actor == adminName() {
			actions = append(actions, ev.Action)
		}
	}
	if want := "profile set,profile set,profile set,profile set,profile delete"; strings.Join(actions, ",") != want {
		t.Errorf("audited profile actions = %v; want %s\n%s", actions, want, out)
	}

	// Who asked: the labels of a call are found by the search; they never change the subject.
	w.must(t, exitOK, "call", "slack.list_channels", "--agent", "bot", "--subject", "acme", "--conversation", "conv-7", "--user", "globex")
	out, _ = w.must(t, exitOK, "audit", "search", "--conversation", "conv-7", "--kind", "call", "--json")
	var ev audit.Event
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &ev) != nil ||
		ev.User != "globex" || ev.Subject != "acme" {
		t.Errorf("audit search --conversation conv-7 = %s; want the one call, for subject acme", out)
	}
	out, _ = w.must(t, exitOK, "audit", "search", "--user", "globex", "--kind", "call")
	if !strings.Contains(out, "[user globex, conversation conv-7]") {
		t.Errorf("audit search --user globex:\n%s", out)
	}
	out, _ = w.must(t, exitOK, "audit", "search", "--user", "nobody", "--kind", "call", "--json")
	if strings.TrimSpace(out) != "" {
		t.Errorf("audit search --user nobody = %s; want nothing", out)
	}
}
