package console_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/oauthtest"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
	"github.com/airlock-dev/airlock/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite docs/console-grants.png, the README's screenshot of the grants page")

// chrome drives Debian's chromium, headless, on a console. On failure the screenshots taken
// of each page are written to $AIRLOCK_TEST_ARTIFACTS (or a temporary folder), which is printed.
type chrome struct {
	t   *testing.T
	ctx context.Context
	e   *env

	mu    sync.Mutex
	shots []shot
}

type shot struct {
	name string
	png  []byte
}

func newChrome(t *testing.T, e *env) *chrome {
	t.Helper()
	path := testenv.Tool(t, "chromium", "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1024, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	c := &chrome{t: t, ctx: ctx, e: e}
	if err := chromedp.Do(ctx); err != nil { // starts the browser, on a context without a timeout
		cancelC()
		cancelA()
		t.Fatalf("starting %s: %v", path, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.snap("at-failure")
			c.writeShots()
		}
		cancelC()
		cancelA()
	})
	return c
}

// run runs steps, failing the test with what was being done.
func (c *chrome) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	get(c, what, chromedp.Steps(steps...))
}

// click clicks the element sel, once. Chrome may invalidate the node chromedp found between
// finding and clicking it while the page that a form's redirect loaded settles ("Could not find
// node with given id", seen under load); that error comes before the click is dispatched, so
// the click is tried again, up to five times.
func (c *chrome) click(what, sel string) {
	c.t.Helper()
	var err error
	for range 5 {
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		_, err = chromedp.Run(ctx, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil || !strings.Contains(err.Error(), "Could not find node with given id") {
			break
		}
	}
	if err != nil {
		c.t.Fatalf("browser: %s: %v", what, err)
	}
}

// get runs an action that returns a value, within a minute.
func get[T any](c *chrome, what string, a chromedp.Action[T]) T {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		c.t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// waitText waits until the element sel shows text containing want (the page after a form
// post, when the page before had the same element).
func (c *chrome) waitText(sel, want string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		last, _ = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if strings.Contains(last, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("browser: %s shows %q, want %q", sel, last, want)
}

// snap keeps a screenshot of the current page, written out if the test fails.
func (c *chrome) snap(name string) {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return
	}
	c.mu.Lock()
	c.shots = append(c.shots, shot{name, png})
	c.mu.Unlock()
}

func (c *chrome) writeShots() {
	dir := os.Getenv("AIRLOCK_TEST_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "airlock-console-"); err != nil { // kept: t.TempDir would be removed
			c.t.Logf("screenshots: %v", err)
			return
		}
	}
	dir = filepath.Join(dir, strings.ReplaceAll(c.t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Logf("screenshots: %v", err)
		return
	}
	for i, s := range c.shots {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("%02d-%s.png", i, s.name)), s.png, 0o644)
	}
	c.t.Logf("screenshots of each page: %s", dir)
}

// signIn signs in through the form, as an admin would.
func (c *chrome) signIn(token string) {
	c.t.Helper()
	c.run("signing in",
		chromedp.Navigate(c.e.url+"/console/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#queue")),
	)
	c.snap("approvals")
}

// noXSS checks that no script injected through data ran: the payloads set window.__xss.
func (c *chrome) noXSS() {
	c.t.Helper()
	if get(c, "checking for injected script", chromedp.Evaluate[bool](`window.__xss !== undefined`)) {
		c.t.Fatal("a script injected through data ran in the console")
	}
}

var (
	axeOnce sync.Once
	axeSrc  []byte
	axeErr  error
)

