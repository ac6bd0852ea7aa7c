package console_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	_ "modernc.org/sqlite"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/console"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/oauthtest"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// xssDescription is markup in a tool's description; window.__xss is set if any of it runs.
const xssDescription = `<script>window.__xss=1</script><img src=x onerror="window.__xss=2">`

// canary is the Slack bot token: no console page or response may ever contain it.
const canary = "xoxb-CANARY-console-7Hq3mP"

// clock is the console's settable clock (session idle expiry).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// adminTokens adapts the store's admin tokens to admin.HashVerifier, as cmd/airlock does.
type adminTokens struct{ a *mcp.Agents }

func (t adminTokens) Verify(token string) (admin.Caller, bool, error) {
	return caller(t.a.Verify(token))
}

func (t adminTokens) VerifySHA256(sumHex string) (admin.Caller, bool, error) {
	return caller(t.a.VerifySHA256(sumHex))
}

func caller(id mcp.Identity, ok bool, err error) (admin.Caller, bool, error) {
	return admin.Caller{Name: id.Name, Role: admin.Role(id.Role)}, ok, err
}

// env is a host with Slack granted (post_message behind a human's approval), an Admin over a
// SQLite state store, and the console served over HTTP as serve --http mounts it.
type env struct {
	st      *store.Store
	sink    *audit.StoreSink
	h       *host.Host
	a       *admin.Admin
	slack   *fakeslack.Server
	clock   *clock
	url     string // the server's base URL; the console is at url + "/console/"
	yaml    []byte // Slack's manifest, digest pinned
	secrets *secret.Store
	wasm    []byte

	owner, approver, viewer, agent string // tokens
}

// oauthOrigin is the authorization server's origin in the OAuth variant's manifest, routed to
// an internal/oauthtest server by the grant's upstreams.
const oauthOrigin = "https://login.example.test"

func newEnv(t *testing.T) *env { return newEnvWith(t, nil) }

