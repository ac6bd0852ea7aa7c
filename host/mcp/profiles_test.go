package mcp_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// profileServer is one airlock serving the Slack connector over MCP streamable HTTP, on a
// state store that keeps its agent tokens, profiles and audit log; cli records decisions in
// the same store as another process would (`airlock profile …`), and sync is the server's
// poll of the store (admin.Watch).
type profileServer struct {
	st     *store.Store
	agents *mcp.Agents
	cli    *admin.Admin
	sync   func()
	url    string
}

func newProfileServer(t *testing.T, dsn string, cfg host.Config) *profileServer {
	t.Helper()
	ctx := context.Background()
	open := func() *store.Store {
		st, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	st := open()
	fake := fakeslack.New(botToken)
	upstream, stop := fake.Start()
	t.Cleanup(stop)
	m, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	sink := audit.NewStoreSink(st, nil)
	t.Cleanup(func() { sink.Close() })
	var srv atomic.Pointer[mcp.Server]
	cfg.Store, cfg.Audit = st, sink
	cfg.Secrets = secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { return botToken, n == "SLACK_BOT_TOKEN" }}}
	cfg.OnToolsChanged = func() {
		if s := srv.Load(); s != nil {
			s.Sync()
		}
	}
	h, _ := hosttest.New(t, cfg)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := mcp.NewServer(h, &mcp.Options{Logger: logger})
	srv.Store(s)
	g := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": upstream}}
	if err := h.LoadModule(ctx, m, wasm, g); err != nil {
		t.Fatal(err)
	}
	served := admin.New(st, h, logger)
	agents := mcp.StoreAgents(st)
	ts := httptest.NewServer(s.HTTPHandler(agents, nil))
	t.Cleanup(ts.Close)
	p := &profileServer{st: st, agents: agents, cli: admin.New(open(), nil, logger), url: ts.URL + mcp.HTTPPath,
		sync: func() {
			if err := served.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}}
	p.sync()
	return p
}

// headers adds fixed headers to every request of an MCP client, as a gateway would.
type headers struct {
	h    map[string]string
	base http.RoundTripper
}

func (x headers) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range x.h {
		r.Header.Set(k, v)
	}
	return x.base.RoundTrip(r)
}

