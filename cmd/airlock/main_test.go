package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

func airlock(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpAndUsage(t *testing.T) {
	if code, out, _ := airlock(t); code != exitOK || !strings.Contains(out, "airlock demo") {
		t.Errorf("airlock (no args) = %d, %q", code, out)
	}
	for _, cmd := range commands() {
		code, out, _ := airlock(t, "help", cmd.name)
		if code != exitOK || cmd.name != "version" && !strings.Contains(out, "Example:") {
			t.Errorf("airlock help %s = %d; want 0 and an example, got %q", cmd.name, code, out)
		}
	}
	if code, _, errOut := airlock(t, "frobnicate"); code != exitUsage || !strings.Contains(errOut, "airlock help") {
		t.Errorf("unknown command = %d, %q; want exit 2 pointing at help", code, errOut)
	}
	if code, _, errOut := airlock(t, "call"); code != exitUsage || !strings.Contains(errOut, "slack.post_message") {
		t.Errorf("call without a tool = %d, %q", code, errOut)
	}
	if code, _, errOut := airlock(t, "tools", "--bogus"); code != exitUsage || !strings.Contains(errOut, "bogus") {
		t.Errorf("bad flag = %d, %q", code, errOut)
	}
}

func TestManifestValidate(t *testing.T) {
	root, _ := pluginbuild.ModuleRoot()
	code, out, errOut := airlock(t, "manifest", "validate", filepath.Join(root, "manifests/slack.yaml"))
	if code != exitOK || !strings.Contains(out, "ok: slack") || !strings.Contains(out, "not pinned") {
		t.Errorf("validate slack.yaml = %d, %q %q", code, out, errOut)
	}
	if !strings.Contains(out, "'airlock plugin build slack'") {
		t.Errorf("validate slack.yaml in the repository does not advise 'airlock plugin build slack': %q", out)
	}
	// Outside the repository 'plugin build' cannot work: a publisher's scaffold is pinned by pack.
	dir := filepath.Join(t.TempDir(), "w")
	if code, _, errOut := airlock(t, "init", "connector", "w", "--dir", dir); code != exitOK {
		t.Fatal(errOut)
	}
	code, out, errOut = airlock(t, "manifest", "validate", filepath.Join(dir, "manifest.yaml"))
	if code != exitOK || strings.Contains(out, "plugin build") || !strings.Contains(out, "'airlock plugin pack'") {
		t.Errorf("validate of a scaffold outside the repository = %d, %q %q; want pack advised, not build", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("abi: 1\nname: Bad Name\n"), 0o644)
	code, _, errOut = airlock(t, "manifest", "validate", bad)
	if code != exitError || !strings.Contains(errOut, "bad.yaml:2") {
		t.Errorf("validate bad.yaml = %d, %q; want exit 1 and FILE:LINE", code, errOut)
	}
}

// The user's path: build and stamp the plugin, write a grant and airlock.yaml, list and call.
func TestConfigToolsAndCall(t *testing.T) {
	root, _ := pluginbuild.ModuleRoot()
	dir := t.TempDir()
	wasm, err := pluginbuild.Build(context.Background(), pluginbuild.Options{Package: "./plugins/slack", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	stamped, err := pluginbuild.Stamp(filepath.Join(root, "manifests/slack.yaml"), wasm, filepath.Join(dir, "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	fake := fakeslack.New("xoxb-cli-canary-123456")
	url, stop := fake.Start()
	defer stop()
	t.Setenv("AIRLOCK_TEST_SLACK_TOKEN", "xoxb-cli-canary-123456")
	os.WriteFile(filepath.Join(dir, "slack.grant.yaml"), []byte(fmt.Sprintf(`connector: slack
tools: [post_message, list_channels]
scopes: ["*"]
hosts: ["*"]
credentials:
  bot_token: env:AIRLOCK_TEST_SLACK_TOKEN
upstreams:
  "https://slack.com": %q
`, url)), 0o600)
	cfg := filepath.Join(dir, "airlock.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("state_dir: state\nconnectors:\n  - manifest: %s\n    grant: slack.grant.yaml\n", stamped)), 0o600)

	code, out, errOut := airlock(t, "tools", "--config", cfg)
	if code != exitOK || !strings.Contains(out, "slack.post_message") || strings.Contains(out, "channel_history") {
		t.Fatalf("tools = %d, %q %q; want the two granted tools only", code, out, errOut)
	}
	code, out, errOut = airlock(t, "call", "slack.post_message", "--config", cfg, "--args", `{"channel":"C0GENERAL","text":"from the CLI"}`)
	var res struct {
		OK   bool
		Data json.RawMessage
	}
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || !res.OK {
		t.Fatalf("call = %d, %q %q", code, out, errOut)
	}
	code, out, _ = airlock(t, "call", "slack.post_message", "--config", cfg, "--args", `{"channel":"C0OPS","text":"x"}`)
	if code != exitError || !strings.Contains(out, `"correctable"`) {
		t.Errorf("failing call = %d, %q; want exit 1 with the structured error on stdout", code, out)
	}
	code, out, _ = airlock(t, "audit", "--config", cfg)
	if code != exitOK || !strings.Contains(out, "chat.postMessage") || strings.Contains(out, "canary") {
		t.Errorf("audit = %d, %q", code, out)
	}
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two plugins")
	}
	code, out, errOut := airlock(t, "demo", "--dir", t.TempDir())
	if code != exitOK {
		t.Fatalf("demo = %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"✔ ok", "invalid_arguments", "not_in_channel", "egress_denied", "appears in the audit log: false"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
