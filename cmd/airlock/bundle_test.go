package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/bundle"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// stampedSlack builds the Slack plugin (cached) and stamps its manifest into a temporary
// directory, as 'airlock plugin build' does; it returns the stamped manifest's path.
func stampedSlack(t *testing.T) string {
	t.Helper()
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := pluginbuild.Build(context.Background(), pluginbuild.Options{Package: "./plugins/slack", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	stamped, err := pluginbuild.Stamp(filepath.Join(root, "manifests", "slack.yaml"), wasm, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return stamped
}

type installedRow struct {
	Name, Version, Status, Publisher string
	Digest                           string `json:"module_sha256"`
	Unsigned                         bool
}

func listInstalled(t *testing.T, state string) []installedRow {
	t.Helper()
	code, out, errOut := airlock(t, "plugin", "list", "--json", "--state-dir", state)
	if code != exitOK {
		t.Fatalf("plugin list = %d %s", code, errOut)
	}
	var rows []installedRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("plugin list --json: %v\n%s", err, out)
	}
	return rows
}

// The publisher's and the admin's path: keygen → pack → sign → verify → trust → install → list
// → test → remove.
func TestPluginRoundTrip(t *testing.T) {
	stamped := stampedSlack(t)
	dir, state := t.TempDir(), t.TempDir()
	key := filepath.Join(dir, "airlock-dev.key")
	bun := filepath.Join(dir, "slack.airlock")
	sd := []string{"--state-dir", state}

	mustRun := func(args ...string) string {
		t.Helper()
		code, out, errOut := airlock(t, args...)
		if code != exitOK {
			t.Fatalf("airlock %s = %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	mustRun("plugin", "keygen", "--out", key)
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if code, _, errOut := airlock(t, "plugin", "keygen", "--out", key); code != exitError || !strings.Contains(errOut, "--force") {
		t.Errorf("keygen over an existing key = %d %q; want a refusal naming --force", code, errOut)
	}
	mustRun("plugin", "pack", stamped, "--out", bun)

	// Unsigned: refused, with the way out.
	code, _, errOut := airlock(t, append([]string{"plugin", "install", bun}, sd...)...)
	if code != exitError || !strings.Contains(errOut, "not signed") || !strings.Contains(errOut, "airlock plugin sign") {
		t.Errorf("install unsigned = %d %q", code, errOut)
	}
	mustRun("plugin", "sign", bun, "--key", key)
	// Signed but not trusted yet.
	code, _, errOut = airlock(t, append([]string{"plugin", "verify", bun}, sd...)...)
	if code != exitError || !strings.Contains(errOut, "airlock trust add airlock-dev") {
		t.Errorf("verify untrusted = %d %q", code, errOut)
	}
	if out := mustRun("plugin", "verify", bun, "--key", key+".pub"); !strings.Contains(out, "ok: slack 1.0.0 by airlock-dev") {
		t.Errorf("verify --key = %q", out)
	}
	mustRun(append([]string{"trust", "add", "airlock-dev", key + ".pub"}, sd...)...)
	if out := mustRun(append([]string{"trust", "list"}, sd...)...); !strings.Contains(out, "airlock-dev") {
		t.Errorf("trust list = %q", out)
	}
	if code, _, errOut := airlock(t, append([]string{"trust", "add", "evil", key}, sd...)...); code != exitError || !strings.Contains(errOut, "never the private key") {
		t.Errorf("trust add with the private key file = %d %q", code, errOut)
	}
	mustRun(append([]string{"plugin", "verify", bun}, sd...)...)
	out := mustRun(append([]string{"plugin", "install", bun}, sd...)...)
	if !strings.Contains(out, "active") || !strings.Contains(out, "Nothing is granted") {
		t.Errorf("install = %q", out)
	}
	rows := listInstalled(t, state)
	if len(rows) != 1 || rows[0].Name != "slack" || rows[0].Status != "active" || rows[0].Publisher != "airlock-dev" || rows[0].Unsigned || len(rows[0].Digest) != 64 {
		t.Errorf("installed = %+v", rows)
	}

	// plugin test: every tool against a fake Slack, with a canary token.
	fake := httptest.NewServer(fakeslack.New("xoxb-never-matches"))
	defer fake.Close()
	code, out, errOut = airlock(t, "plugin", "test", bun, "--upstream", fake.URL, "--json")
	var rep bundle.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("plugin test --json = %d: %v\n%s%s", code, err, out, errOut)
	}
	if len(rep.Tools) != 3 || rep.CanaryEchoes != 0 {
		t.Errorf("report: %d tools, %d echoes", len(rep.Tools), rep.CanaryEchoes)
	}
	for _, tr := range rep.Tools {
		if len(tr.Requests) == 0 || !strings.HasPrefix(tr.Requests[0].URL, "https://slack.com/api/") || !tr.Requests[0].Injected {
			t.Errorf("tool %s: requests %+v (skipped: %s)", tr.Tool, tr.Requests, tr.Skipped)
		}
	}

	mustRun(append([]string{"plugin", "remove", "slack@1.0.0"}, sd...)...)
	if rows := listInstalled(t, state); len(rows) != 0 {
		t.Errorf("after remove: %+v", rows)
	}
	if code, _, errOut := airlock(t, append([]string{"plugin", "remove", "slack"}, sd...)...); code != exitError || !strings.Contains(errOut, "not installed") {
		t.Errorf("remove twice = %d %q", code, errOut)
	}
	mustRun(append([]string{"trust", "rm", "airlock-dev"}, sd...)...)
	if code, _, _ := airlock(t, append([]string{"plugin", "install", bun}, sd...)...); code != exitError {
		t.Error("install after the key was removed from the trust store succeeded")
	}
}

// rewrite rewrites a bundle file entry by entry.
func rewrite(t *testing.T, src, dst string, edit func(h *tar.Header, data []byte) []byte) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		data = edit(h, data)
		h.Size = int64(len(data))
		if h.Typeflag != tar.TypeReg {
			h.Size, data = 0, nil
		}
		tw.WriteHeader(h)
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPluginInstallRefusals(t *testing.T) {
	stamped := stampedSlack(t)
	dir, state := t.TempDir(), t.TempDir()
	key := filepath.Join(dir, "k")
	good := filepath.Join(dir, "good.airlock")
	sd := []string{"--state-dir", state}
	for _, args := range [][]string{
		{"plugin", "keygen", "--out", key},
		{"plugin", "pack", stamped, "--out", good, "--key", key},
		append([]string{"trust", "add", "airlock-dev", key + ".pub"}, sd...),
	} {
		if code, out, errOut := airlock(t, args...); code != exitOK {
			t.Fatalf("airlock %v = %d %s%s", args, code, out, errOut)
		}
	}
	tests := []struct {
		name   string
		edit   func(h *tar.Header, data []byte) []byte
		reason string
	}{
		{"module byte", func(h *tar.Header, d []byte) []byte {
			if h.Name == bundle.ModuleEntry {
				d[len(d)/2] ^= 0x40
			}
			return d
		}, "module digest does not match"},
		{"manifest field", func(h *tar.Header, d []byte) []byte {
			if h.Name == bundle.ManifestEntry {
				d = bytes.Replace(d, []byte("timeout_ms: 15000"), []byte("timeout_ms: 600000"), 1)
			}
			return d
		}, "modified after signing"},
		{"path traversal", func(h *tar.Header, d []byte) []byte {
			if h.Name == bundle.SignatureEntry {
				h.Name = "../signature.json"
			}
			return d
		}, "path-traversing"},
		{"symlink", func(h *tar.Header, d []byte) []byte {
			if h.Name == bundle.ModuleEntry {
				h.Typeflag, h.Linkname = tar.TypeSymlink, "/etc/shadow"
			}
			return d
		}, "is a link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.airlock")
			rewrite(t, good, bad, tt.edit)
			code, _, errOut := airlock(t, append([]string{"plugin", "install", bad}, sd...)...)
			if code != exitError || !strings.Contains(errOut, tt.reason) {
				t.Errorf("install = %d %q; want exit 1 saying %q", code, errOut, tt.reason)
			}
			if rows := listInstalled(t, state); len(rows) != 0 {
				t.Errorf("a refused bundle was installed: %+v", rows)
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		data, _ := os.ReadFile(good)
		bad := filepath.Join(t.TempDir(), "bad.airlock")
		os.WriteFile(bad, data[:len(data)/2], 0o644)
		code, _, errOut := airlock(t, append([]string{"plugin", "install", bad}, sd...)...)
		if code != exitError || !strings.Contains(errOut, "truncated") {
			t.Errorf("install = %d %q", code, errOut)
		}
		if rows := listInstalled(t, state); len(rows) != 0 {
			t.Errorf("a refused bundle was installed: %+v", rows)
		}
	})
	// The good bundle still installs: the refusals left nothing behind.
	if code, _, errOut := airlock(t, append([]string{"plugin", "install", good}, sd...)...); code != exitOK {
		t.Errorf("install good = %d %s", code, errOut)
	}
}

func TestPluginInstallURL(t *testing.T) {
	stamped := stampedSlack(t)
	dir, state := t.TempDir(), t.TempDir()
	key := filepath.Join(dir, "k")
	good := filepath.Join(dir, "good.airlock")
	sd := []string{"--state-dir", state}
	for _, args := range [][]string{
		{"plugin", "keygen", "--out", key},
		{"plugin", "pack", stamped, "--out", good, "--key", key},
		append([]string{"trust", "add", "airlock-dev", key + ".pub"}, sd...),
	} {
		if code, out, errOut := airlock(t, args...); code != exitOK {
			t.Fatalf("airlock %v = %d %s%s", args, code, out, errOut)
		}
	}
	data, _ := os.ReadFile(good)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slack.airlock":
			w.Write(data)
		case "/huge.airlock":
			zeros := make([]byte, 1<<20)
			for range bundle.MaxSize>>20 + 2 {
				if _, err := w.Write(zeros); err != nil {
					return
				}
			}
		case "/away":
			http.Redirect(w, r, "http://plugins.example.com/slack.airlock", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for _, tt := range []struct{ path, reason string }{
		{"/huge.airlock", "more than the"},
		{"/away", "use https"},
		{"/missing.airlock", "HTTP 404"},
	} {
		code, _, errOut := airlock(t, append([]string{"plugin", "install", srv.URL + tt.path}, sd...)...)
		if code != exitError || !strings.Contains(errOut, tt.reason) {
			t.Errorf("install %s = %d %q; want %q", tt.path, code, errOut, tt.reason)
		}
	}
	if rows := listInstalled(t, state); len(rows) != 0 {
		t.Errorf("a refused download was installed: %+v", rows)
	}
	if code, out, errOut := airlock(t, append([]string{"plugin", "install", srv.URL + "/slack.airlock"}, sd...)...); code != exitOK || !strings.Contains(out, "active") {
		t.Errorf("install from loopback URL = %d %s%s", code, out, errOut)
	}
}

func TestDownloadAllowed(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://plugins.example.com/x.airlock": true,
		"http://127.0.0.1:8080/x.airlock":       true,
		"http://[::1]/x.airlock":                true,
		"http://localhost/x.airlock":            true,
		"http://plugins.example.com/x.airlock":  false,
		"http://127.0.0.1.nip.io/x.airlock":     false,
		"ftp://plugins.example.com/x.airlock":   false,
		"file:///etc/passwd":                    false,
	} {
		u, _ := url.Parse(raw)
		if err := downloadAllowed(u); (err == nil) != ok {
			t.Errorf("downloadAllowed(%s) = %v, want allowed=%v", raw, err, ok)
		}
	}
}

// plugin test exits 1 when the connector's tools fail, as they do against an upstream that
// checks its key and gets the canary; --secret gives the slot the key the upstream accepts, and
// the manifest's examples name a channel the upstream has.
func TestPluginTestExitCodeAndSecret(t *testing.T) {
	stamped := stampedSlack(t)
	src, err := os.ReadFile(stamped)
	if err != nil {
		t.Fatal(err)
	}
	withExamples := strings.NewReplacer(
		"    - name: post_message\n", "    - name: post_message\n      examples: [{channel: C0GENERAL, text: hello}]\n",
		"    - name: channel_history\n", "    - name: channel_history\n      examples: [{channel: C0GENERAL}, {channel: C0RANDOM}]\n",
	).Replace(string(src))
	if err := os.WriteFile(stamped, []byte(withExamples), 0o644); err != nil {
		t.Fatal(err)
	}
	bun := filepath.Join(t.TempDir(), "slack.airlock")
	if code, out, errOut := airlock(t, "plugin", "pack", stamped, "--out", bun); code != exitOK {
		t.Fatalf("pack = %d %s%s", code, out, errOut)
	}
	const sandboxToken = "xoxb-sandbox-real-6a1f"
	fake := httptest.NewServer(fakeslack.New(sandboxToken))
	defer fake.Close()

	code, out, _ := airlock(t, "plugin", "test", bun, "--upstream", fake.URL)
	if code != exitError || !strings.Contains(out, "FAIL: 4 of 4 calls failed") || !strings.Contains(out, "invalid_auth") {
		t.Errorf("plugin test with the canary against an upstream that checks its key = %d\n%s; want exit 1", code, out)
	}
	t.Setenv("SLACK_SANDBOX_TOKEN", sandboxToken)
	code, out, errOut := airlock(t, "plugin", "test", bun, "--upstream", fake.URL, "--secret", "bot_token=env:SLACK_SANDBOX_TOKEN")
	if code != exitOK || !strings.Contains(out, "PASS: 4 calls") || !strings.Contains(out, `"channel":"C0RANDOM"`) || strings.Contains(out+errOut, sandboxToken) {
		t.Errorf("plugin test --secret = %d\n%s%s; want exit 0, both examples called, the token never shown", code, out, errOut)
	}
	if code, _, errOut := airlock(t, "plugin", "test", bun, "--upstream", fake.URL, "--secret", "bot_token"); code != exitUsage {
		t.Errorf("--secret without =REF = %d %q", code, errOut)
	}
}
