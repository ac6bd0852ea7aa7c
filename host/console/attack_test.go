package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/console"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
)

const argsA = `{"channel":"C0GENERAL","text":"deploy v42 to production"}`

// A form posted without the session's CSRF token, or with another one, decides nothing.
func TestCSRFRefused(t *testing.T) {
	e := newEnv(t)
	id := e.pending(t, argsA)
	b := e.browser(t)
	csrf := b.signIn(e.owner)
	other := e.browser(t).signIn(e.owner) // a valid token, of another session

	for name, form := range map[string]url.Values{
		"none":          {},
		"empty":         {"csrf": {""}},
		"wrong":         {"csrf": {"AAAA" + csrf[4:]}},
		"other session": {"csrf": {other}},
	} {
		for _, action := range []string{"approve", "deny"} {
			p := b.post("/console/approvals/"+id+"/"+action, form)
			if p.status != http.StatusForbidden || !strings.Contains(p.body, "CSRF") {
				t.Errorf("%s with CSRF token %s: %d %q, want 403 naming the CSRF token", action, name, p.status, p.body)
			}
		}
	}
	if p := b.post("/console/signout", url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("sign-out without a CSRF token: %d, want 403", p.status)
	}
	if s := e.approvalStatus(t, id); s != store.ApprovalPending {
		t.Fatalf("after forged forms the approval is %s, want pending", s)
	}
	if res := e.call("slack.post_message", argsA); res.OK {
		t.Fatal("the agent's call ran after forged approvals")
	}
	// The right token works.
	if p := b.post("/console/approvals/"+id+"/approve", url.Values{"csrf": {csrf}}); p.status != http.StatusSeeOther {
		t.Fatalf("approve with the session's CSRF token: %d %s", p.status, p.body)
	}
	if s := e.approvalStatus(t, id); s != store.ApprovalApproved {
		t.Fatalf("approval = %s, want approved", s)
	}
}

// Agent tokens, made-up tokens and nothing at all never open the console.
func TestSignInRefusesAgentTokens(t *testing.T) {
	e := newEnv(t)
	for name, tok := range map[string]string{
		"agent token":             e.agent,
		"agent token as admin's":  "airlock_admin_" + strings.TrimPrefix(e.agent, "airlock_agent_"),
		"empty":                   "",
		"made up":                 "airlock_admin_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"owner token with suffix": e.owner + "x",
	} {
		b := e.browser(t)
		p := b.post("/console/signin", url.Values{"token": {tok}})
		if p.status != http.StatusUnauthorized || p.header.Get("Set-Cookie") != "" {
			t.Errorf("sign-in with %s: %d, Set-Cookie %q, want 401 and no cookie", name, p.status, p.header.Get("Set-Cookie"))
		}
		if q := b.get("/console/approvals"); q.status != http.StatusSeeOther || !strings.HasPrefix(q.header.Get("Location"), "/console/signin") {
			t.Errorf("after sign-in with %s, /console/approvals = %d, want a redirect to sign-in", name, q.status)
		}
	}
}

// A session ID planted in the browser before sign-in is not the one the admin gets, and
// grants nothing before or after.
func TestSessionFixation(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	base, _ := url.Parse(e.url + console.Prefix)
	planted := "attacker-chosen-session-id"
	b.c.Jar.SetCookies(base, []*http.Cookie{{Name: "airlock_console", Value: planted, Path: console.Prefix}})
	if p := b.get("/console/approvals"); p.status != http.StatusSeeOther {
		t.Fatalf("a planted session ID opened the console: %d", p.status)
	}
	p := b.post("/console/signin", url.Values{"token": {e.owner}})
	ck := cookieFrom(t, p)
	if ck.Value == planted || len(ck.Value) < 40 {
		t.Fatalf("session ID after sign-in = %q, want a fresh random one", ck.Value)
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != console.Prefix {
		t.Errorf("session cookie %+v, want HttpOnly, SameSite=Strict, Path=%s", ck, console.Prefix)
	}
	// The attacker's browser, holding the planted ID, is still signed out.
	att := e.browser(t)
	att.c.Jar.SetCookies(base, []*http.Cookie{{Name: "airlock_console", Value: planted, Path: console.Prefix}})
	if q := att.get("/console/approvals"); q.status != http.StatusSeeOther {
		t.Fatalf("the planted ID works after the victim signed in: %d", q.status)
	}
	// Signing in again gives yet another ID; the old one stops working.
	b2 := e.browser(t)
	b2.c.Jar.SetCookies(base, []*http.Cookie{ck})
	ck2 := cookieFrom(t, b2.post("/console/signin", url.Values{"token": {e.owner}}))
	if ck2.Value == ck.Value {
		t.Fatal("signing in again kept the session ID")
	}
	old := e.browser(t)
	old.c.Jar.SetCookies(base, []*http.Cookie{ck})
	if q := old.get("/console/approvals"); q.status != http.StatusSeeOther {
		t.Errorf("the session ID replaced at sign-in still works: %d", q.status)
	}
}

func cookieFrom(t *testing.T, p page) *http.Cookie {
	t.Helper()
	cs := (&http.Response{Header: p.header}).Cookies()
	if p.status != http.StatusSeeOther || len(cs) != 1 {
		t.Fatalf("sign-in: %d, cookies %v", p.status, cs)
	}
	return cs[0]
}

// A session unused for longer than the idle timeout is over; one in use lives on.
func TestIdleExpiry(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.signIn(e.owner)
	for range 4 { // used every 10 minutes: alive for 40
		e.clock.Advance(10 * time.Minute)
		if p := b.get("/console/approvals"); p.status != http.StatusOK {
			t.Fatalf("a session in use expired: %d", p.status)
		}
	}
	e.clock.Advance(console.DefaultIdleTimeout + time.Second)
	p := b.get("/console/approvals")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/signin?why=idle" {
		t.Fatalf("after %v idle: %d %q, want a redirect to sign in again", console.DefaultIdleTimeout, p.status, p.header.Get("Location"))
	}
	e.clock.Advance(-console.DefaultIdleTimeout) // gone for good, even if the clock comes back
	if p := b.get("/console/approvals"); p.status != http.StatusSeeOther {
		t.Fatalf("an expired session came back: %d", p.status)
	}
}

