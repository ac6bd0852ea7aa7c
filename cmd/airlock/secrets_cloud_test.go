package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/cloudsecrettest"
)

// An operator keeps the Slack token in Google Secret Manager and names the service account key
// in airlock.yaml's gcp: block (no GOOGLE_APPLICATION_CREDENTIALS): the CLI resolves the grant's
// gcp-sm: reference with it, the call works, and the token appears nowhere in what the CLI
// prints or the audit log holds.
func TestGCPSecretFromConfigFile(t *testing.T) {
	w := newGrantWorld(t) // w.run fails the test if a command prints the token
	f := cloudsecrettest.NewGCP(t)
	f.AddVersion("acme-prod", "slack-bot", grantCanary)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "absent.json")) // ADC would fail
	os.WriteFile(filepath.Join(w.dir, "slack.grant.yaml"), fmt.Appendf(nil, `connector: slack
tools: [post_message]
scopes: ["*"]
hosts: ["*"]
credentials:
  bot_token: gcp-sm:projects/acme-prod/secrets/slack-bot/versions/latest
upstreams:
  "https://slack.com": %q
`, w.url), 0o600)
	os.WriteFile(filepath.Join(w.dir, "airlock.yaml"), fmt.Appendf(nil, "state_dir: state\ngcp:\n  credentials_file: %s\n  endpoint: %s\n  cache_ttl: 10s\nconnectors:\n  - manifest: %s\n    grant: slack.grant.yaml\n",
		f.KeyFile, f.URL, w.stamped), 0o600)

	if code, out := w.call(t, "slack.post_message", `{"channel":"C0GENERAL","text":"from gcp"}`); code != exitOK {
		t.Fatalf("call = %d, %s", code, out)
	}
	if audit, _ := w.must(t, exitOK, "audit"); !strings.Contains(audit, "chat.postMessage") {
		t.Errorf("audit = %q, want the call", audit)
	}
	if f.Stats().Reads == 0 {
		t.Error("the secret was not read from Secret Manager")
	}
}

// The azure: block is read and checked; an identity that cannot work is refused at start with
// the file's name, not at the first call.
func TestAzureConfigBlock(t *testing.T) {
	hermetic(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "airlock.yaml")
	os.WriteFile(cfg, []byte("state_dir: state\nazure:\n  client_id: 0b5c6a0e\n  client_secret: env:AZURE_SECRET\n"), 0o600)
	code, _, errOut := airlock(t, "call", "slack.post_message", "--config", cfg)
	if code == exitOK || !strings.Contains(errOut, "airlock.yaml") || !strings.Contains(errOut, "client_secret needs the application's tenant_id and client_id") {
		t.Errorf("azure: client_secret without tenant_id = %d, %q", code, errOut)
	}
	os.WriteFile(cfg, []byte("state_dir: state\nazure:\n  tenant: x\n"), 0o600)
	if code, _, errOut := airlock(t, "tools", "--config", cfg); code == exitOK || !strings.Contains(errOut, "tenant") {
		t.Errorf("an unknown key in azure: = %d, %q", code, errOut)
	}
}

// An admin grants a connector a secret kept in a cloud secret manager: the grant is recorded,
// with a warning that the reference is checked by the server when a call needs it; a malformed
// scheme is still refused.
func TestGrantWithCloudSecretReferences(t *testing.T) {
	w := newGrantWorld(t)
	w.install(t)
	base := []string{"grant", "slack", "--tools", "*", "--scopes", "*", "--hosts", "*"}
	for ref, manager := range map[string]string{
		"gcp-sm:projects/acme-prod/secrets/slack-bot/versions/latest": "Google Secret Manager",
		"azure-kv:contoso-prod/slack-bot":                             "Azure Key Vault",
	} {
		_, errOut := w.must(t, exitOK, append(base, "--credential", "bot_token="+ref)...)
		if !strings.Contains(errOut, "warning") || !strings.Contains(errOut, ref+" is not checked here; the server reads it from "+manager) {
			t.Errorf("grant with %s says %q; want a warning naming %s", ref, errOut, manager)
		}
	}
	if code, _, errOut := w.run(t, append(base, "--credential", "bot_token=gcp-secret:x")...); code != exitError || !strings.Contains(errOut, "gcp-sm:") {
		t.Errorf("an unknown scheme = %d, %q; want it refused, listing gcp-sm:", code, errOut)
	}
}
