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

	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// grantWorld is a state directory with the Slack connector built and stamped, a fake Slack, a
// store secret slack_bot, and a command runner with the state flags appended.
type grantWorld struct {
	dir, stamped, wasm, url string
	fake                    *fakeslack.Server
	g                       []string
}

const grantCanary = "xoxb-grant-cli-canary-4242"

func newGrantWorld(t *testing.T) *grantWorld {
	t.Helper()
	hermetic(t)
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	w := &grantWorld{dir: t.TempDir()}
	if w.wasm, err = pluginbuild.Build(context.Background(), pluginbuild.Options{Package: "./plugins/slack", Root: root}); err != nil {
		t.Fatal(err)
	}
	if w.stamped, err = pluginbuild.Stamp(filepath.Join(root, "manifests/slack.yaml"), w.wasm, filepath.Join(w.dir, "plugins")); err != nil {
		t.Fatal(err)
	}
	w.fake = fakeslack.New(grantCanary)
	url, stop := w.fake.Start()
	t.Cleanup(stop)
	w.url = url
	// No airlock.yaml unless a test writes one.
	w.g = []string{"--state-dir", filepath.Join(w.dir, "state"), "--state", "sqlite:" + filepath.Join(w.dir, "state", "state.db"),
		"--config", filepath.Join(w.dir, "airlock.yaml")}
	w.writeConfig(t, "")
	withStdin(t, grantCanary+"\n")
	w.must(t, exitOK, "secret", "set", "slack_bot")
	return w
}

func (w *grantWorld) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	code, out, errOut := airlock(t, append(args, w.g...)...)
	for _, s := range []string{out, errOut} {
		if strings.Contains(s, grantCanary) {
			t.Fatalf("airlock %s printed the secret: %s", strings.Join(args, " "), s)
		}
	}
	return code, out, errOut
}