// Signing out ends the session on the server, not just in the browser.
func TestSignOut(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	csrf := b.signIn(e.owner)
	base, _ := url.Parse(e.url + console.Prefix)
	saved := b.c.Jar.Cookies(base)
	if p := b.post("/console/signout", url.Values{"csrf": {csrf}}); p.status != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", p.status)
	}
	replay := e.browser(t)
	replay.c.Jar.SetCookies(base, saved)
	if p := replay.get("/console/approvals"); p.status != http.StatusSeeOther {
		t.Fatalf("the session cookie works after sign-out: %d", p.status)
	}
}

// A revoked admin token, or a role taken down, takes effect on the session's next request.
func TestRevokedTokenAndRoleChangeApplyToSessions(t *testing.T) {
	e := newEnv(t)
	id := e.pending(t, argsA)
	b := e.browser(t)
	csrf := b.signIn(e.approver)
	if err := e.a.SetRole(context.Background(), "alice", "viewer", "olivia"); err != nil {
		t.Fatal(err)
	}
	p := b.post("/console/approvals/"+id+"/approve", url.Values{"csrf": {csrf}})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "approver") {
		t.Fatalf("approve after the role became viewer: %d %q, want 403 naming approver", p.status, p.body)
	}
	if s := e.approvalStatus(t, id); s != store.ApprovalPending {
		t.Fatalf("approval = %s, want pending", s)
	}
	if err := e.st.RevokeToken(context.Background(), store.TokenAdmin, "alice"); err != nil {
		t.Fatal(err)
	}
	if p := b.get("/console/approvals"); p.status != http.StatusSeeOther || !strings.Contains(p.header.Get("Location"), "why=token") {
		t.Fatalf("a revoked token's session: %d %q, want a redirect to sign in", p.status, p.header.Get("Location"))
	}
}

// A viewer sees the queue but cannot decide; the refusal is in the audit trail with its name.
func TestRoleEnforcedAndAudited(t *testing.T) {
	e := newEnv(t)
	id := e.pending(t, argsA)
	b := e.browser(t)
	csrf := b.signIn(e.viewer)
	q := b.get("/console/approvals")
	if !strings.Contains(q.body, id) || strings.Contains(q.body, `/approve"`) {
		t.Errorf("a viewer's queue: shows %s=%v, approve form=%v; want it shown without the form", id, strings.Contains(q.body, id), strings.Contains(q.body, "/approve\""))
	}
	p := b.post("/console/approvals/"+id+"/deny", url.Values{"csrf": {csrf}, "reason": {"no"}})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "needs approver") {
		t.Fatalf("viewer denies: %d %q, want 403", p.status, p.body)
	}
	recs, err := e.st.QueryAudit(context.Background(), store.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var refused, signin bool
	for _, r := range recs {
		s := string(r.Data)
		refused = refused || strings.Contains(s, "victor") && strings.Contains(s, "POST /admin/v1/approvals/{id}/deny")
		signin = signin || strings.Contains(s, "victor") && strings.Contains(s, "console sign-in")
	}
	if !refused || !signin {
		t.Errorf("audit trail: refusal recorded=%v, sign-in recorded=%v; want both with the admin's name", refused, signin)
	}
	// The approver decides, and the decision is recorded with the approver's name.
	b2 := e.browser(t)
	csrf2 := b2.signIn(e.approver)
	if p := b2.post("/console/approvals/"+id+"/deny", url.Values{"csrf": {csrf2}, "reason": {"not during the freeze"}}); p.status != http.StatusSeeOther {
		t.Fatalf("approver denies: %d %s", p.status, p.body)
	}
	ap, _ := e.st.GetApproval(context.Background(), id)
	if ap.Status != store.ApprovalDenied || ap.DecidedBy != "alice" || ap.Reason != "not during the freeze" {
		t.Fatalf("approval = %+v, want denied by alice with the reason", ap)
	}
}

