package bundle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/bundle"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

const slackToken = "xoxb-canary-probe-51c2"

// probeState is the probes' scratch directory, shared so the Slack module is compiled once per
// machine, not once per probe (over a minute each under -race on a loaded CI machine); like
// hosttest's, the compilation cache under it is keyed by content.
var probeState = filepath.Join(filepath.Dir(pluginbuild.DefaultCacheDir()), "probe-state")

// slackBundle returns the Slack connector's module and its source manifest edited by edit,
// packed and verified (unsigned).
func slackBundle(t *testing.T, edit func(string) string) *bundle.Verified {
	t.Helper()
	_, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	root, _ := pluginbuild.ModuleRoot()
	src, err := os.ReadFile(filepath.Join(root, "manifests", "slack.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	if edit != nil {
		s = edit(s)
	}
	b, err := bundle.Pack([]byte(s), wasm)
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	v, err := bundle.Verify(b, nil, bundle.Options{AllowUnsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// withExamples adds a channel ID the fake knows as a JSON Schema example (without it the probe
// makes "C00", which matches the pattern but names no channel).
func withExamples(s string) string {
	return strings.ReplaceAll(s, "pattern: ^[CGD][A-Z0-9]{2,}$", "pattern: ^[CGD][A-Z0-9]{2,}$\n          examples: [C0GENERAL]")
}

func TestProbeSlack(t *testing.T) {
	fake := httptest.NewServer(fakeslack.New(slackToken))
	defer fake.Close()
	rep, err := bundle.Probe(context.Background(), slackBundle(t, withExamples), bundle.ProbeOptions{StateDir: probeState, Upstream: fake.URL, Canary: slackToken})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() || rep.CanaryEchoes != 0 || len(rep.Tools) != 3 {
		t.Fatalf("report:\n%s", rep)
	}
	for _, tr := range rep.Tools {
		if !tr.OK || tr.Output != "valid against output_schema" {
			t.Errorf("%s: ok=%v output=%q error=%v (arguments %s)", tr.Tool, tr.OK, tr.Output, tr.Error, tr.Arguments)
		}
		if len(tr.Requests) != 1 || !strings.HasPrefix(tr.Requests[0].URL, "https://slack.com/api/") ||
			tr.Requests[0].Credential != "bot_token" || !tr.Requests[0].Injected || tr.Requests[0].Outcome == "denied" {
			t.Errorf("%s: requests %+v", tr.Tool, tr.Requests)
		}
	}
	if strings.Contains(rep.String(), slackToken) {
		t.Error("the report shows the canary")
	}
}

// A manifest that does not describe the code: the probe must say so.
func TestProbeFindsMismatches(t *testing.T) {
	fake := httptest.NewServer(fakeslack.New(slackToken))
	defer fake.Close()
	t.Run("request outside the network rules", func(t *testing.T) {
		v := slackBundle(t, func(s string) string {
			return strings.Replace(s, "path_prefix: /api/", "path_prefix: /api/chat.", 1)
		})
		rep, err := bundle.Probe(context.Background(), v, bundle.ProbeOptions{StateDir: probeState, Upstream: fake.URL, Canary: slackToken})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Failed() || !strings.Contains(rep.String(), "NOT DECLARED") {
			t.Errorf("report does not flag the undeclared request:\n%s", rep)
		}
	})
	t.Run("output not matching its schema", func(t *testing.T) {
		v := slackBundle(t, func(s string) string {
			// post_message's output schema now demands a field the code never returns.
			s = withExamples(s)
			i := strings.Index(s, "    output_schema:")
			return s[:i] + strings.Replace(s[i:], "      type: object", "      type: object\n      minProperties: 99", 1)
		})
		rep, err := bundle.Probe(context.Background(), v, bundle.ProbeOptions{StateDir: probeState, Upstream: fake.URL, Canary: slackToken})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Failed() || !strings.HasPrefix(rep.Tools[0].Output, "INVALID") {
			t.Errorf("report does not flag the invalid output:\n%s", rep)
		}
	})
}

// A connector whose every tool fails (the upstream refuses the key) fails the probe, although no
// request left the manifest and nothing was echoed.
func TestProbeFailsWhenToolsFail(t *testing.T) {
	fake := httptest.NewServer(fakeslack.New("xoxb-another-key"))
	defer fake.Close()
	rep, err := bundle.Probe(context.Background(), slackBundle(t, withExamples), bundle.ProbeOptions{StateDir: probeState, Upstream: fake.URL, Canary: slackToken})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed() || !strings.Contains(rep.String(), "FAIL: 3 of 3 calls failed") {
		t.Errorf("every call failed but the probe passes:\n%s", rep)
	}
	// A tool the probe cannot make valid arguments for is not called: that fails too.
	v := slackBundle(t, func(s string) string {
		return strings.ReplaceAll(withExamples(s), "pattern: ^[CGD][A-Z0-9]{2,}$\n          examples: [C0GENERAL]", "pattern: ^[CGD][A-Z0-9]{2,}$\n          not: {pattern: ^C}")
	})
	fake2 := httptest.NewServer(fakeslack.New(slackToken))
	defer fake2.Close()
	rep, err = bundle.Probe(context.Background(), v, bundle.ProbeOptions{StateDir: probeState, Upstream: fake2.URL, Canary: slackToken})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed() || !strings.Contains(rep.String(), "add \"examples\"") {
		t.Errorf("tools the probe could not call pass:\n%s", rep)
	}
}

// tools[].examples: the probe calls the tool once with each, so every upstream path a new
// argument reaches is exercised; one failing example fails the probe.
func TestProbeManifestExamples(t *testing.T) {
	fake := httptest.NewServer(fakeslack.New(slackToken))
	defer fake.Close()
	withToolExamples := func(examples ...string) func(string) string {
		return func(s string) string {
			s = withExamples(s)
			i := strings.Index(s, "  - name: channel_history")
			j := i + strings.Index(s[i:], "    input_schema:")
			return s[:j] + "    examples:\n      - " + strings.Join(examples, "\n      - ") + "\n" + s[j:]
		}
	}
	rep, err := bundle.Probe(context.Background(), slackBundle(t, withToolExamples("{channel: C0GENERAL}", "{channel: C0RANDOM, limit: 1}")),
		bundle.ProbeOptions{StateDir: probeState, Upstream: fake.URL, Canary: slackToken})
	if err != nil {
		t.Fatal(err)
	}
	var history []string
	for _, tr := range rep.Tools {
		if tr.Tool == "channel_history" {
			history = append(history, string(tr.Arguments))
		}
	}
	if rep.Failed() || len(rep.Tools) != 4 || strings.Join(history, " ") != `{"channel":"C0GENERAL"} {"channel":"C0RANDOM","limit":1}` {
		t.Fatalf("channel_history calls %v; report:\n%s", history, rep)
	}
	// C0OPS: the bot is not a member; that example fails, and so does the probe.
	rep, err = bundle.Probe(context.Background(), slackBundle(t, withToolExamples("{channel: C0GENERAL}", "{channel: C0OPS}")),
		bundle.ProbeOptions{StateDir: probeState, Upstream: fake.URL, Canary: slackToken})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed() || !strings.Contains(rep.String(), "not_in_channel") {
		t.Errorf("a failing example passes:\n%s", rep)
	}
}

// --secret: a real credential for an upstream that checks it; the value is checked for echoes
// and never reported.
func TestProbeRealSecret(t *testing.T) {
	const real = "xoxb-REAL-sandbox-9d1e"
	fake := httptest.NewServer(fakeslack.New(real))
	defer fake.Close()
	src := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { return real, n == "SLACK_SANDBOX_TOKEN" }}}
	v := slackBundle(t, withExamples)
	rep, err := bundle.Probe(context.Background(), v, bundle.ProbeOptions{StateDir: probeState, Upstream: fake.URL,
		Secrets: map[string]string{"bot_token": "env:SLACK_SANDBOX_TOKEN"}, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rep)
	if rep.Failed() || strings.Contains(string(b)+rep.String(), real) {
		t.Fatalf("with the real token: %s", rep)
	}
	for _, tc := range []struct{ slot, ref, want string }{
		{"bot_tokn", "env:SLACK_SANDBOX_TOKEN", "no credential slot"},
		{"bot_token", "env:UNSET_VAR", "UNSET_VAR"},
	} {
		_, err := bundle.Probe(context.Background(), v, bundle.ProbeOptions{StateDir: probeState, Upstream: fake.URL, Secrets: map[string]string{tc.slot: tc.ref}, Source: src})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--secret %s=%s: %v, want an error naming %q", tc.slot, tc.ref, err, tc.want)
		}
	}
}

// Refused bundles never touch a running host: it keeps serving the version it runs.
func TestRefusalsLeaveTheHostServing(t *testing.T) {
	ctx := context.Background()
	m, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	fake := httptest.NewServer(fakeslack.New(slackToken))
	defer fake.Close()
	t.Setenv("AIRLOCK_TEST_SLACK_TOKEN", slackToken)
	h, _ := hosttest.New(t, host.Config{})
	g := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: map[string]manifest.CredentialGrant{"bot_token": {Secret: "env:AIRLOCK_TEST_SLACK_TOKEN"}},
		Upstreams:   map[string]string{"https://slack.com": fake.URL}}
	if err := h.LoadModule(ctx, m, wasm, g); err != nil {
		t.Fatal(err)
	}
	call := func() {
		t.Helper()
		res := h.Call(ctx, host.CallRequest{Tool: "slack.list_channels", Arguments: []byte(`{}`)})
		if !res.OK {
			t.Fatalf("list_channels: %+v", res.Error)
		}
	}
	call()

	key, stranger := newKey(t), newKey(t)
	st := openStore(t)
	trust(t, st, "airlock-dev", key)
	v := slackBundle(t, nil)
	b, _ := bundle.Pack(v.ManifestYAML, v.Module)
	b.Sign(stranger)
	untrusted, _ := b.Bytes()
	b.Sign(key)
	b.Module = append(bytes.Clone(b.Module), 0)
	tampered, _ := b.Bytes()
	for _, data := range [][]byte{untrusted, tampered, untrusted[:len(untrusted)/3]} {
		if _, err := install(ctx, st, data, bundle.Options{}); err == nil {
			t.Fatal("a bad bundle installed")
		}
		call()
	}
	assertNothingInstalled(t, st)
}