// axe runs axe-core (host/console/testdata/axe, `npm ci --prefix host/console/testdata/axe`)
// on the current page and fails the test on any serious or critical violation.
func (c *chrome) axe(page string) {
	c.t.Helper()
	axeOnce.Do(func() {
		root, err := pluginbuild.ModuleRoot()
		if err != nil {
			axeErr = err
			return
		}
		axeSrc, axeErr = os.ReadFile(filepath.Join(root, "host/console/testdata/axe/node_modules/axe-core/axe.min.js"))
	})
	if axeErr != nil {
		msg := "axe-core is not installed: run `npm ci --prefix host/console/testdata/axe` (" + axeErr.Error() + ")"
		if os.Getenv(testenv.RequireEnv) == "1" {
			c.t.Fatal(msg)
		}
		c.t.Log("skipping the accessibility check: " + msg)
		return
	}
	get(c, "loading axe-core", chromedp.Evaluate[bool](string(axeSrc)+";true"))
	out := get(c, "running axe-core on "+page,
		chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(
			r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
				.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))))`, chromedp.EvalAwaitPromise))
	var vs []any
	json.Unmarshal([]byte(out), &vs)
	if len(vs) > 0 {
		c.t.Errorf("%s: axe-core found serious or critical accessibility violations: %s", page, out)
	}
}

const xssArgs = `{"channel":"C0GENERAL","text":"<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script></pre><svg onload=window.__xss=3>"}`

// An admin signs in, sees the waiting calls (a new one shows up without a reload), approves
// one and denies another with a reason; the agent's next calls run and are refused. Data
// carrying script runs nothing; the pages pass axe-core.
func TestBrowserApprovals(t *testing.T) {
	e := newEnv(t)
	c := newChrome(t, e)

	c.run("opening the console", chromedp.Navigate(e.url+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	c.snap("signin")
	c.axe("sign-in")

	first := e.pending(t, xssArgs)
	c.signIn(e.approver)
	args := get(c, "reading the waiting call", chromedp.Text(chromedp.CSS("#"+first+" pre.args")))
	if !strings.Contains(args, `"text": "<img src=x onerror=`) || !strings.Contains(args, "\n  \"channel\"") && !strings.Contains(args, "\n  \"text\"") {
		t.Errorf("the arguments are shown as %q, want the JSON pretty-printed with its text as text", args)
	}
	agent := get(c, "reading the agent", chromedp.Text(chromedp.CSS("#"+first+" .agent")))
	if agent != "bot" {
		t.Errorf("agent shown = %q, want bot", agent)
	}
	c.noXSS()
	c.axe("approvals")

	// A call made while the page is open appears by itself.
	second := e.pending(t, `{"channel":"C0GENERAL","text":"rotate the keys"}`)
	wait, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(wait, chromedp.WaitVisible(chromedp.CSS("#"+second))); err != nil {
		t.Fatalf("the new waiting call %s did not appear without a reload: %v", second, err)
	}
	c.snap("live-update")
	c.noXSS()

	// Approve the first: the agent's identical call now runs.
	c.run("approving", chromedp.Click(chromedp.CSS("#"+first+" button.approve")), chromedp.WaitVisible(chromedp.CSS(".message")))
	c.snap("approved")
	if res := e.call("slack.post_message", xssArgs); !res.OK {
		t.Fatalf("the agent's call after approval: %+v", res.Error)
	}

	// Deny the second with a reason: the agent is refused with it.
	c.run("denying",
		chromedp.SendKeys(chromedp.CSS("#reason-"+second), "not during the freeze"),
		chromedp.Click(chromedp.CSS("#"+second+" button.deny")))
	c.waitText(".message", "Denied "+second)
	c.snap("denied")
	msg := get(c, "reading the outcome", chromedp.Text(chromedp.CSS(".message")))
	if !strings.Contains(msg, "Denied "+second) {
		t.Errorf("message after deny = %q", msg)
	}
	res := e.call("slack.post_message", `{"channel":"C0GENERAL","text":"rotate the keys"}`)
	if res.OK || !strings.Contains(res.Error.Message, "not during the freeze") {
		t.Fatalf("the agent's call after the denial: %+v, want refused with the reason", res)
	}
	html := get(c, "reading the queue", chromedp.OuterHTML(chromedp.CSS("#queue")))
	if strings.Contains(html, first) || strings.Contains(html, second) {
		t.Error("decided calls are still in the queue")
	}
	c.noXSS()
}

// An agent token typed into the sign-in form opens nothing; the page says what to use.
func TestBrowserAgentTokenRefused(t *testing.T) {
	e := newEnv(t)
	c := newChrome(t, e)
	c.run("signing in with an agent token",
		chromedp.Navigate(e.url+"/console/signin"),
		chromedp.SendKeys(chromedp.CSS("#token"), e.agent),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS(".error")),
	)
	errText := get(c, "reading the error", chromedp.Text(chromedp.CSS(".error")))
	c.run("opening the approvals", chromedp.Navigate(e.url+"/console/approvals"), chromedp.WaitVisible(chromedp.CSS("#token")))
	loc := get(c, "reading the location", chromedp.Location())
	c.snap("refused")
	if !regexp.MustCompile(`Agent tokens cannot open the console`).MatchString(errText) {
		t.Errorf("error shown = %q", errText)
	}
	if !strings.Contains(loc, "/console/signin") {
		t.Errorf("after a refused sign-in the console is at %s, want the sign-in page", loc)
	}
	c.axe("sign-in with an error")
}

