package mcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// The end-to-end tests drive `airlock serve` with the official TypeScript MCP SDK
// (testdata/tsclient, @modelcontextprotocol/sdk from npm), over stdio and over streamable HTTP.
// They need node and `npm ci --prefix host/mcp/testdata/tsclient`; without them they skip.

// e2e is what both transports share: the airlock binary, a fake Slack, and a configuration that
// starts with no connector and a second one that installs Slack.
type e2e struct {
	bin, dir, config, installed string
	fake                        *fakeslack.Server
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the TypeScript SDK end-to-end test in -short mode")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipping the TypeScript SDK end-to-end test: node is not installed (apt-get install nodejs npm)")
	}
	if _, err := os.Stat(filepath.Join("testdata", "tsclient", "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		t.Skipf("skipping the TypeScript SDK end-to-end test: run `npm ci --prefix host/mcp/testdata/tsclient` first (%s found)", node)
	}
	return setupE2E(t)
}

// setupE2E builds what the end-to-end tests share (see e2e).
func setupE2E(t *testing.T) *e2e {
	t.Helper()
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{dir: t.TempDir()}
	if e.bin, err = buildAirlock(root); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	wasm, err := pluginbuild.Build(ctx, pluginbuild.Options{Package: "./plugins/slack", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	stamped, err := pluginbuild.Stamp(filepath.Join(root, "manifests", "slack.yaml"), wasm, filepath.Join(e.dir, "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	e.fake = fakeslack.New(botToken)
	url, stop := e.fake.Start()
	t.Cleanup(stop)
	tokenFile := filepath.Join(e.dir, "slack-bot-token")
	write(t, tokenFile, botToken)
	grant := filepath.Join(e.dir, "slack.grant.yaml")
	write(t, grant, fmt.Sprintf(`connector: slack
tools: ["*"]
scopes: ["*"]
hosts: ["*"]
credentials:
  bot_token: file:%s
upstreams:
  "https://slack.com": %q
`, tokenFile, url))
	e.config = filepath.Join(e.dir, "airlock.yaml")
	write(t, e.config, "state_dir: state\nconnectors: []\n")
	e.installed = fmt.Sprintf("state_dir: state\nconnectors:\n  - manifest: %s\n    grant: %s\n", stamped, grant)
	return e
}

var (
	airlockOnce sync.Once
	airlockDir  string // removed by TestMain
	airlockBin  string
	airlockErr  error
)

// buildAirlock builds the airlock command once per test binary, so both end-to-end tests share it.
func buildAirlock(root string) (string, error) {
	airlockOnce.Do(func() {
		if airlockDir, airlockErr = os.MkdirTemp("", "airlock-e2e-"); airlockErr != nil {
			return
		}
		airlockBin = filepath.Join(airlockDir, "airlock")
		build := exec.Command("go", "build", "-o", airlockBin, "./cmd/airlock")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			airlockErr = fmt.Errorf("building airlock: %v\n%s", err, out)
		}
	})
	return airlockBin, airlockErr
}

func TestMain(m *testing.M) {
	code := m.Run()
	if airlockDir != "" {
		os.RemoveAll(airlockDir)
	}
	os.Exit(code)
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serveArgs are the arguments of `airlock serve` for the tests: a fast reload interval.
func (e *e2e) serveArgs(extra ...string) []string {
	return append([]string{"serve", "--config", e.config, "--reload-interval", "100ms", "--log-level", "info"}, extra...)
}

// runClient runs client.mjs with env and fails the test with its output unless it passes.
func (e *e2e) runClient(t *testing.T, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "client.mjs")
	cmd.Dir = filepath.Join("testdata", "tsclient")
	cmd.Env = append(os.Environ(), append(env, "AIRLOCK_E2E_CONFIG="+e.config, "AIRLOCK_E2E_INSTALLED="+e.installed)...)
	out, err := cmd.CombinedOutput()
	t.Logf("TypeScript client:\n%s", out)
	if err != nil || !strings.Contains(string(out), "\nPASS") {
		t.Fatalf("the TypeScript client failed: %v", err)
	}
	var posted bool
	for _, r := range e.fake.Requests() {
		if strings.Contains(string(r.Body), "hello from the TypeScript SDK") && r.Authorized {
			posted = true
		}
	}
	if !posted {
		t.Error("the fake Slack did not receive the message with the injected token")
	}
}

func TestTypeScriptClientStdio(t *testing.T) {
	e := newE2E(t)
	args, _ := json.Marshal(e.serveArgs("--stdio"))
	e.runClient(t, "AIRLOCK_E2E_MODE=stdio", "AIRLOCK_E2E_COMMAND="+e.bin, "AIRLOCK_E2E_ARGS="+string(args))
}

func TestTypeScriptClientHTTP(t *testing.T) {
	e := newE2E(t)
	add := exec.Command(e.bin, "agent", "add", "ts-client", "--subject", "acme", "--config", e.config)
	out, err := add.Output()
	if err != nil {
		t.Fatalf("airlock agent add: %v", err)
	}
	token := strings.TrimSpace(string(out))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := exec.CommandContext(ctx, e.bin, e.serveArgs("--http", "127.0.0.1:0")...)
	stderr, err := serve.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	var mu sync.Mutex
	urlc := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		re := regexp.MustCompile(`at (http://\S+/mcp)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		serve.Wait()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() {
			t.Logf("airlock serve:\n%s", logs.String())
		}
	})
	var url string
	select {
	case url = <-urlc:
	case <-time.After(time.Minute):
		t.Fatal("airlock serve --http did not report its address within a minute")
	}
	e.runClient(t, "AIRLOCK_E2E_MODE=http", "AIRLOCK_E2E_URL="+url, "AIRLOCK_E2E_TOKEN="+token)

	// The calls ran as the token's agent and subject.
	// The audit log is in the state store; its sink appends in the background, so poll.
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(e.dir, "state", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var calls int
	for deadline := time.Now().Add(30 * time.Second); calls == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		recs, err := st.QueryAudit(context.Background(), store.AuditFilter{Kind: "call"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			var ev struct{ Kind, Agent, Subject string }
			json.Unmarshal(r.Data, &ev)
			calls++
			if ev.Agent != "ts-client" || ev.Subject != "acme" {
				t.Errorf("audited call ran as %q/%q, want ts-client/acme", ev.Agent, ev.Subject)
			}
		}
	}
	if calls == 0 {
		t.Error("no call in the audit log")
	}
}

// A client that writes its requests and closes stdin at once (echo … | airlock serve) gets
// every reply before airlock exits.
func TestServeStdioPipe(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: builds airlock and the Slack plugin")
	}
	e := setupE2E(t)
	write(t, e.config, e.installed)
	var in strings.Builder
	in.WriteString(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"pipe","version":"1"}}}` + "\n")
	in.WriteString(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")
	in.WriteString(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slack.post_message","arguments":{"channel":"C0GENERAL","text":"hello from the TypeScript SDK"}}}` + "\n")
	in.WriteString(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}` + "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, e.serveArgs("--stdio")...)
	cmd.Stdin = strings.NewReader(in.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("airlock serve: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{`"id":1,"result"`, `"id":2,"result"`, `"id":3,"result"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no reply %s in:\n%s", want, out)
		}
	}
	if !strings.Contains(string(out), `C0GENERAL`) {
		t.Errorf("the tool call's reply lacks its result:\n%s", out)
	}
}