func (w *grantWorld) must(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	code, out, errOut := w.run(t, args...)
	if code != want {
		t.Fatalf("airlock %s = %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out, errOut
}

// install installs the stamped Slack connector in the store, as 'plugin install' would.
func (w *grantWorld) install(t *testing.T) {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(w.dir, "state", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	installSlack(t, st, w.stamped, w.wasm)
}

// writeConfig writes airlock.yaml naming the Slack connector with grant (none when "").
func (w *grantWorld) writeConfig(t *testing.T, grant string) {
	t.Helper()
	cfg := "state_dir: state\n"
	if grant != "" {
		os.WriteFile(filepath.Join(w.dir, "slack.grant.yaml"), []byte(grant), 0o600)
		cfg += fmt.Sprintf("connectors:\n  - manifest: %s\n    grant: slack.grant.yaml\n", w.stamped)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "airlock.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (w *grantWorld) call(t *testing.T, tool, args string) (int, string) {
	t.Helper()
	code, out, _ := w.run(t, "call", tool, "--args", args)
	return code, out
}

// A new user approving a change with flags: the grant's upstreams, confirm rule and other slots
// survive; --dry-run shows the resulting grant and its diff and records nothing; --replace
// replaces.
func TestGrantFlagsPatchTheCurrentGrant(t *testing.T) {
	w := newGrantWorld(t)
	w.install(t)
	file := filepath.Join(w.dir, "first.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf("connector: slack\ntools: [list_channels]\nscopes: ['*']\nhosts: ['*']\nconfirm: [post_message]\n"+
		"credentials: {bot_token: store:slack_bot}\nupstreams: {\"https://slack.com\": %q}\nlimits: {timeout_ms: 5000}\n", w.url)), 0o600)
	w.must(t, exitOK, "grant", "slack", "--file", file)
	if code, out := w.call(t, "slack.list_channels", `{}`); code != exitOK {
		t.Fatalf("list_channels after the first grant = %d %s", code, out)
	}

	// Dry run of a flag change: the resulting grant, the diff, nothing recorded.
	out, _ := w.must(t, exitOK, "grant", "slack", "--tools", "list_channels,post_message", "--dry-run")
	for _, want := range []string{"Resulting grant", "- tools: list_channels", "+ tools: list_channels, post_message", w.url} {
		if !strings.Contains(out, want) {
			t.Errorf("grant --dry-run lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "- upstreams") || strings.Contains(out, "- confirm") {
		t.Errorf("grant --dry-run says a flag change drops upstreams or confirm:\n%s", out)
	}
	if code, _ := w.call(t, "slack.post_message", `{"channel":"C0GENERAL","text":"x"}`); code == exitOK {
		t.Fatal("a dry run recorded the grant")
	}

	// The flag grant: upstreams keep routing to the fake, confirm keeps asking for approval.
	w.must(t, exitOK, "grant", "slack", "--tools", "list_channels,post_message")
	if code, out := w.call(t, "slack.list_channels", `{}`); code != exitOK || !strings.Contains(out, "C0GENERAL") {
		t.Fatalf("list_channels after a flag grant = %d %s; the grant's upstreams were dropped", code, out)
	}
	if code, out := w.call(t, "slack.post_message", `{"channel":"C0GENERAL","text":"x"}`); code == exitOK || !strings.Contains(out, "approval_pending") {
		t.Fatalf("post_message after a flag grant = %d %s; want approval_pending (the confirm rule kept)", code, out)
	}
	out, _ = w.must(t, exitOK, "grants", "--json")
	var views []struct{ Grant json.RawMessage }
	if err := json.Unmarshal([]byte(out), &views); err != nil || len(views) != 1 {
		t.Fatalf("grants --json = %s", out)
	}
	var compact bytes.Buffer
	json.Compact(&compact, views[0].Grant)
	for _, want := range []string{`"upstreams"`, `"confirm"`, `"timeout_ms":5000`, `"bot_token":"store:slack_bot"`} {
		if !strings.Contains(compact.String(), want) {
			t.Errorf("the recorded grant lost %s: %s", want, views[0].Grant)
		}
	}

	// --replace: what the flags say is the whole grant.
	w.must(t, exitOK, "grant", "slack", "--replace", "--tools", "list_channels", "--scopes", "*", "--hosts", "*", "--credential", "bot_token=store:slack_bot")
	out, _ = w.must(t, exitOK, "grants", "--json")
	if strings.Contains(out, "upstreams") || strings.Contains(out, "confirm") {
		t.Errorf("grant --replace kept parts of the old grant: %s", out)
	}
}

// A connector configured in airlock.yaml and also installed and granted in the store: the
// store's confirm rule holds, `grants` says where each part comes from, and a revoke refuses
// the very next call — for a connector only airlock.yaml grants, too.
func TestRevokeFileAndStoreConnector(t *testing.T) {
	w := newGrantWorld(t)
	w.writeConfig(t, fmt.Sprintf("connector: slack\ntools: ['*']\nscopes: ['*']\nhosts: ['*']\n"+
		"credentials: {bot_token: store:slack_bot}\nupstreams: {\"https://slack.com\": %q}\n", w.url))

	// Only the file grants it: revoke some tools, then all of it.
	if code, out := w.call(t, "slack.post_message", `{"channel":"C0GENERAL","text":"from the file"}`); code != exitOK {
		t.Fatalf("post_message, file grant = %d %s", code, out)
	}
	w.must(t, exitOK, "revoke", "slack", "--tools", "post_message")
	if code, out := w.call(t, "slack.post_message", `{"channel":"C0GENERAL","text":"x"}`); code == exitOK || !strings.Contains(out, "not_granted") {
		t.Fatalf("post_message after revoking it = %d %s", code, out)
	}
	if code, out := w.call(t, "slack.list_channels", `{}`); code != exitOK {
		t.Fatalf("list_channels after revoking post_message = %d %s", code, out)
	}
	_, errOut := w.must(t, exitOK, "revoke", "slack")
	if !strings.Contains(errOut, "airlock.yaml") {
		t.Errorf("revoke of a configured connector says %q; want it to say the store wins over airlock.yaml", errOut)
	}
	if code, out := w.call(t, "slack.list_channels", `{}`); code == exitOK || !strings.Contains(out, "revoked") {
		t.Fatalf("list_channels after revoke = %d %s; want it refused as revoked", code, out)
	}

	// Installed and granted in the store as well, with a confirm rule the file does not have.
	w.install(t)
	w.must(t, exitOK, "grant", "slack", "--replace", "--tools", "*", "--scopes", "*", "--hosts", "*",
		"--credential", "bot_token=store:slack_bot", "--confirm", "post_message")
	out, _ := w.must(t, exitOK, "grants", "slack")
	for _, want := range []string{"most restrictive", "confirm", "post_message", "store", "upstreams.https://slack.com", "file"} {
		if !strings.Contains(out, want) {
			t.Errorf("grants slack lacks %q:\n%s", want, out)
		}
	}
	if code, out := w.call(t, "slack.post_message", `{"channel":"C0GENERAL","text":"x"}`); code == exitOK || !strings.Contains(out, "approval_pending") {
		t.Fatalf("post_message = %d %s; want approval_pending: the store's confirm rule must hold although airlock.yaml has none", code, out)
	}
	if code, out := w.call(t, "slack.list_channels", `{}`); code != exitOK {
		t.Fatalf("list_channels = %d %s", code, out)
	}
	w.must(t, exitOK, "revoke", "slack")
	if code, out := w.call(t, "slack.list_channels", `{}`); code == exitOK || !strings.Contains(out, "not_granted") {
		t.Fatalf("the call right after revoke = %d %s; want it refused", code, out)
	}
	if out, _ := w.must(t, exitOK, "grants", "slack"); !strings.Contains(out, "REVOKED") {
		t.Errorf("grants after revoke:\n%s", out)
	}
}

// One bad credential reference: refused when it can never work, a warning when this shell
// cannot resolve it, and, when it reaches a host anyway (airlock.yaml is not checked), only its
// connector's tools fail — with what an admin must do — while the others keep serving.
func TestBadReferenceLeavesOtherConnectorsServing(t *testing.T) {
	w := newGrantWorld(t)
	w.install(t)
	routes := filepath.Join(w.dir, "routes.yaml")
	os.WriteFile(routes, []byte(fmt.Sprintf("connector: slack\nupstreams: {\"https://slack.com\": %q}\n", w.url)), 0o600)
	base := []string{"grant", "slack", "--file", routes, "--tools", "*", "--scopes", "*", "--hosts", "*"}
	for _, bad := range []string{"wx_key", "store:does_not_exist", "nosuch:thing"} {
		code, _, errOut := w.run(t, append(base, "--credential", "bot_token="+bad)...)
		if code != exitError || !strings.Contains(errOut, "bot_token") {
			t.Errorf("grant with --credential bot_token=%s = %d, %q; want it refused", bad, code, errOut)
		}
		if bad == "wx_key" && strings.Contains(errOut, "wx_key") {
			t.Errorf("the refusal repeats a reference without a scheme (it may be a secret): %q", errOut)
		}
	}
	if out, _ := w.must(t, exitOK, "grants"); !strings.Contains(out, "No grants") {
		t.Fatalf("a refused grant was recorded: %s", out)
	}
	_, errOut := w.must(t, exitOK, append(base, "--credential", "bot_token=env:AIRLOCK_TEST_UNSET_TOKEN")...)
	if !strings.Contains(errOut, "warning") || !strings.Contains(errOut, "AIRLOCK_TEST_UNSET_TOKEN") {
		t.Errorf("grant with an unset env reference says %q; want a warning", errOut)
	}

	// Another connector, from airlock.yaml, with a working reference: it keeps serving.
	other := strings.Replace(mustRead(t, w.stamped), "name: slack\n", "name: chat\n", 1)
	otherPath := filepath.Join(filepath.Dir(w.stamped), "chat.yaml")
	os.WriteFile(otherPath, []byte(other), 0o600)
	os.WriteFile(filepath.Join(w.dir, "chat.grant.yaml"), []byte(fmt.Sprintf("connector: chat\ntools: ['*']\nscopes: ['*']\nhosts: ['*']\n"+
		"credentials: {bot_token: store:slack_bot}\nupstreams: {\"https://slack.com\": %q}\n", w.url)), 0o600)
	os.WriteFile(filepath.Join(w.dir, "airlock.yaml"), []byte(fmt.Sprintf("state_dir: state\nconnectors:\n  - manifest: %s\n    grant: chat.grant.yaml\n", otherPath)), 0o600)

	out, errOut := w.must(t, exitOK, "tools")
	if !strings.Contains(out, "chat.list_channels") || !strings.Contains(out, "slack.list_channels") {
		t.Errorf("tools = %q %q; want both connectors listed", out, errOut)
	}
	if code, out := w.call(t, "chat.list_channels", `{}`); code != exitOK {
		t.Fatalf("the healthy connector = %d %s", code, out)
	}
	code, out := w.call(t, "slack.list_channels", `{}`)
	if code == exitOK || !strings.Contains(out, "credential_unavailable") || !strings.Contains(out, "AIRLOCK_TEST_UNSET_TOKEN") {
		t.Fatalf("the connector with the unset reference = %d %s; want credential_unavailable naming the variable", code, out)
	}
	// Setting it fixes the connector on the next call.
	t.Setenv("AIRLOCK_TEST_UNSET_TOKEN", grantCanary)
	if code, out := w.call(t, "slack.list_channels", `{}`); code != exitOK {
		t.Fatalf("after setting the variable = %d %s", code, out)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
