package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// hermetic clears the AIRLOCK_* variables that would point a test's commands elsewhere.
func hermetic(t *testing.T) {
	t.Helper()
	for _, k := range []string{"AIRLOCK_CONFIG", "AIRLOCK_STATE", "AIRLOCK_STATE_DIR", "AIRLOCK_REDIS", "AIRLOCK_SUBJECT", "AIRLOCK_AGENT", "AIRLOCK_MASTER_KEY_REF", "AIRLOCK_SERVER", adminTokenEnv} {
		t.Setenv(k, "")
	}
	t.Setenv("AIRLOCK_ADMIN", "test-admin")
	t.Setenv(secret.MasterKeyEnv, "") // registers the restore; unset below: the key comes from the key file
	os.Unsetenv(secret.MasterKeyEnv)
}

// installSlack installs the stamped Slack connector (manifest and module paths) as the active
// version, as 'airlock plugin install --allow-unsigned' would.
func installSlack(t *testing.T, st *store.Store, stampedManifest, wasmPath string) *manifest.Manifest {
	t.Helper()
	raw, err := os.ReadFile(stampedManifest)
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse("slack.yaml", raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutInstalled(context.Background(), store.Installed{Name: m.Name, Version: m.Version, Digest: m.Module.SHA256,
		Publisher: m.Publisher, Manifest: raw, Module: wasm, Status: store.InstalledActive, Unsigned: true}); err != nil {
		t.Fatal(err)
	}
	return m
}

// withStdin makes 'airlock secret set' read s.
func withStdin(t *testing.T, s string) {
	t.Helper()
	old := stdin
	stdin = strings.NewReader(s)
	t.Cleanup(func() { stdin = old })
}

type adminBackend struct {
	name  string
	state func(t *testing.T, dir string) (dsn string, tamper func(t *testing.T, seq int64))
}

var adminBackends = []adminBackend{
	{"sqlite", func(t *testing.T, dir string) (string, func(*testing.T, int64)) {
		path := filepath.Join(dir, "state.db")
		return "sqlite:" + path, func(t *testing.T, seq int64) { tamperAudit(t, "sqlite", path, "?", seq) }
	}},
	{"postgres", func(t *testing.T, dir string) (string, func(*testing.T, int64)) {
		dsn := testenv.Postgres(t)
		return dsn, func(t *testing.T, seq int64) { tamperAudit(t, "pgx", dsn, "$", seq) }
	}},
}

// tamperAudit rewrites audit record seq behind the store's back, as an intruder with access to
// the database would: the call is made to look as if another agent made it.
func tamperAudit(t *testing.T, driver, dsn, ph string, seq int64) {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := func(i int) string {
		if ph == "$" {
			return fmt.Sprintf("$%d", i)
		}
		return "?"
	}
	var data []byte
	if err := db.QueryRow("SELECT data FROM audit WHERE seq = "+p(1), seq).Scan(&data); err != nil {
		t.Fatalf("reading audit record %d: %v", seq, err)
	}
	forged := bytes.Replace(data, []byte(`"agent":"cli"`), []byte(`"agent":"eve"`), 1)
	if bytes.Equal(forged, data) {
		t.Fatalf("audit record %d has no agent to forge: %s", seq, data)
	}
	if _, err := db.Exec("UPDATE audit SET data = "+p(1)+" WHERE seq = "+p(2), forged, seq); err != nil {
		t.Fatalf("tampering with audit record %d: %v", seq, err)
	}
}

// TestAdminCLI walks an admin's day through the CLI, on each state store backend: store a secret,
// grant an installed connector with it, rotate the master key, approve and deny calls, revoke
// tools, then verify and export the audit trail, and catch a tampered record.
func TestAdminCLI(t *testing.T) {
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := pluginbuild.Build(context.Background(), pluginbuild.Options{Package: "./plugins/slack", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range adminBackends {
		t.Run(b.name, func(t *testing.T) { testAdminCLI(t, b, root, wasm) })
	}
}

func testAdminCLI(t *testing.T, b adminBackend, root, wasm string) {
	hermetic(t)
	const canary = "xoxb-admin-cli-canary-5150"
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	dsn, tamper := b.state(t, dir)
	g := []string{"--state-dir", stateDir, "--state", dsn}
	// A shared (PostgreSQL) state never gets a master key created for it: the admin creates
	// one on purpose, as the README says. The embedded SQLite state gets one on first use.
	if b.name == "postgres" {
		if code, _, errOut := airlock(t, "init", "master-key", "--out", filepath.Join(stateDir, "master.key")); code != exitOK {
			t.Fatalf("airlock init master-key = %d: %s", code, errOut)
		}
	}
	cmd := func(args ...string) (int, string, string) {
		t.Helper()
		// Flags after the verb and its name, as users type them.
		return airlock(t, append(args, g...)...)
	}
	var outputs []string // everything the CLI printed, checked for the canary at the end
	must := func(want int, args ...string) (string, string) {
		t.Helper()
		code, out, errOut := cmd(args...)
		outputs = append(outputs, out, errOut)
		if code != want {
			t.Fatalf("airlock %s = %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out, errOut
	}

	stamped, err := pluginbuild.Stamp(filepath.Join(root, "manifests/slack.yaml"), wasm, filepath.Join(dir, "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	installSlack(t, st, stamped, wasm)
	st.Close()

	fake := fakeslack.New(canary)
	url, stop := fake.Start()
	defer stop()

	// Secrets: the value comes from stdin and is never printed.
	withStdin(t, canary+"\n")
	_, errOut := must(exitOK, "secret", "set", "slack_bot")
	if !strings.Contains(errOut, "store:slack_bot") {
		t.Errorf("secret set says %q; want the reference to use", errOut)
	}
	if code, _, errOut := cmd("secret", "set", "slack_bot", canary); code != exitUsage || !strings.Contains(errOut, "stdin") {
		t.Errorf("secret set with the value as an argument = %d, %q; want a usage error pointing at stdin", code, errOut)
	}
	withStdin(t, "")
	if code, _, errOut := cmd("secret", "set", "empty"); code != exitError || !strings.Contains(errOut, "empty") {
		t.Errorf("secret set with nothing on stdin = %d, %q", code, errOut)
	}
	out, _ := must(exitOK, "secret", "list")
	if !strings.Contains(out, "slack_bot") || !strings.Contains(out, "store:slack_bot") || strings.Contains(out, "empty") {
		t.Errorf("secret list = %q; want slack_bot only", out)
	}
	out, _ = must(exitOK, "secret", "list", "--json")
	if !json.Valid([]byte(out)) {
		t.Errorf("secret list --json is not JSON: %q", out)
	}

	// Grant the installed connector: review first, then the grant with the secret's reference.
	out, _ = must(exitOK, "grant", "slack", "--dry-run")
	if !strings.Contains(out, "UNSIGNED") || !strings.Contains(out, "post_message") || !strings.Contains(out, "bot_token") {
		t.Errorf("grant --dry-run review = %q", out)
	}
	if out, _ := must(exitOK, "grants"); !strings.Contains(out, "No grants") {
		t.Errorf("a dry run recorded a grant: %q", out)
	}
	grantFile := filepath.Join(dir, "slack.grant.yaml")
	os.WriteFile(grantFile, []byte(fmt.Sprintf("connector: slack\nupstreams:\n  \"https://slack.com\": %q\n", url)), 0o600)
	if code, _, errOut := cmd("grant", "slack", "--tools", "delete_everything", "--file", grantFile); code != exitError || !strings.Contains(errOut, "delete_everything") {
		t.Errorf("granting an undeclared tool = %d, %q; want it refused by name", code, errOut)
	}
	out, _ = must(exitOK, "grant", "slack", "--file", grantFile, "--tools", "*", "--scopes", "*", "--hosts", "*",
		"--credential", "bot_token=store:slack_bot", "--confirm", "post_message", "--note", "TICKET-1")
	if !strings.Contains(out, "Granted slack@1.0.0 (grant version 1, by test-admin)") {
		t.Errorf("grant = %q", out)
	}
	out, _ = must(exitOK, "grants")
	if !strings.Contains(out, "slack") || !strings.Contains(out, "test-admin") || !strings.Contains(out, "TICKET-1") {
		t.Errorf("grants = %q", out)
	}

	call := func(want int, tool, args string) string {
		t.Helper()
		out, _ := must(want, "call", "slack."+tool, "--args", args, "--subject", "acme")
		return out
	}
	if out := call(exitOK, "list_channels", `{}`); !strings.Contains(out, "C0GENERAL") {
		t.Fatalf("list_channels = %s", out)
	}

	// Rotate the master key: the secret still resolves under the new key, the old key opens nothing.
	keyFile := filepath.Join(stateDir, secret.MasterKeyFile)
	oldKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	must(exitOK, "secret", "rotate-key")
	newKey, _ := os.ReadFile(keyFile)
	if bytes.Equal(oldKey, newKey) {
		t.Fatal("rotate-key left the key file unchanged")
	}
	call(exitOK, "list_channels", `{}`)
	os.WriteFile(keyFile, oldKey, 0o600)
	if code, out, errOut := cmd("call", "slack.list_channels", "--subject", "acme"); code == exitOK {
		t.Errorf("a call with the old master key succeeded: %s %s", out, errOut)
	}
	os.WriteFile(keyFile, newKey, 0o600)

	// Approvals: post_message waits for a human; approval lets exactly that call run once.
	msg := `{"channel":"C0GENERAL","text":"deploy at noon"}`
	out = call(exitError, "post_message", msg)
	id := regexp.MustCompile(`ap_[0-9a-f]+`).FindString(out)
	if !strings.Contains(out, "approval_pending") || id == "" {
		t.Fatalf("post_message before approval = %s; want approval_pending with an ID", out)
	}
	seeded := len(fake.Messages(fakeslack.General))
	if posted := fake.Messages(fakeslack.General); strings.Contains(fmt.Sprint(posted), "deploy at noon") {
		t.Fatalf("the call waiting for approval reached Slack: %v", posted)
	}
	out, _ = must(exitOK, "approvals")
	if !strings.Contains(out, id) || !strings.Contains(out, "deploy at noon") || !strings.Contains(out, "acme") {
		t.Errorf("approvals = %q; want %s with its arguments and subject", out, id)
	}
	if code, _, _ := cmd("approve", "ap_0000000000000000"); code != exitError {
		t.Errorf("approving an unknown ID = %d, want 1", code)
	}
	must(exitOK, "approve", id)
	if out := call(exitError, "post_message", `{"channel":"C0GENERAL","text":"deploy at noon; also drop the DB"}`); !strings.Contains(out, "approval_pending") {
		t.Errorf("a call with changed arguments ran on another call's approval: %s", out)
	}
	call(exitOK, "post_message", msg)
	if n := len(fake.Messages(fakeslack.General)); n != seeded+1 {
		t.Errorf("#general has %d messages after the approved call, want %d", n, seeded+1)
	}
	out = call(exitError, "post_message", msg)
	id2 := regexp.MustCompile(`ap_[0-9a-f]+`).FindString(out)
	if id2 == "" || id2 == id {
		t.Fatalf("the approval was used twice or no new request was made: %s", out)
	}
	must(exitOK, "deny", id2, "--reason", "change freeze")
	if out := call(exitError, "post_message", msg); !strings.Contains(out, "denied") || !strings.Contains(out, "change freeze") {
		t.Errorf("a denied call = %s; want the denial and its reason", out)
	}
	if code, _, _ := cmd("approve", id2); code != exitError {
		t.Errorf("approving a denied request = %d, want 1", code)
	}
	if out, _ := must(exitOK, "approvals"); strings.Contains(out, id2) {
		t.Errorf("a denied request is still listed as pending: %q", out)
	}
	if out, _ := must(exitOK, "approvals", "--all"); !strings.Contains(out, id) || !strings.Contains(out, id2) {
		t.Errorf("approvals --all = %q; want both requests", out)
	}
	if n := len(fake.Messages(fakeslack.General)); n != seeded+1 {
		t.Errorf("#general has %d messages, want %d: the denied call must not have reached Slack", n, seeded+1)
	}

	// Revoke one tool, then everything.
	_, errOut = must(exitOK, "revoke", "slack", "--tools", "post_message", "--note", "INC-7")
	if !strings.Contains(errOut, "post_message of slack") {
		t.Errorf("revoke --tools says %q", errOut)
	}
	if out, _ := must(exitOK, "tools"); strings.Contains(out, "post_message") || !strings.Contains(out, "slack.list_channels") {
		t.Errorf("tools after revoking post_message = %q", out)
	}
	call(exitError, "post_message", msg)
	call(exitOK, "list_channels", `{}`)
	if code, _, errOut := cmd("revoke", "slack", "--tools", "no_such_tool"); code != exitError || !strings.Contains(errOut, "no_such_tool") {
		t.Errorf("revoking an unknown tool = %d, %q", code, errOut)
	}
	must(exitOK, "revoke", "slack")
	call(exitError, "list_channels", `{}`)
	out, _ = must(exitOK, "grants", "slack", "--history")
	if !strings.Contains(out, "REVOKED") || !strings.Contains(out, "INC-7") || strings.Count(out, "\nslack") != 3 {
		t.Errorf("grants --history = %q; want the grant, the partial revocation and the revocation", out)
	}
	if code, _, errOut := cmd("revoke", "slack"); code != exitError || !strings.Contains(errOut, "already revoked") {
		t.Errorf("revoking a revoked connector = %d, %q", code, errOut)
	}

	// The audit trail: intact, never the secret; then a record is rewritten behind the store's back.
	out, _ = must(exitOK, "audit", "verify")
	if !strings.HasPrefix(out, "OK: ") {
		t.Errorf("audit verify = %q", out)
	}
	out, _ = must(exitOK, "audit", "export")
	var victim int64
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		var ev struct {
			Agent string `json:"agent"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("audit export line is not JSON: %q", l)
		}
	}
	if len(lines) < 10 {
		t.Errorf("audit export has %d records; want one per call and request", len(lines))
	}
	out, _ = must(exitOK, "audit", "search", "--agent", "cli", "--json")
	if first := strings.SplitN(out, "\n", 2)[0]; first == "" {
		t.Fatal("no audit record of the CLI agent")
	}
	st, err = store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := st.QueryAudit(context.Background(), store.AuditFilter{Agent: "cli", Limit: 3})
	st.Close()
	if err != nil || len(recs) < 3 {
		t.Fatalf("QueryAudit = %d records, %v", len(recs), err)
	}
	victim = recs[2].Seq
	tamper(t, victim)
	code, out, _ := cmd("audit", "verify")
	if code != exitError || !strings.Contains(out, fmt.Sprintf("BROKEN: record %d:", victim)) {
		t.Errorf("audit verify after tampering with record %d = %d, %q; want exit 1 naming it", victim, code, out)
	}
	outputs = append(outputs, out)

	for i, o := range outputs {
		if strings.Contains(o, canary) {
			t.Errorf("output %d of the CLI holds the secret:\n%s", i, o)
		}
	}
}

func TestAdminTokensCLI(t *testing.T) {
	hermetic(t)
	stateDir := t.TempDir()
	if code, _, errOut := airlock(t, "admin", "add", "alice", "--state-dir", stateDir); code != exitUsage || !strings.Contains(errOut, "--role viewer, approver, granter or owner") {
		t.Errorf("admin add without a role = %d, %q; want a usage error listing the roles", code, errOut)
	}
	code, token, errOut := airlock(t, "admin", "add", "alice", "--role", "owner", "--state-dir", stateDir)
	token = strings.TrimSpace(token)
	if code != exitOK || !strings.HasPrefix(token, "airlock_admin_") || !strings.Contains(errOut, "only once") {
		t.Fatalf("admin add = %d, %q, %q", code, token, errOut)
	}
	// Only the hash is kept, in the state store (database file and its write-ahead log).
	for _, f := range []string{"state.db", "state.db-wal"} {
		raw, err := os.ReadFile(filepath.Join(stateDir, f))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), strings.TrimPrefix(token, "airlock_admin_")) {
			t.Errorf("%s holds the admin token itself; want only its hash", f)
		}
	}
	if _, err := os.Stat(filepath.Join(stateDir, "admins.json")); !os.IsNotExist(err) {
		t.Errorf("admin add wrote admins.json (%v); want tokens in the state store only", err)
	}
	if code, _, _ := airlock(t, "admin", "add", "alice", "--role", "viewer", "--state-dir", stateDir); code == exitOK {
		t.Error("adding an admin that exists succeeded; want it refused (revoke first)")
	}
	if code, _, errOut := airlock(t, "admin", "add", "../../etc/passwd", "--role", "viewer", "--state-dir", stateDir); code == exitOK {
		t.Errorf("admin add with a path as the name succeeded: %q", errOut)
	}
	airlock(t, "admin", "add", "bob", "--role", "viewer", "--state-dir", stateDir)
	code, out, _ := airlock(t, "admin", "list", "--state-dir", stateDir)
	if code != exitOK || !strings.Contains(out, "alice") || !strings.Contains(out, "bob") || strings.Contains(out, "airlock_admin_") {
		t.Errorf("admin list = %d, %q; want names, never tokens", code, out)
	}
	if code, _, errOut := airlock(t, "admin", "revoke", "alice", "--state-dir", stateDir); code != exitOK || !strings.Contains(errOut, "revoked") {
		t.Errorf("admin revoke = %d, %q", code, errOut)
	}
	code, out, _ = airlock(t, "admin", "list", "--state-dir", stateDir)
	if code != exitOK || strings.Contains(out, "alice") || !strings.Contains(out, "bob") {
		t.Errorf("admin list after revoking alice = %q", out)
	}
	if code, _, _ := airlock(t, "admin", "revoke", "alice", "--state-dir", stateDir); code != exitError {
		t.Errorf("revoking a revoked admin = %d, want 1", code)
	}
	if code, _, _ := airlock(t, "admin", "frobnicate", "--state-dir", stateDir); code != exitUsage {
		t.Errorf("admin frobnicate = %d, want 2", code)
	}
}
