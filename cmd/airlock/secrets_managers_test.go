package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/1Password/connect-sdk-go/onepassword"

	"github.com/airlock-dev/airlock/internal/dopplertest"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/opconnecttest"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// The README's path: the Slack bot token lives in 1Password or Doppler; airlock.yaml says how
// to reach the manager, the grant names the secret, `airlock call` posts with it. The bot
// token and the managers' own tokens appear in nothing the CLI prints, the audit included.
func TestConfigSecretManagers(t *testing.T) {
	hermetic(t)
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
	const botToken, opToken, dopplerToken = "xoxb-managed-canary-7788", "op-connect-cli-canary-5566", "dp.st.prd.cli-canary-3344"
	slack := fakeslack.New(botToken)
	slackURL, stop := slack.Start()
	defer stop()

	conn := opconnecttest.Start(t, opToken)
	conn.AddVault(opconnecttest.ID("vprod"), "Production", true)
	conn.AddItem(&onepassword.Item{ID: opconnecttest.ID("islack"), Title: "Slack bot", Vault: onepassword.ItemVault{ID: opconnecttest.ID("vprod")},
		Fields: []*onepassword.ItemField{{ID: "credential", Type: "CONCEALED", Label: "credential", Value: botToken}}})
	dop := dopplertest.Start(t)
	dop.SetTokens(map[string]string{dopplerToken: "backend/prd"})
	dop.Set("backend/prd", "SLACK_BOT_TOKEN", botToken)
	os.WriteFile(filepath.Join(dir, "op-token"), []byte(opToken+"\n"), 0o600)
	t.Setenv("AIRLOCK_TEST_DOPPLER_TOKEN", dopplerToken)

	for _, tc := range []struct{ name, block, ref string }{
		{"op", fmt.Sprintf("onepassword: {host: %q, token: %q}\n", conn.URL, "file:"+filepath.Join(dir, "op-token")), "op://Production/Slack bot/credential"},
		{"doppler", fmt.Sprintf("doppler: {api: %q, token: env:AIRLOCK_TEST_DOPPLER_TOKEN}\n", dop.URL), "doppler:backend/prd/SLACK_BOT_TOKEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := filepath.Join(dir, tc.name)
			os.MkdirAll(sub, 0o700)
			os.WriteFile(filepath.Join(sub, "slack.grant.yaml"), fmt.Appendf(nil, `connector: slack
tools: [post_message]
scopes: ["*"]
hosts: ["*"]
credentials:
  bot_token: %q
upstreams:
  "https://slack.com": %q
`, tc.ref, slackURL), 0o600)
			cfg := filepath.Join(sub, "airlock.yaml")
			os.WriteFile(cfg, fmt.Appendf(nil, "state_dir: state\n%sconnectors:\n  - manifest: %s\n    grant: slack.grant.yaml\n", tc.block, stamped), 0o600)
			var printed []string
			code, out, errOut := airlock(t, "call", "slack.post_message", "--config", cfg, "--args", `{"channel":"C0GENERAL","text":"token from `+tc.name+`"}`)
			printed = append(printed, out, errOut)
			var res struct{ OK bool }
			if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || !res.OK {
				t.Fatalf("call with the bot token in %s = %d, %q %q", tc.name, code, out, errOut)
			}
			code, out, errOut = airlock(t, "audit", "--config", cfg)
			printed = append(printed, out, errOut)
			if code != exitOK || !strings.Contains(out, "chat.postMessage") {
				t.Errorf("audit = %d, %q", code, out)
			}
			for _, leak := range []string{botToken, opToken, dopplerToken} {
				if strings.Contains(strings.Join(printed, "\n"), leak) {
					t.Errorf("the CLI printed %q", leak)
				}
			}
		})
	}

	// A mistaken block is reported with the file and what to write.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("state_dir: state\nonepassword: {host: \"ftp://connect\"}\nconnectors: []\n"), 0o600)
	if code, _, errOut := airlock(t, "call", "slack.post_message", "--config", bad); code == exitOK || !strings.Contains(errOut, "onepassword") || !strings.Contains(errOut, "http(s) URL") {
		t.Errorf("a bad onepassword host = %d, %q", code, errOut)
	}
	os.WriteFile(bad, []byte("state_dir: state\ndoppler: {tokn: env:X}\nconnectors: []\n"), 0o600)
	if code, _, errOut := airlock(t, "tools", "--config", bad); code == exitOK || !strings.Contains(errOut, `did you mean "token"`) {
		t.Errorf("a misspelt doppler key = %d, %q", code, errOut)
	}
}

// `airlock grant` takes op:// and doppler: references, saying they are read by the server.
func TestGrantAcceptsSecretManagerReferences(t *testing.T) {
	w := newGrantWorld(t)
	w.install(t)
	routes := filepath.Join(w.dir, "routes.yaml")
	os.WriteFile(routes, fmt.Appendf(nil, "connector: slack\nupstreams: {\"https://slack.com\": %q}\n", w.url), 0o600)
	base := []string{"grant", "slack", "--file", routes, "--tools", "*", "--scopes", "*", "--hosts", "*"}
	for ref, manager := range map[string]string{"op://Production/Slack bot/credential": "1Password Connect", "doppler:backend/prd/SLACK_BOT_TOKEN": "Doppler"} {
		_, errOut := w.must(t, exitOK, append(base, "--credential", "bot_token="+ref)...)
		if !strings.Contains(errOut, ref+" is not checked here; the server reads it from "+manager) {
			t.Errorf("grant --credential bot_token=%s says %q; want it accepted with a note that %s is asked when a call needs it", ref, errOut, manager)
		}
	}
}
