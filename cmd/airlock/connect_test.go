package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/airlock-dev/airlock/internal/testenv"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/oauthtest"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// The OAuth 2.0 server of these tests is ory/fosite (internal/oauthtest: PKCE enforced,
// refresh-token rotation) on a loopback httptest server; the connector's slot names it as
// https://login.example.test, and the grant routes that origin to the loopback server
// (upstreams), as it does for the API.

const (
	oauthOrigin       = "https://login.example.test"
	slackBackendToken = "xoxb-backend-only-token" // what the proxy hands fakeslack; never the agent's business
)

// slackProxy is the upstream: Slack's API (fakeslack) behind a check that the bearer is an access
// token fosite issued. It records every bearer it saw.
type slackProxy struct {
	*httptest.Server
	mu      sync.Mutex
	bearers []string
}

func newSlackProxy(t *testing.T, auth *oauthtest.Server) *slackProxy {
	t.Helper()
	fake := fakeslack.New(slackBackendToken)
	p := &slackProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		p.mu.Lock()
		p.bearers = append(p.bearers, tok)
		p.mu.Unlock()
		if tok == "" || !auth.Issued(tok) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
			return
		}
		r.Header.Set("Authorization", "Bearer "+slackBackendToken)
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *slackProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bearers...)
}

