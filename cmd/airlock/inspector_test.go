package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// The README's MCP Inspector lines work as written: the real Inspector (its CLI mode, from
// testdata/inspector) starts 'airlock serve' with only the variables it passes (HOME, LOGNAME,
// PATH, SHELL, TERM, USER and its -e ones) and lists and calls the configured tools.
func TestREADMEInspector(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs the MCP Inspector and builds the Slack plugin")
	}
	inspector, _ := filepath.Abs(filepath.Join("testdata", "inspector", "node_modules", ".bin", "mcp-inspector"))
	if _, err := os.Stat(inspector); err != nil {
		if os.Getenv("AIRLOCK_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("the MCP Inspector is not installed: %v", err)
		}
		t.Skip("skipping: run `npm ci --prefix cmd/airlock/testdata/inspector` first")
	}
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := documentedInspectorLines(string(readme))
	if len(lines) < 2 {
		t.Fatalf("the README has %d Inspector lines, want the tools/list and the tools/call one", len(lines))
	}

	// What the README's reader has: airlock on PATH, a configured Slack connector whose secret
	// is a file reference, airlock.yaml in the working directory.
	dir, elsewhere, binDir := t.TempDir(), t.TempDir(), t.TempDir()
	self, _ := filepath.Abs(os.Args[0])
	if err := os.Symlink(self, filepath.Join(binDir, "airlock")); err != nil {
		t.Fatal(err)
	}
	wasm, err := pluginbuild.Build(context.Background(), pluginbuild.Options{Package: "./plugins/slack", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	stamped, err := pluginbuild.Stamp(filepath.Join(root, "manifests", "slack.yaml"), wasm, filepath.Join(dir, "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	const token = "xoxb-inspector-canary-0123456789"
	fake := fakeslack.New(token)
	url, stop := fake.Start()
	defer stop()
	os.WriteFile(filepath.Join(dir, "slack-token"), []byte(token), 0o600)
	os.WriteFile(filepath.Join(dir, "slack.grant.yaml"), []byte(fmt.Sprintf(
		"connector: slack\ntools: [\"*\"]\nscopes: [\"*\"]\nhosts: [\"*\"]\ncredentials:\n  bot_token: file:%s\nupstreams:\n  \"https://slack.com\": %q\n", filepath.Join(dir, "slack-token"), url)), 0o600)
	config := filepath.Join(dir, "airlock.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf("state_dir: state\nconnectors:\n  - manifest: %s\n    grant: slack.grant.yaml\n", stamped)), 0o600)

	// Compile the module into STATE_DIR/cache first, where the servers look (the Inspector
	// passes no AIRLOCK_CACHE_DIR): compiling it in each server can outlast the Inspector's
	// 15 s connect timeout on a loaded machine with -race.
	t.Setenv("AIRLOCK_CACHE_DIR", "")
	if code, out, errOut := airlock(t, "tools", "--config", config); code != exitOK || !strings.Contains(out, "slack.post_message") {
		t.Fatalf("tools = %d, %q %q", code, out, errOut)
	}
	env := []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + dir}
	if cache, err := os.UserCacheDir(); err == nil {
		env = append(env, "XDG_CACHE_HOME="+filepath.Dir(cache)) // npm's, not airlock's: the Inspector does not pass it
	}
	runLine := func(t *testing.T, cwd, line string, extraEnv ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		line = strings.Replace(line, "npx @modelcontextprotocol/inspector", inspector, 1)
		cmd := exec.CommandContext(ctx, "sh", "-c", line)
		cmd.Dir, cmd.Env = cwd, append(append([]string{}, env...), extraEnv...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		return string(out)
	}

	for _, line := range lines {
		want := `"name": "slack.post_message"`
		if strings.Contains(line, "tools/call") {
			want = "slack.post_message succeeded"
		}
		// As written, in the directory of airlock.yaml; then from elsewhere, so the
		// configuration can only have come through -e.
		for _, cwd := range []string{dir, elsewhere} {
			l := line
			if cwd == elsewhere {
				l = strings.ReplaceAll(line, "$PWD/airlock.yaml", config)
			}
			if out := runLine(t, cwd, l); !strings.Contains(out, want) {
				t.Errorf("in %s, %s\nprinted no %s:\n%s", cwd, l, want, out)
			}
		}
	}
	if msgs := fake.Messages(fakeslack.General); len(msgs) == 0 || msgs[len(msgs)-1].Text != "hi" {
		t.Errorf("the README's tools/call did not post to the fake Slack: %+v", msgs)
	}

	// What the README used to say: an exported AIRLOCK_CONFIG does not reach the server.
	out := runLine(t, elsewhere, "npx @modelcontextprotocol/inspector --cli airlock serve --method tools/list", "AIRLOCK_CONFIG="+config)
	if strings.Contains(out, "slack.post_message") || !strings.Contains(out, "serving no tools") {
		t.Errorf("an exported AIRLOCK_CONFIG reached the server, so the test does not show the Inspector's allow-list:\n%s", out)
	}
	// airlock's own --config after a --, as the README also says.
	out = runLine(t, elsewhere, "npx @modelcontextprotocol/inspector --cli --method tools/list -- airlock serve --config "+config)
	if !strings.Contains(out, "slack.post_message") {
		t.Errorf("--method tools/list -- airlock serve --config: no tool listed:\n%s", out)
	}
}

// documentedInspectorLines returns the README's command lines that start the Inspector, with
// their continuation lines joined.
func documentedInspectorLines(readme string) []string {
	var lines []string
	for _, m := range regexp.MustCompile(`(?m)^npx @modelcontextprotocol/inspector (?:.*\\\n)*.*$`).FindAllString(readme, -1) {
		lines = append(lines, regexp.MustCompile(`\\\n\s*`).ReplaceAllString(m, ""))
	}
	return lines
}
