package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
)

// The profile routes of the admin API, as an admin with a token uses them: every change is
// versioned, applied to the host at once, audited with who made it and what changed; mistakes
// get a 400 that says what to fix; an agent is in one profile at most.
func TestProfilesAPI(t *testing.T) {
	ctx := context.Background()
	e, c, tok := grantedAPI(t)

	for _, r := range [][2]string{{"GET", "/admin/v1/profiles"}, {"GET", "/admin/v1/profiles/support"},
		{"PUT", "/admin/v1/profiles/support"}, {"DELETE", "/admin/v1/profiles/support"}} {
		if status, _ := c.do("", r[0], r[1], `{"members":["x"],"tools":["*"]}`); status != http.StatusUnauthorized {
			t.Errorf("%s %s without a token = %d; want 401", r[0], r[1], status)
		}
	}

	status, body := c.do(tok, "PUT", "/admin/v1/profiles/support?note=ticket+7", `{"members":["support-bot"],"tools":["slack.list_*"]}`)
	var v admin.ProfileView
	if status != http.StatusOK || json.Unmarshal(body, &v) != nil || v.Version != 1 || v.Admin != "alice" {
		t.Fatalf("PUT profile = %d %s; want version 1 by alice", status, body)
	}
	if e.h.Permits("support-bot", "slack.post_message") || !e.h.Permits("support-bot", "slack.list_channels") {
		t.Error("the profile set through the API is not applied to the host at once")
	}
	for _, bad := range []struct{ path, body, want string }{
		{"/admin/v1/profiles/support", `{"members":["support-bot"],"tool":["*"]}`, "tool"},
		{"/admin/v1/profiles/support", `{"members":["support-bot"],"tools":["slack.[x"]}`, "tool pattern"},
		{"/admin/v1/profiles/support", `{"name":"other","members":["support-bot"]}`, "leave the body's name out"},
		{"/admin/v1/profiles/bad%20name", `{"members":["a"]}`, "profile name"},
		{"/admin/v1/profiles/reporting", `{"members":["support-bot"],"tools":["*"]}`, "already a member of profile support"},
	} {
		status, body := c.do(tok, "PUT", bad.path, bad.body)
		if status != http.StatusBadRequest || !strings.Contains(string(body), bad.want) {
			t.Errorf("PUT %s %s = %d %s; want 400 saying %q", bad.path, bad.body, status, body, bad.want)
		}
	}
	if status, _ := c.do(tok, "PUT", "/admin/v1/profiles/support", `{"members":["support-bot","helper"],"tools":["slack"],"subjects":["globex"]}`); status != http.StatusOK {
		t.Fatalf("PUT profile again = %d", status)
	}
	status, body = c.do(tok, "GET", "/admin/v1/profiles/support?history=1", "")
	var hist []admin.ProfileView
	if status != http.StatusOK || json.Unmarshal(body, &hist) != nil || len(hist) != 2 || hist[0].Note != "ticket 7" || hist[1].Tools[0] != "slack.*" {
		t.Errorf("GET history = %d %s; want 2 versions, the note kept, slack stored as slack.*", status, body)
	}
	if status, body := c.do(tok, "GET", "/admin/v1/profiles", ""); status != http.StatusOK || !bytes.Contains(body, []byte(`"helper"`)) {
		t.Errorf("GET profiles = %d %s", status, body)
	}
	if status, _ := c.do(tok, "DELETE", "/admin/v1/profiles/support", ""); status != http.StatusOK {
		t.Fatalf("DELETE profile = %d", status)
	}
	if !e.h.Permits("support-bot", "slack.post_message") {
		t.Error("after the profile was deleted its member is still restricted")
	}
	for _, m := range []string{"DELETE", "GET"} {
		if status, _ := c.do(tok, m, "/admin/v1/profiles/support", ""); status != http.StatusNotFound {
			t.Errorf("%s of a deleted profile = %d; want 404", m, status)
		}
	}

	// Every change is in the audit trail, with its actor and its difference.
	recs, err := e.st.QueryAudit(ctx, store.AuditFilter{Kind: audit.KindAdmin})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range recs {
		var ev audit.Event
		json.Unmarshal(r.Data, &ev)
		if strings.HasPrefix(ev.Action, "profile") {
			actions = append(actions, ev.Actor+" "+ev.Action+" "+ev.Target+" "+string(ev.Detail))
		}
	}
	if len(actions) != 3 || !strings.Contains(actions[0], `alice profile set support`) || !strings.Contains(actions[1], `"added":["helper"]`) ||
		!strings.Contains(actions[2], `alice profile delete support`) || !strings.Contains(actions[2], `"deleted":true`) {
		t.Errorf("audited profile actions = %q", actions)
	}
}

// The admin API's audit query finds calls by conversation, user and session.
func TestAuditAPIWhoAsked(t *testing.T) {
	ctx := context.Background()
	e, c, tok := grantedAPI(t)
	for _, u := range []string{"alice@example.com", "bob@example.com", "alice@example.com"} {
		e.h.Call(ctx, host.CallRequest{Tool: "slack.list_channels", Agent: "bot", Conversation: "conv " + u[:3], User: u, Session: "s-1"})
	}
	if err := e.sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int{
		"user=alice@example.com":           2,
		"conversation=conv%20bob":          1,
		"conversation=conv%20%20bob%0A":    1, // looked up as the host records labels
		"session=s-1&user=bob@example.com": 1,
		"user=carol@example.com":           0,
	} {
		status, body := c.do(tok, "GET", "/admin/v1/audit?kind=call&"+q, "")
		n := len(auditPage(t, body).Records)
		if status != http.StatusOK || n != want {
			t.Errorf("GET audit?%s = %d, %d records; want %d", q, status, n, want)
		}
	}
}

// grantedAPI is an env with Slack installed and granted, its admin API served, and the token
// of admin alice.
func grantedAPI(t *testing.T) (*env, apiClient, string) {
	t.Helper()
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	e.grant(t, "", e.slackGrant())
	admins := mcp.OpenAdmins(filepath.Join(t.TempDir(), "admins.json"))
	tok, err := admins.Add("alice", "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.a.Handler(adminTokens{admins}))
	t.Cleanup(srv.Close)
	return e, apiClient{t, srv.URL}, tok
}