// Every response carries the headers that keep the console out of frames, scripts of others
// and referrers.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.signIn(e.owner)
	for _, path := range []string{"/console/signin", "/console/approvals", "/console/approvals/queue", "/console/grants/slack", "/console/static/console.js", "/console/nope"} {
		p := b.get(path)
		csp := p.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "script-src 'self'", "style-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP %q allows inline or eval'd script", path, csp)
		}
		for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
			if got := p.header.Get(h); got != want {
				t.Errorf("%s: %s = %q, want %q", path, h, got, want)
			}
		}
	}
}

// The Slack bot token the host holds is in no page the console serves.
func TestSecretCanaryNeverInPages(t *testing.T) {
	e := newEnv(t)
	id := e.pending(t, argsA)
	// A call that ran, so the upstream saw the token and the audit trail has records.
	b := e.browser(t)
	csrf := b.signIn(e.owner)
	b.post("/console/approvals/"+id+"/approve", url.Values{"csrf": {csrf}})
	if res := e.call("slack.post_message", argsA); !res.OK {
		t.Fatalf("approved call: %+v", res.Error)
	}
	e.pending(t, `{"channel":"C0GENERAL","text":"`+"try "+canary[:6]+`"}`)
	// The canary set as a stored secret through the console, and a failed set (bad name).
	if p := b.post("/console/secrets", url.Values{"csrf": {csrf}, "name": {"slack_bot"}, "value": {canary}}); p.status != http.StatusSeeOther {
		t.Fatalf("setting a secret: %d %s", p.status, p.body)
	}
	if p := b.post("/console/secrets", url.Values{"csrf": {csrf}, "name": {"bad name!"}, "value": {canary}}); p.status != http.StatusBadRequest || strings.Contains(p.body, canary) {
		t.Errorf("a refused secret: %d, value echoed=%v", p.status, strings.Contains(p.body, canary))
	}
	if v, err := e.secrets.Get(context.Background(), "slack_bot"); err != nil || v.Expose() != canary {
		t.Fatalf("the stored secret: %v", err)
	}
	for _, path := range []string{"/console/", "/console/signin", "/console/approvals", "/console/approvals/queue", "/console/grants", "/console/grants/slack", "/console/connectors", "/console/connectors/slack", "/console/audit", "/console/audit/export", "/console/tokens", "/console/secrets", "/console/accounts"} {
		if p := b.get(path); strings.Contains(p.body, canary) || strings.Contains(p.header.Get("Set-Cookie"), canary) {
			t.Errorf("%s contains the secret", path)
		}
	}
}

// Grants are changed by granters only, and only within what the manifest declares, whatever
// the browser sends.
func TestGrantFormsEnforced(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	before, err := e.st.CurrentGrant(ctx, "slack")
	if err != nil {
		t.Fatal(err)
	}
	narrow := `{"connector":"slack","tools":["list_channels"],"scopes":["*"],"hosts":["slack.com"]}`

	// An approver may not grant, preview or revoke.
	b := e.browser(t)
	csrf := b.signIn(e.approver)
	for path, form := range map[string]url.Values{
		"/console/grants/slack":         {"csrf": {csrf}, "grant": {narrow}},
		"/console/grants/slack/preview": {"csrf": {csrf}, "tool": {"list_channels"}},
		"/console/grants/slack/revoke":  {"csrf": {csrf}},
	} {
		if p := b.post(path, form); p.status != http.StatusForbidden || !strings.Contains(p.body, "needs granter") {
			t.Errorf("approver POST %s: %d, want 403 naming granter", path, p.status)
		}
	}
	// A granter's forged grant naming an undeclared tool or a looser limit is refused.
	o := e.browser(t)
	ocsrf := o.signIn(e.owner)
	for _, g := range []string{
		`{"connector":"slack","tools":["delete_workspace"]}`,
		`{"connector":"slack","tools":["*"],"limits":{"timeout_ms":99999999}}`,
		`{"connector":"github","tools":["*"]}`,
		`not json`,
	} {
		if p := o.post("/console/grants/slack", url.Values{"csrf": {ocsrf}, "grant": {g}}); p.status != http.StatusBadRequest {
			t.Errorf("saving %s: %d, want 400", g, p.status)
		}
	}
	if p := o.post("/console/grants/slack/preview", url.Values{"csrf": {ocsrf}, "tool": {"list_channels"}, "timeout_ms": {"-5"}}); p.status != http.StatusBadRequest {
		t.Errorf("preview with a negative limit: %d, want 400", p.status)
	}
	after, err := e.st.CurrentGrant(ctx, "slack")
	if err != nil || after.Version != before.Version {
		t.Fatalf("the grant changed from v%d to v%d (%v) through refused forms", before.Version, after.Version, err)
	}
}