// newEnvWith is newEnv; with auth, Slack's bot_token slot is an oauth2_authorization_code slot
// at auth (connected per subject), and Slack accepts the tokens auth issued.
func newEnvWith(t *testing.T, auth *oauthtest.Server) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{clock: &clock{t: time.Now()}}
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.sink = audit.NewStoreSink(st, &audit.StoreSinkOptions{Logger: quiet})
	t.Cleanup(func() { e.sink.Close() })
	e.slack = fakeslack.New(canary)
	up := httptest.NewServer(e.slack)
	t.Cleanup(up.Close)

	src := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) {
		switch n {
		case "SLACK_BOT_TOKEN":
			return canary, true
		case "OAUTH_CLIENT_SECRET":
			return oauthtest.ClientSecret, true
		}
		return "", false
	}}}
	key := make([]byte, 32)
	rand.Read(key)
	if e.secrets, err = secret.OpenStore(ctx, &secret.MemoryBackend{}, key); err != nil {
		t.Fatal(err)
	}
	e.h, _ = hosttest.New(t, host.Config{Secrets: src, Store: st, Audit: e.sink, ApprovalTTL: time.Hour, Sealer: e.secrets})
	e.a = admin.New(st, e.h, quiet)
	e.a.SetSecretStore(e.secrets)

	_, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	sum := sha256.Sum256(wasm)
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(filepath.Join(root, "manifests/slack.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	y = []byte(strings.Replace(string(y), "\nmodule:\n  path: ", "\nmodule:\n  sha256: "+hex.EncodeToString(sum[:])+"\n  path: ", 1))
	// A publisher's description carrying markup: the console must show it as text.
	y = []byte(strings.Replace(string(y), "tools:\n  - name: post_message\n    description: >-\n",
		"tools:\n  - name: post_message\n    description: >-\n      "+xssDescription+"\n", 1))
	if auth != nil {
		const bearer = "    kind: bearer\n"
		if strings.Count(string(y), bearer) != 1 {
			t.Fatal("manifests/slack.yaml no longer has exactly one bearer slot; update this test")
		}
		y = []byte(strings.Replace(string(y), bearer, "    kind: oauth2_authorization_code\n    oauth:\n      authorize_url: "+oauthOrigin+
			"/auth\n      revocation_url: "+oauthOrigin+"/revoke\n      token_url: "+oauthOrigin+"/token\n      scopes: [api, offline]\n", 1))
	}
	e.yaml, e.wasm = y, wasm
	if err := st.PutInstalled(ctx, store.Installed{Name: "slack", Version: "1.0.0", Digest: hex.EncodeToString(sum[:]),
		Publisher: "airlock-dev", Manifest: y, Module: wasm, Status: store.InstalledActive}); err != nil {
		t.Fatal(err)
	}
	g := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"slack.com"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": up.URL}, Confirm: []string{"post_message"}}
	if auth != nil {
		// Slack answers a token auth issued as the fake's own.
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !auth.Issued(tok) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
				return
			}
			r.Header.Set("Authorization", "Bearer "+canary)
			e.slack.ServeHTTP(w, r)
		}))
		t.Cleanup(proxy.Close)
		g.Hosts = []string{"*"}
		g.Credentials = map[string]manifest.CredentialGrant{"bot_token": {ClientID: oauthtest.WebClientID, ClientSecret: "env:OAUTH_CLIENT_SECRET"}}
		g.Upstreams = map[string]string{"https://slack.com": proxy.URL, oauthOrigin: auth.URL}
	}
	if _, err := e.a.Grant(ctx, admin.GrantRequest{Connector: "slack", Grant: g, Admin: "setup"}); err != nil {
		t.Fatal(err)
	}

	admins := mcp.StoreAdmins(st)
	for _, x := range []struct {
		dst        *string
		name, role string
	}{{&e.owner, "olivia", "owner"}, {&e.approver, "alice", "approver"}, {&e.viewer, "victor", "viewer"}} {
		if *x.dst, err = admins.Issue(mcp.NewToken{Name: x.name, Role: x.role}); err != nil {
			t.Fatal(err)
		}
	}
	if e.agent, err = mcp.StoreAgents(st).Issue(mcp.NewToken{Name: "bot", Subject: "default"}); err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle(console.Prefix, console.New(e.a, adminTokens{admins}, &console.Options{Now: e.clock.Now, Logger: quiet}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// installUpgrade installs Slack at version, asking for more outbound requests per call than
// 1.0.0: it waits as a pending upgrade.
func (e *env) installUpgrade(t *testing.T, version string) {
	t.Helper()
	y := strings.Replace(string(e.yaml), "version: 1.0.0", "version: "+version, 1)
	y = strings.Replace(y, "max_requests: 16", "max_requests: 24", 1)
	sum := sha256.Sum256(e.wasm)
	if err := e.st.PutInstalled(context.Background(), store.Installed{Name: "slack", Version: version, Digest: hex.EncodeToString(sum[:]),
		Publisher: "airlock-dev", Manifest: []byte(y), Module: e.wasm, Status: store.InstalledPending}); err != nil {
		t.Fatal(err)
	}
}

// tools lists the tools an MCP client (the go-sdk's) sees, as an agent would.
func (e *env) tools(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	srv := mcp.NewServer(e.h, &mcp.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	return names
}

// call is the agent calling a tool, as the MCP server would on its behalf.
func (e *env) call(tool, args string) *host.Result {
	return e.h.Call(context.Background(), host.CallRequest{Tool: tool, Arguments: json.RawMessage(args), Agent: "bot", Subject: "default"})
}

var approvalID = regexp.MustCompile(`\bap_[0-9a-f]+\b`)

// pending makes the agent call post_message with args and returns the approval request's ID.
func (e *env) pending(t *testing.T, args string) string {
	t.Helper()
	res := e.call("slack.post_message", args)
	if res.OK || res.Error.Code != host.CodeApprovalPending {
		t.Fatalf("post_message = %+v, want it to wait for approval", res)
	}
	id := approvalID.FindString(res.Error.Message)
	if id == "" {
		t.Fatalf("no approval ID in %q", res.Error.Message)
	}
	return id
}

func (e *env) approvalStatus(t *testing.T, id string) string {
	t.Helper()
	ap, err := e.st.GetApproval(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Status
}

// browser is a plain HTTP client with a cookie jar that does not follow redirects.
type browser struct {
	t *testing.T
	c *http.Client
	e *env
}

func (e *env) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.url+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header, string(raw)}
}

func (b *browser) get(path string) page { return b.do("GET", path, nil) }
func (b *browser) post(path string, form url.Values) page {
	return b.do("POST", path, form)
}

// signIn signs in with token and returns the CSRF token of the session's forms.
func (b *browser) signIn(token string) string {
	b.t.Helper()
	p := b.post("/console/signin", url.Values{"token": {token}})
	if p.status != http.StatusSeeOther {
		b.t.Fatalf("sign-in: %d %s", p.status, p.body)
	}
	q := b.get("/console/approvals")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(q.body)
	if q.status != 200 || m == nil {
		b.t.Fatalf("after sign-in, /console/approvals = %d without a CSRF token:\n%s", q.status, q.body)
	}
	return m[1]
}