// oauthSlack writes the Slack connector with its bot_token slot turned into an
// oauth2_authorization_code slot, built and stamped, and returns the stamped manifest's path.
func oauthSlack(t *testing.T, dir string) string {
	t.Helper()
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "manifests/slack.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const bearer = "    kind: bearer\n"
	if strings.Count(string(src), bearer) != 1 {
		t.Fatalf("manifests/slack.yaml no longer has exactly one %q slot; update this test", strings.TrimSpace(bearer))
	}
	edited := strings.Replace(string(src), bearer, `    kind: oauth2_authorization_code
    oauth:
      authorize_url: `+oauthOrigin+`/auth
      token_url: `+oauthOrigin+`/token
      scopes: [api, offline]
`, 1)
	srcPath := filepath.Join(dir, "slack-oauth.yaml")
	if err := os.WriteFile(srcPath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	wasm, err := pluginbuild.Build(context.Background(), pluginbuild.Options{Package: "./plugins/slack", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	stamped, err := pluginbuild.Stamp(srcPath, wasm, filepath.Join(dir, "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	return stamped
}

// lineWriter is a stdout that hands each complete line to a channel as it is written.
type lineWriter struct {
	mu    sync.Mutex
	buf   strings.Builder
	part  string
	lines chan string
}

func newLineWriter() *lineWriter { return &lineWriter{lines: make(chan string, 64)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	sc := bufio.NewScanner(strings.NewReader(w.part + string(p)))
	w.part = ""
	complete := strings.HasSuffix(string(p), "\n")
	var ls []string
	for sc.Scan() {
		ls = append(ls, sc.Text())
	}
	if !complete && len(ls) > 0 {
		w.part, ls = ls[len(ls)-1], ls[:len(ls)-1]
	}
	for _, l := range ls {
		select {
		case w.lines <- l:
		default:
		}
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// connectRun is a running 'airlock connect'.
type connectRun struct {
	stdout *lineWriter
	stderr *testenv.Buffer
	done   chan int
}

func startConnect(t *testing.T, args ...string) *connectRun {
	t.Helper()
	r := &connectRun{stdout: newLineWriter(), stderr: &testenv.Buffer{}, done: make(chan int, 1)}
	go func() { r.done <- run(context.Background(), append([]string{"connect"}, args...), r.stdout, r.stderr) }()
	return r
}

// authURL waits for the printed authorization URL (or the command's end).
func (r *connectRun) authURL(t *testing.T) *url.URL {
	t.Helper()
	for {
		select {
		case l := <-r.stdout.lines:
			if u, err := url.Parse(strings.TrimSpace(l)); err == nil && u.Query().Get("response_type") == "code" {
				return u
			}
		case code := <-r.done:
			t.Fatalf("airlock connect exited (%d) before printing the authorization URL:\n%s\n%s", code, r.stdout, r.stderr)
		}
	}
}

func (r *connectRun) wait() int { return <-r.done }

// signIn performs the user's part: it opens the authorization URL at the (routed) provider,
// which redirects to the loopback callback; it returns the callback's status.
func signIn(t *testing.T, auth *oauthtest.Server, u *url.URL) int {
	t.Helper()
	if got := u.Scheme + "://" + u.Host; got != oauthOrigin {
		t.Fatalf("authorization URL origin = %s, want the slot's authorize_url origin %s", got, oauthOrigin)
	}
	to, _ := url.Parse(auth.URL)
	v := *u
	v.Scheme, v.Host = to.Scheme, to.Host
	resp, err := http.Get(v.String()) // follows the 303 to http://127.0.0.1:PORT/callback
	if err != nil {
		t.Fatalf("signing in: %v", err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/callback" {
		t.Fatalf("sign-in ended at %s (status %d), not at the loopback callback", resp.Request.URL, resp.StatusCode)
	}
	return resp.StatusCode
}

type connectEnv struct {
	dir, cfg, stateDB string
	auth              *oauthtest.Server
	api               *slackProxy
}

func newConnectEnv(t *testing.T) *connectEnv {
	t.Helper()
	hermetic(t)
	e := &connectEnv{dir: t.TempDir()}
	e.auth = oauthtest.New(t)
	e.api = newSlackProxy(t, e.auth)
	stamped := oauthSlack(t, e.dir)
	t.Setenv("AIRLOCK_TEST_OAUTH_CLIENT_SECRET", oauthtest.ClientSecret)
	grant := fmt.Sprintf(`connector: slack
tools: [list_channels]
scopes: ["*"]
hosts: ["*"]
credentials:
  bot_token:
    client_id: %s
    client_secret: env:AIRLOCK_TEST_OAUTH_CLIENT_SECRET
upstreams:
  "https://slack.com": %q
  %q: %q
`, oauthtest.WebClientID, e.api.URL, oauthOrigin, e.auth.URL)
	if err := os.WriteFile(filepath.Join(e.dir, "slack.grant.yaml"), []byte(grant), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg = filepath.Join(e.dir, "airlock.yaml")
	if err := os.WriteFile(e.cfg, []byte(fmt.Sprintf("state_dir: state\nconnectors:\n  - manifest: %s\n    grant: slack.grant.yaml\n", stamped)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.stateDB = filepath.Join(e.dir, "state", "state.db")
	return e
}

func (e *connectEnv) openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+e.stateDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// noLeak fails if any token, code or the client secret of the provider appears in text.
func (e *connectEnv) noLeak(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range e.auth.Secrets() {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s holds a secret the provider issued (%.6q…)", where, s)
		}
	}
}

// TestConnect runs its cases on one state directory, so the module is compiled once; each
// case uses its own subject.
func TestConnect(t *testing.T) {
	e := newConnectEnv(t)
	t.Run("sign in, then call", func(t *testing.T) { testConnectThenCall(t, e) })
	t.Run("forged callback", func(t *testing.T) { testConnectForgedCallback(t, e) })
	t.Run("timeout", func(t *testing.T) { testConnectTimeout(t, e) })
	t.Run("errors", func(t *testing.T) { testConnectErrors(t, e) })
}

func testConnectThenCall(t *testing.T, e *connectEnv) {
	opened := make(chan string, 1)
	old := openBrowser
	openBrowser = func(u string) error { opened <- u; return errors.New("no display") }
	t.Cleanup(func() { openBrowser = old })

	r := startConnect(t, "slack", "--config", e.cfg, "--subject", "alice", "--timeout", "2m")
	u := r.authURL(t)
	if got := <-opened; got != u.String() {
		t.Errorf("the browser was asked to open %q, want the printed URL %q", got, u)
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || len(q.Get("state")) < 32 {
		t.Errorf("authorization URL lacks PKCE S256 or a strong state: %s", u)
	}
	if ru, err := url.Parse(q.Get("redirect_uri")); err != nil || ru.Hostname() != "127.0.0.1" || ru.Path != "/callback" {
		t.Errorf("redirect_uri = %q, want http://127.0.0.1:PORT/callback", q.Get("redirect_uri"))
	}
	if status := signIn(t, e.auth, u); status != http.StatusOK {
		t.Errorf("callback status = %d, want 200", status)
	}
	if code := r.wait(); code != exitOK {
		t.Fatalf("airlock connect = %d\n%s\n%s", code, r.stdout, r.stderr)
	}
	out := r.stdout.String()
	if !strings.Contains(out, "Connected slack (bot_token) for subject alice; tokens are kept encrypted by the host") {
		t.Errorf("connect output lacks the confirmation:\n%s", out)
	}
	if !strings.Contains(r.stderr.String(), "No browser could be opened") {
		t.Errorf("a failed browser start is not reported as harmless: %q", r.stderr)
	}
	e.noLeak(t, "connect's stdout", out)
	e.noLeak(t, "connect's stderr", r.stderr.String())

	// The connection is stored sealed: the blob holds neither token, nor their base64.
	st := e.openStore(t)
	c, err := st.GetConnection(context.Background(), "slack", "bot_token", "alice")
	if err != nil {
		t.Fatalf("GetConnection(slack, bot_token, alice): %v", err)
	}
	if c.Status != store.StatusConnected || len(c.Token) == 0 {
		t.Errorf("stored connection = status %q, %d-byte token blob; want connected and sealed tokens", c.Status, len(c.Token))
	}
	for _, s := range e.auth.Secrets() {
		if s != "" && (strings.Contains(string(c.Token), s) || strings.Contains(string(c.Token), strings.TrimRight(s, "="))) {
			t.Errorf("the stored blob holds a token in the clear (%.6q…)", s)
		}
	}
	if _, err := st.GetConnection(context.Background(), "slack", "bot_token", "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetConnection(bob) = %v; want not found (only alice connected)", err)
	}

	// A later process uses alice's token for alice's calls.
	code, out, errOut := airlock(t, "call", "slack.list_channels", "--config", e.cfg, "--subject", "alice")
	if code != exitOK || !strings.Contains(out, "C0GENERAL") {
		t.Fatalf("call as alice = %d\n%s\n%s", code, out, errOut)
	}
	e.noLeak(t, "the call's result", out+errOut)
	seen := e.api.seen()
	if len(seen) == 0 || !e.auth.Issued(seen[len(seen)-1]) {
		t.Fatalf("the upstream saw bearers %q; want an access token the provider issued", seen)
	}

	// Bob has no connection: his call is refused before reaching the upstream, with what to do.
	before := len(e.api.seen())
	code, out, _ = airlock(t, "call", "slack.list_channels", "--config", e.cfg, "--subject", "bob")
	if code != exitError || !strings.Contains(out, "airlock connect") {
		t.Errorf("call as bob = %d, %s; want a failure telling an admin to run airlock connect", code, out)
	}
	if after := len(e.api.seen()); after != before {
		t.Errorf("bob's call reached the upstream (%d requests) with no connection of his own", after-before)
	}
	e.noLeak(t, "bob's result", out)

	// The audit trail records the connection, never a token.
	code, out, _ = airlock(t, "audit", "export", "--config", e.cfg)
	if code != exitOK || !strings.Contains(out, `"connected"`) {
		t.Errorf("audit export = %d; want a credential event \"connected\":\n%s", code, out)
	}
	e.noLeak(t, "the audit log", out)
	if code, out, _ := airlock(t, "audit", "verify", "--config", e.cfg); code != exitOK {
		t.Errorf("audit verify = %d, %s", code, out)
	}
}

// A callback that does not carry this sign-in's state (a forged or replayed redirect) is refused:
// nothing is exchanged or stored, and the command fails saying so.
func testConnectForgedCallback(t *testing.T, e *connectEnv) {
	r := startConnect(t, "slack", "--config", e.cfg, "--subject", "mallory", "--no-browser", "--timeout", "2m")
	u := r.authURL(t)
	forged := u.Query().Get("redirect_uri") + "?code=forged-code&state=" + url.QueryEscape("attacker-state-0123456789abcdefghijkl")
	resp, err := http.Get(forged)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("forged callback status = %d, want 400", resp.StatusCode)
	}
	code := r.wait()
	if code != exitError || !strings.Contains(r.stderr.String(), "state") || !strings.Contains(r.stderr.String(), "airlock connect") {
		t.Errorf("connect after a forged callback = %d, %q; want exit 1 naming the state mismatch and what to do", code, r.stderr)
	}
	if _, err := e.openStore(t).GetConnection(context.Background(), "slack", "bot_token", "mallory"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a connection was stored after a forged callback: %v", err)
	}
	// The real sign-in cannot complete afterwards: the listener is gone.
	if _, err := http.Get(u.Query().Get("redirect_uri")); err == nil {
		t.Error("the callback listener still answers after the flow ended")
	}
}

func testConnectTimeout(t *testing.T, e *connectEnv) {
	// Nobody signs in, so the only possible outcome is the deadline.
	r := startConnect(t, "slack", "--config", e.cfg, "--subject", "carol", "--no-browser", "--timeout", "200ms")
	code := r.wait()
	if code != exitError || !strings.Contains(r.stderr.String(), "no sign-in was finished within 200ms") || !strings.Contains(r.stderr.String(), "--timeout") {
		t.Errorf("connect with nobody signing in = %d, %q; want exit 1 explaining the timeout and --timeout", code, r.stderr)
	}
	if _, err := e.openStore(t).GetConnection(context.Background(), "slack", "bot_token", "carol"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a connection was stored after a timeout: %v", err)
	}
}

func testConnectErrors(t *testing.T, e *connectEnv) {
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no connector", []string{"--config", e.cfg}, exitUsage, "name the connector"},
		{"not loaded", []string{"github", "--config", e.cfg, "--no-browser"}, exitError, "airlock grant github"},
		{"not a code slot", []string{"slack", "--slot", "nope", "--config", e.cfg, "--no-browser"}, exitError, `no credential slot "nope"`},
		{"remote listener", []string{"slack", "--listen", "0.0.0.0:0", "--config", e.cfg}, exitUsage, "loopback"},
		{"hostname listener", []string{"slack", "--listen", "localhost.attacker.example:80", "--config", e.cfg}, exitUsage, "loopback"},
		{"empty subject", []string{"slack", "--subject", "", "--config", e.cfg}, exitUsage, "--subject"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := airlock(t, append([]string{"connect"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("connect %q = %d, %q %q; want %d and %q", tt.args, code, out, errOut, tt.code, tt.want)
			}
		})
	}

	// A connector whose slot is a static bearer cannot be connected by signing in.
	root, _ := pluginbuild.ModuleRoot()
	wasm, err := pluginbuild.Build(context.Background(), pluginbuild.Options{Package: "./plugins/slack", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	stamped, err := pluginbuild.Stamp(filepath.Join(root, "manifests/slack.yaml"), wasm, filepath.Join(e.dir, "bearer"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.dir, "bearer.grant.yaml"), []byte("connector: slack\ntools: [\"*\"]\nscopes: [\"*\"]\nhosts: [\"*\"]\n"), 0o600)
	cfg := filepath.Join(e.dir, "bearer.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("state_dir: state\nconnectors:\n  - manifest: %s\n    grant: bearer.grant.yaml\n", stamped)), 0o600)
	code, _, errOut := airlock(t, "connect", "slack", "--config", cfg, "--no-browser")
	if code != exitError || !strings.Contains(errOut, "no oauth2_authorization_code credential slot") {
		t.Errorf("connect on a bearer connector = %d, %q", code, errOut)
	}

	// Installed but not granted: the error says to grant it.
	st := e.openStore(t)
	installSlack(t, st, stamped, wasm)
	code, _, errOut = airlock(t, "connect", "slack", "--state-dir", filepath.Join(e.dir, "state"), "--no-browser")
	if code != exitError || !strings.Contains(errOut, "not granted") || !strings.Contains(errOut, "airlock grant slack") {
		t.Errorf("connect on an ungranted connector = %d, %q", code, errOut)
	}
}