// agent adds an agent token for subject and connects the official SDK client with it (and the
// given headers on every request).
func (p *profileServer) agent(t *testing.T, name, subject string, hdr map[string]string) (*sdk.ClientSession, chan struct{}) {
	t.Helper()
	token, err := p.agents.Add(name, subject)
	if err != nil {
		t.Fatal(err)
	}
	changed := make(chan struct{}, 16)
	c := sdk.NewClient(&sdk.Implementation{Name: name, Version: "1"}, &sdk.ClientOptions{
		ToolListChangedHandler: func(context.Context, *sdk.ToolListChangedRequest) { changed <- struct{}{} }})
	cs, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: p.url, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: headers{hdr, bearer{token, http.DefaultTransport}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, changed
}

func (p *profileServer) setProfile(t *testing.T, pr host.Profile) {
	t.Helper()
	if _, err := p.cli.SetProfile(context.Background(), pr, "alice", "test"); err != nil {
		t.Fatal(err)
	}
}

// callRecords returns the call records of the audit log matching f.
func (p *profileServer) callRecords(t *testing.T, f store.AuditFilter) []audit.Event {
	t.Helper()
	f.Kind = audit.KindCall
	recs, err := p.st.QueryAudit(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, r := range recs {
		var e audit.Event
		if err := json.Unmarshal(r.Data, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func stateStores() []struct {
	name string
	dsn  func(t *testing.T) string
} {
	return []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "state.db") }},
		{"postgres", func(t *testing.T) string { return testenv.Postgres(t) }},
	}
}

// Two agents with different profiles on one server each see and call only their tools; a third
// in no profile keeps every granted tool (the documented default); a profile changed in the
// store by another process reaches a connected client as notifications/tools/list_changed.
func TestProfilesOverHTTP(t *testing.T) {
	for _, b := range stateStores() {
		t.Run(b.name, func(t *testing.T) {
			p := newProfileServer(t, b.dsn(t), host.Config{})
			p.setProfile(t, host.Profile{Name: "support", Members: []string{"support-bot"}, Tools: []string{"slack.post_message"}})
			p.setProfile(t, host.Profile{Name: "reporting", Members: []string{"report-bot"}, Tools: []string{"slack.list_*"}})
			p.sync()
			support, _ := p.agent(t, "support-bot", "acme", nil)
			report, reportChanged := p.agent(t, "report-bot", "acme", nil)
			free, _ := p.agent(t, "free-bot", "acme", nil)

			for _, c := range []struct {
				cs   *sdk.ClientSession
				want []string
			}{
				{support, []string{"slack.post_message"}},
				{report, []string{"slack.list_channels"}},
				{free, []string{"slack.channel_history", "slack.list_channels", "slack.post_message"}},
			} {
				got := toolNames(t, c.cs)
				slices.Sort(got)
				if diff := cmp.Diff(c.want, got); diff != "" {
					t.Errorf("tools/list of %s mismatch (-want +got):\n%s", c.cs.InitializeResult().ServerInfo.Name, diff)
				}
			}

			if res := callTool(t, support, "slack.post_message", `{"channel":"C0GENERAL","text":"hi"}`); res.IsError {
				t.Errorf("support-bot calling its tool: %s", text(res))
			}
			res := callTool(t, support, "slack.list_channels", `{}`)
			if !res.IsError || !strings.Contains(text(res), "profile support does not allow slack.list_channels") ||
				!strings.Contains(text(res), "airlock profile allow support slack.list_channels") {
				t.Errorf("support-bot calling a tool outside its profile = %s; want a refusal naming the profile and the fix", text(res))
			}
			if res := callTool(t, report, "slack.post_message", `{"channel":"C0GENERAL","text":"hi"}`); !res.IsError || !strings.Contains(text(res), "profile reporting") {
				t.Errorf("report-bot posting = %s; want refused by profile reporting", text(res))
			}
			if res := callTool(t, report, "slack.list_channels", `{}`); res.IsError {
				t.Errorf("report-bot calling its tool: %s", text(res))
			}
			if res := callTool(t, free, "slack.list_channels", `{}`); res.IsError {
				t.Errorf("an agent in no profile calling a granted tool: %s", text(res))
			}
			denied := p.callRecords(t, store.AuditFilter{Agent: "support-bot", Decision: "denied"})
			if len(denied) != 1 || denied[0].Tool != "slack.list_channels" || denied[0].Profile != "support" {
				t.Errorf("audit of the refused call = %+v; want one denied slack.list_channels under profile support", denied)
			}

			// Another process widens the reporting profile; the server's poll applies it.
			p.setProfile(t, host.Profile{Name: "reporting", Members: []string{"report-bot"}, Tools: []string{"slack.list_*", "slack.post_message"}})
			for len(reportChanged) > 0 {
				<-reportChanged
			}
			p.sync()
			select {
			case <-reportChanged:
			case <-time.After(10 * time.Second):
				t.Fatal("no notifications/tools/list_changed after the profile changed")
			}
			got := toolNames(t, report)
			slices.Sort(got)
			if diff := cmp.Diff([]string{"slack.list_channels", "slack.post_message"}, got); diff != "" {
				t.Errorf("tools/list of report-bot after the change mismatch (-want +got):\n%s", diff)
			}
			if res := callTool(t, report, "slack.post_message", `{"channel":"C0GENERAL","text":"hi"}`); res.IsError {
				t.Errorf("report-bot posting after the change: %s", text(res))
			}
		})
	}
}

// With RequireProfiles, an agent in no profile sees no tool and its calls are refused, saying
// why and what to ask for.
func TestRequireProfilesOverHTTP(t *testing.T) {
	p := newProfileServer(t, "sqlite:"+filepath.Join(t.TempDir(), "state.db"), host.Config{RequireProfiles: true})
	p.setProfile(t, host.Profile{Name: "support", Members: []string{"support-bot"}, Tools: []string{"slack"}})
	p.sync()
	support, _ := p.agent(t, "support-bot", "acme", nil)
	free, _ := p.agent(t, "free-bot", "acme", nil)
	if got := toolNames(t, free); len(got) != 0 {
		t.Errorf("tools/list of an agent in no profile = %v; want none", got)
	}
	res := callTool(t, free, "slack.list_channels", `{}`)
	if !res.IsError || !strings.Contains(text(res), "free-bot is in no profile") || !strings.Contains(text(res), "--require-profiles") {
		t.Errorf("call of an agent in no profile = %s; want refused, naming --require-profiles", text(res))
	}
	if got := toolNames(t, support); len(got) != 3 {
		t.Errorf("tools/list of support-bot (allowed the whole connector) = %v; want its 3 tools", got)
	}
}

// The conversation and the end user a client names (request _meta, or headers on HTTP) land in
// the audit record of the call with its MCP session, and the audit search finds them; they
// never change the subject, which comes from the token — only X-Airlock-Subject does, and only
// for a subject the agent's profile lists.
func TestWhoAskedOverHTTP(t *testing.T) {
	for _, b := range stateStores() {
		t.Run(b.name, func(t *testing.T) {
			p := newProfileServer(t, b.dsn(t), host.Config{})
			p.setProfile(t, host.Profile{Name: "support", Members: []string{"support-bot"}, Tools: []string{"*"}, Subjects: []string{"globex"}})
			p.sync()
			ctx := context.Background()
			// The agent tries every way it has to act for another tenant: labels, _meta, arguments.
			// The conversation comes in a header (which wins over _meta), the user in _meta.
			meta := sdk.Meta{mcp.ConversationMetaKey: "overridden", mcp.UserMetaKey: "alice@example.com\u202e\r\nsubject: globex",
				"dev.airlock/subject": "globex", "subject": "globex"}
			cs, _ := p.agent(t, "support-bot", "acme", map[string]string{mcp.ConversationHeader: "conv-42"})
			res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "slack.list_channels", Arguments: json.RawMessage(`{"subject":"globex"}`), Meta: meta})
			if err != nil {
				t.Fatal(err)
			}
			_ = res // the schema may refuse the extra argument: either way the call is audited
			recs := p.callRecords(t, store.AuditFilter{Conversation: "conv-42"})
			if len(recs) != 1 {
				t.Fatalf("audit search by conversation found %d records; want 1", len(recs))
			}
			e := recs[0]
			want := audit.Event{Agent: "support-bot", Subject: "acme", Conversation: "conv-42",
				User: "alice@example.com subject: globex", Session: cs.ID(), Profile: "support"}
			got := audit.Event{Agent: e.Agent, Subject: e.Subject, Conversation: e.Conversation, User: e.User, Session: e.Session, Profile: e.Profile}
			if diff := cmp.Diff(want, got); diff != "" || e.Session == "" {
				t.Errorf("who asked in the audit record mismatch (-want +got):\n%s", diff)
			}
			if n := len(p.callRecords(t, store.AuditFilter{User: "alice@example.com subject: globex", Session: cs.ID()})); n != 1 {
				t.Errorf("audit search by user and session found %d records; want 1", n)
			}
			if n := len(p.callRecords(t, store.AuditFilter{Subject: "globex"})); n != 0 {
				t.Errorf("%d calls ran for subject globex; labels, _meta and arguments must not select a subject", n)
			}

			// X-Airlock-Subject selects a subject the profile lists, and nothing else.
			other, _ := p.agent(t, "support-bot-2", "acme", map[string]string{mcp.SubjectHeader: "globex"})
			if res := callTool(t, other, "slack.list_channels", `{}`); !res.IsError || !strings.Contains(text(res), "no profile lets it choose") {
				t.Errorf("an agent in no profile asking for another subject = %s; want refused", text(res))
			}
			if _, err := p.cli.SetProfile(ctx, host.Profile{Name: "support", Members: []string{"support-bot", "support-bot-2"}, Tools: []string{"*"}, Subjects: []string{"globex"}}, "alice", ""); err != nil {
				t.Fatal(err)
			}
			p.sync()
			if res := callTool(t, other, "slack.list_channels", `{}`); res.IsError {
				t.Errorf("acting for a subject the profile lists: %s", text(res))
			}
			if n := len(p.callRecords(t, store.AuditFilter{Agent: "support-bot-2", Subject: "globex", Decision: "ok"})); n != 1 {
				t.Errorf("%d calls of support-bot-2 for globex; want 1", n)
			}
			third, _ := p.agent(t, "support-bot-3", "acme", map[string]string{mcp.SubjectHeader: "initech"})
			if _, err := p.cli.SetProfile(ctx, host.Profile{Name: "support", Members: []string{"support-bot", "support-bot-2", "support-bot-3"}, Tools: []string{"*"}, Subjects: []string{"globex"}}, "alice", ""); err != nil {
				t.Fatal(err)
			}
			p.sync()
			if res := callTool(t, third, "slack.list_channels", `{}`); !res.IsError || !strings.Contains(text(res), "profile support does not allow acting for subject initech") {
				t.Errorf("acting for a subject the profile does not list = %s; want refused naming the rule", text(res))
			}

			// The audit trail still verifies with the new fields.
			if n, err := p.st.VerifyAudit(ctx); err != nil || n == 0 {
				t.Errorf("VerifyAudit = %d, %v", n, err)
			}
		})
	}
}