// Only owners issue or revoke tokens; an approver's forms are refused and change nothing.
func TestTokenFormsOwnerOnly(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	csrf := b.signIn(e.approver)
	for path, form := range map[string]url.Values{
		"/console/tokens/agents":               {"csrf": {csrf}, "name": {"evil"}},
		"/console/tokens/admins":               {"csrf": {csrf}, "name": {"evil"}, "role": {"owner"}},
		"/console/tokens/agents/bot/revoke":    {"csrf": {csrf}},
		"/console/tokens/admins/olivia/revoke": {"csrf": {csrf}},
	} {
		if p := b.post(path, form); p.status != http.StatusForbidden || !strings.Contains(p.body, "needs owner") {
			t.Errorf("approver POST %s: %d, want 403 naming owner", path, p.status)
		}
	}
	if p := b.get("/console/tokens"); p.status != http.StatusOK || strings.Contains(p.body, "olivia") || strings.Contains(p.body, "issue-agent") {
		t.Errorf("an approver's token page: %d, lists admins=%v, issue form=%v; want agents only, read-only",
			p.status, strings.Contains(p.body, "olivia"), strings.Contains(p.body, "issue-agent"))
	}
	for _, kind := range []string{store.TokenAgent, store.TokenAdmin} {
		list, _ := e.a.Tokens(context.Background(), kind)
		for _, tv := range list {
			if tv.Name == "evil" {
				t.Errorf("a refused form issued the %s token evil", kind)
			}
		}
	}
	if _, ok, _ := mcp.StoreAgents(e.st).Verify(e.agent); !ok {
		t.Error("a refused form revoked the agent bot")
	}
}

// Connecting and disconnecting accounts takes a granter; an approver's forms are refused.
func TestAccountFormsGranterOnly(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	csrf := b.signIn(e.approver)
	for path, form := range map[string]url.Values{
		"/console/accounts/connect":    {"csrf": {csrf}, "connector": {"slack"}, "subject": {"alice"}},
		"/console/accounts/disconnect": {"csrf": {csrf}, "connector": {"slack"}, "slot": {"bot_token"}, "subject": {"alice"}},
	} {
		if p := b.post(path, form); p.status != http.StatusForbidden || !strings.Contains(p.body, "needs granter") {
			t.Errorf("approver POST %s: %d, want 403 naming granter", path, p.status)
		}
	}
	// A connector without an authorization-code slot says so.
	o := e.browser(t)
	ocsrf := o.signIn(e.owner)
	if p := o.post("/console/accounts/connect", url.Values{"csrf": {ocsrf}, "connector": {"slack"}, "subject": {"alice"}}); p.status != http.StatusBadRequest || !strings.Contains(p.body, "oauth2_authorization_code") {
		t.Errorf("connecting a bearer-token connector: %d %.300s", p.status, p.body)
	}
}

// An agent cannot make its arguments read otherwise in the approval queue: a right-to-left
// override, an isolate or a zero-width space in them reaches the page as a \u escape, never as
// the character that would reverse or hide part of the text the approver reads.
func TestQueueShowsArgumentsAsTheToolGetsThem(t *testing.T) {
	e := newEnv(t)
	e.pending(t, "{\"channel\":\"C0GENERAL\",\"text\":\"all good \u202eBD eht pord\u202c \u2066x\u2069 y\u200bz\"}")
	b := e.browser(t)
	b.signIn(e.approver)
	p := b.get("/console/approvals/queue")
	if p.status != http.StatusOK {
		t.Fatalf("queue: %d", p.status)
	}
	if strings.ContainsAny(p.body, "\u202e\u202c\u2066\u2069\u200b") {
		t.Errorf("a bidi or invisible character reached the page as itself")
	}
	if !strings.Contains(p.body, `all good \u202eBD eht pord\u202c \u2066x\u2069 y\u200bz`) {
		t.Errorf("the arguments are not shown with their escapes:\n%s", p.body)
	}
}