// A granter narrows Slack's grant in the browser (the diff is shown before saving), then
// revokes a tool: each time the tool list an MCP client sees changes. A tool description with
// markup runs nothing; each page passes axe-core.
func TestBrowserGrants(t *testing.T) {
	e := newEnv(t)
	before := e.tools(t)
	if !slices.Contains(before, "slack.post_message") || !slices.Contains(before, "slack.list_channels") {
		t.Fatalf("tools before = %v", before)
	}
	c := newChrome(t, e)
	c.signIn(e.owner)
	c.run("opening the grants", chromedp.Navigate(e.url+"/console/grants"), chromedp.WaitVisible(chromedp.CSS("a.connector")))
	c.snap("grants")
	c.axe("grants")
	c.run("opening slack's grant", chromedp.Click(chromedp.CSS("a.connector")), chromedp.WaitVisible(chromedp.CSS("#grant-form")))
	c.snap("grant")
	if *update {
		png := get(c, "taking the README's screenshot", chromedp.FullScreenshot(100))
		root, _ := pluginbuild.ModuleRoot()
		if err := os.WriteFile(filepath.Join(root, "docs", "console-grants.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.noXSS()
	if desc := get(c, "reading the asks", chromedp.Text(chromedp.CSS("section[aria-labelledby=asks]"))); !strings.Contains(desc, xssDescription) {
		t.Errorf("the description with markup is not shown as text: %q", desc)
	}
	c.axe("grant")

	// Untick post_message: the review shows the change, and nothing is saved yet.
	c.run("unticking post_message",
		chromedp.Click(chromedp.CSS(`input[name=tool][value=post_message]`)),
		chromedp.Click(chromedp.CSS("#review")),
		chromedp.WaitVisible(chromedp.CSS("#save")))
	c.snap("grant-diff")
	c.axe("grant diff")
	diff := get(c, "reading the diff", chromedp.Text(chromedp.CSS("table.diff")))
	if !strings.Contains(diff, "Tools") || !strings.Contains(diff, "list_channels") {
		t.Errorf("the diff = %q, want the tools changing", diff)
	}
	if now := e.tools(t); !slices.Contains(now, "slack.post_message") {
		t.Fatal("reviewing the diff changed the grant")
	}
	c.click("saving", "#save")
	c.waitText(".message", "Saved the grant of slack")
	after := e.tools(t)
	if slices.Contains(after, "slack.post_message") || !slices.Contains(after, "slack.list_channels") {
		t.Fatalf("tools after saving = %v, want post_message gone and list_channels kept", after)
	}
	rec, err := e.st.CurrentGrant(context.Background(), "slack")
	if err != nil || rec.Admin != "olivia" {
		t.Fatalf("the grant is recorded as %+v (%v), want by olivia", rec, err)
	}

	// Revoke one tool.
	c.click("revoking list_channels", "#revoke-list_channels")
	c.waitText(".message", "Revoked slack.list_channels")
	c.snap("revoked")
	if now := e.tools(t); slices.Contains(now, "slack.list_channels") {
		t.Fatalf("tools after revoking list_channels = %v", now)
	}
	c.noXSS()
}

// A granter approves a pending upgrade from its diff (it then serves), and rejects another
// (it is gone; the active version keeps serving).
func TestBrowserUpgrades(t *testing.T) {
	e := newEnv(t)
	e.installUpgrade(t, "2.0.0")
	// A connector whose name and publisher carry markup (as a store written by anything could hold).
	if err := e.st.PutInstalled(context.Background(), store.Installed{Name: `<img src=x onerror="window.__xss=5">`, Version: "1.0.0",
		Digest: "00", Publisher: `<script>window.__xss=6</script>`, Manifest: e.yaml, Module: e.wasm, Status: store.InstalledPending}); err != nil {
		t.Fatal(err)
	}
	c := newChrome(t, e)
	c.signIn(e.owner)
	c.run("opening the connectors", chromedp.Navigate(e.url+"/console/connectors"), chromedp.WaitVisible(chromedp.CSS(".pending")))
	c.snap("connectors")
	c.noXSS()
	if list := get(c, "reading the list", chromedp.Text(chromedp.CSS("main"))); !strings.Contains(list, `<script>window.__xss=6</script>`) {
		t.Errorf("the publisher with markup is not shown as text: %q", list)
	}
	c.axe("connectors")
	c.run("opening slack", chromedp.Click(chromedp.CSS(`a.connector[href="/console/connectors/slack"]`)), chromedp.WaitVisible(chromedp.CSS("#approve-upgrade")))
	c.snap("upgrade")
	c.axe("connector")
	changes := get(c, "reading the diff", chromedp.Text(chromedp.CSS("ul.changes")))
	if !strings.Contains(changes, "max_requests") || !strings.Contains(changes, "24") {
		t.Errorf("the upgrade's diff = %q, want the looser max_requests", changes)
	}
	c.click("approving the upgrade", "#approve-upgrade")
	c.waitText(".message", "Approved slack 2.0.0")
	if in, err := e.st.ActiveInstalled(context.Background(), "slack"); err != nil || in.Version != "2.0.0" {
		t.Fatalf("active version = %+v (%v), want 2.0.0", in.Version, err)
	}
	if tools := e.tools(t); !slices.Contains(tools, "slack.list_channels") {
		t.Fatalf("tools after the upgrade = %v, want Slack's still granted", tools)
	}

	e.installUpgrade(t, "3.0.0")
	c.run("opening slack again", chromedp.Navigate(e.url+"/console/connectors/slack"), chromedp.WaitVisible(chromedp.CSS("#reject-upgrade")))
	c.click("rejecting the upgrade", "#reject-upgrade")
	c.waitText(".message", "Rejected slack 3.0.0")
	if _, err := e.st.GetInstalled(context.Background(), "slack", "3.0.0"); err == nil {
		t.Fatal("the rejected version is still installed")
	}
	if in, err := e.st.ActiveInstalled(context.Background(), "slack"); err != nil || in.Version != "2.0.0" {
		t.Fatalf("active version after the rejection = %+v (%v), want 2.0.0", in.Version, err)
	}
}

// An admin searches the audit trail with the CLI's filters, newest first, opens a record's
// detail, sees the chain verified and exports what matched.
func TestBrowserAudit(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"1", "2"} {
		if res := e.call("slack.list_channels", `{"limit":`+n+`}`); !res.OK {
			t.Fatalf("list_channels: %+v", res.Error)
		}
	}
	if err := e.sink.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := newChrome(t, e)
	c.signIn(e.viewer)
	c.run("searching",
		chromedp.Navigate(e.url+"/console/audit"),
		chromedp.WaitVisible(chromedp.CSS("#f-tool")),
		chromedp.SendKeys(chromedp.CSS("#f-tool"), "slack.list_channels"),
		chromedp.SendKeys(chromedp.CSS("#f-decision"), "ok"),
		chromedp.Click(chromedp.CSS("#search")))
	// The new page is the one whose form holds the filter server-side (typing sets no attribute).
	c.run("waiting for the results", chromedp.WaitVisible(chromedp.CSS(`#f-decision[value="ok"]`)), chromedp.WaitVisible(chromedp.CSS("li.record")))
	c.snap("audit")
	c.axe("audit")
	if v := get(c, "reading the verification", chromedp.Text(chromedp.CSS("#verify"))); !strings.Contains(v, "verifies") {
		t.Errorf("verification shown = %q", v)
	}
	seqs := get(c, "listing the records", chromedp.Evaluate[[]int](`[...document.querySelectorAll("li.record")].map(li => +li.id.slice(4))`))
	if len(seqs) != 2 || seqs[0] <= seqs[1] {
		t.Fatalf("records shown = %v, want the two list_channels calls, newest first", seqs)
	}
	if main := get(c, "reading the page", chromedp.Text(chromedp.CSS("ol.audit"))); strings.Contains(main, "console sign-in") {
		t.Error("the filter let through records of other kinds")
	}
	c.click("opening a record", "li.record summary")
	if d := get(c, "reading the detail", chromedp.Text(chromedp.CSS("li.record pre"))); !strings.Contains(d, `"tool": "slack.list_channels"`) {
		t.Errorf("detail = %q", d)
	}
	href := get(c, "reading the export link", chromedp.Evaluate[string](`document.querySelector("#export").getAttribute("href")`))
	out := get(c, "exporting", chromedp.Evaluate[string](`fetch(`+strconv.Quote(href)+`).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[0], `"slack.list_channels"`) || !strings.Contains(lines[1], `"outcome":"ok"`) {
		t.Errorf("export of %s = %q, want the two records as JSON lines", href, out)
	}
}

// An owner issues an agent token (shown once: it works, and no later page holds it) and
// revokes another (refused from then on).
func TestBrowserTokens(t *testing.T) {
	e := newEnv(t)
	c := newChrome(t, e)
	c.signIn(e.owner)
	c.run("issuing an agent token",
		chromedp.Navigate(e.url+"/console/tokens"),
		chromedp.WaitVisible(chromedp.CSS("#agent-name")),
		chromedp.SendKeys(chromedp.CSS("#agent-name"), "newbot"),
		chromedp.SendKeys(chromedp.CSS("#agent-subject"), "acme"),
		chromedp.Click(chromedp.CSS("#issue-agent")),
		chromedp.WaitVisible(chromedp.CSS("#new-token")))
	c.snap("tokens-issued")
	c.axe("tokens")
	token := get(c, "reading the new token", chromedp.Value(chromedp.CSS("#new-token")))
	id, ok, err := mcp.StoreAgents(e.st).Verify(token)
	if err != nil || !ok || id.Name != "newbot" || id.Subject != "acme" {
		t.Fatalf("the issued token verifies as %+v %v %v, want newbot for acme", id, ok, err)
	}
	c.run("reloading", chromedp.Navigate(e.url+"/console/tokens"), chromedp.WaitVisible(chromedp.CSS("#agent-newbot")))
	if html := get(c, "reading the page", chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(html, token) {
		t.Fatal("the token is shown again after the page that issued it")
	}
	c.click("revoking bot", `#agent-bot button`)
	c.waitText(".message", "Revoked the agent token bot")
	if _, ok, _ := mcp.StoreAgents(e.st).Verify(e.agent); ok {
		t.Fatal("the revoked agent token still verifies")
	}
}

// An owner sets a secret through the write-only field: the name is listed, the value is in
// no page, and the store holds it.
func TestBrowserSecrets(t *testing.T) {
	e := newEnv(t)
	c := newChrome(t, e)
	c.signIn(e.owner)
	const value = "sk-console-CANARY-5xQ"
	c.run("setting a secret",
		chromedp.Navigate(e.url+"/console/secrets"),
		chromedp.WaitVisible(chromedp.CSS("#secret-name")),
		chromedp.SendKeys(chromedp.CSS("#secret-name"), "github_token"),
		chromedp.SendKeys(chromedp.CSS("#secret-value"), value),
		chromedp.Click(chromedp.CSS("#set-secret")))
	c.waitText(".message", "Set github_token")
	c.snap("secrets")
	c.axe("secrets")
	if html := get(c, "reading the page", chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(html, value) || !strings.Contains(html, `id="secret-github_token"`) {
		t.Fatalf("after setting: value shown=%v, name listed=%v", strings.Contains(html, value), strings.Contains(html, "secret-github_token"))
	}
	if v, err := e.secrets.Get(context.Background(), "github_token"); err != nil || v.Expose() != value {
		t.Fatalf("the stored secret: %v", err)
	}
	if typ := get(c, "reading the field", chromedp.Evaluate[string](`document.querySelector("#secret-value").type`)); typ != "password" {
		t.Errorf("the value field is %q, want password", typ)
	}
}

// An owner connects alice's account in the browser through the OAuth code flow against
// internal/oauthtest (the provider sends the browser to the host's loopback callback), sees it
// connected, and alice's calls then run as that account; disconnecting deletes it and her
// calls fail.
func TestBrowserAccounts(t *testing.T) {
	auth := oauthtest.New(t)
	e := newEnvWith(t, auth)
	ctx := context.Background()
	callAsAlice := func() *host.Result {
		return e.h.Call(ctx, host.CallRequest{Tool: "slack.list_channels", Arguments: json.RawMessage(`{"limit":1}`), Agent: "bot", Subject: "alice"})
	}
	if res := callAsAlice(); res.OK {
		t.Fatal("a call for alice ran before her account was connected")
	}
	c := newChrome(t, e)
	c.signIn(e.owner)
	c.run("starting the connection",
		chromedp.Navigate(e.url+"/console/accounts"),
		chromedp.WaitVisible(chromedp.CSS("#connect-connector")),
		chromedp.SendKeys(chromedp.CSS("#connect-connector"), "slack"),
		chromedp.SendKeys(chromedp.CSS("#connect-subject"), "alice"),
		chromedp.Click(chromedp.CSS("#connect")),
		chromedp.WaitVisible(chromedp.CSS("#signin-link")))
	c.snap("accounts-signin")
	c.axe("accounts")
	href := get(c, "reading the sign-in link", chromedp.Evaluate[string](`document.querySelector("#signin-link").href`))
	u, err := url.Parse(href)
	if err != nil || u.Scheme+"://"+u.Host != oauthOrigin || u.Query().Get("code_challenge_method") != "S256" || u.Query().Get("state") == "" {
		t.Fatalf("sign-in link %q, want the slot's authorize_url with PKCE S256 and a state", href)
	}
	// The provider's origin is routed to the test server, as the grant's upstreams route it for the host.
	to, _ := url.Parse(auth.URL)
	u.Scheme, u.Host = to.Scheme, to.Host
	c.run("signing in at the provider", chromedp.Navigate(u.String()))
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := e.a.Accounts(ctx)
		if err == nil && len(list) == 1 && list[0].Subject == "alice" && list[0].Status == store.StatusConnected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's account is not connected: %+v %v", list, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res := callAsAlice(); !res.OK {
		t.Fatalf("alice's call after connecting: %+v", res.Error)
	}
	c.run("listing the accounts", chromedp.Navigate(e.url+"/console/accounts"), chromedp.WaitVisible(chromedp.CSS("tr.account")))
	c.snap("accounts")
	if st := get(c, "reading the status", chromedp.Text(chromedp.CSS("tr.account .status"))); st != store.StatusConnected {
		t.Errorf("status shown = %q", st)
	}
	// The access token's expiry is read from the sealed token set by the host, and shown.
	if list, err := e.a.Accounts(ctx); err != nil || len(list) != 1 || !list[0].Expires.After(time.Now()) {
		t.Errorf("accounts = %+v, %v; want alice's with an expiry in the future", list, err)
	} else if cell := get(c, "reading the expiry", chromedp.Text(chromedp.CSS("tr.account .expires"))); !strings.HasPrefix(cell, list[0].Expires.Format(time.RFC3339)) {
		t.Errorf("expiry shown = %q, want %s first", cell, list[0].Expires.Format(time.RFC3339))
	}
	html := get(c, "reading the page", chromedp.OuterHTML(chromedp.CSS("html")))
	for _, s := range auth.Secrets() {
		if s != "" && strings.Contains(html, s) {
			t.Fatalf("the accounts page holds a secret the provider issued (%.6q…)", s)
		}
	}
	issued := auth.Secrets()
	c.click("disconnecting", "tr.account button")
	c.waitText(".message", "Disconnected slack/bot_token for alice: the provider revoked its tokens")
	if auth.Revocations() != 1 {
		t.Errorf("the provider accepted %d revocations, want 1", auth.Revocations())
	}
	// The refresh token the host held no longer works at the provider.
	refreshTokens := 0
	for _, tok := range issued {
		if strings.HasPrefix(tok, "ory_rt_") && auth.Issued(tok) {
			refreshTokens++
			if status, _ := auth.RefreshDirect(t, tok); status == http.StatusOK {
				t.Errorf("the revoked refresh token still refreshes at the provider")
			}
		}
	}
	if refreshTokens == 0 {
		t.Error("the provider issued no refresh token to check")
	}
	if list, _ := e.a.Accounts(ctx); len(list) != 0 {
		t.Fatalf("accounts after disconnecting: %+v", list)
	}
	if res := callAsAlice(); res.OK {
		t.Fatal("alice's call ran after her account was disconnected")
	}
}
