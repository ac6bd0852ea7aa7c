package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/airlock-dev/airlock/host/secret"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// adminRecord is what the test reads of an admin record.
type adminRecord struct {
	Kind, Actor, Action, Target, Outcome, Realm string
	Seq                                         int64
}

func adminRecords(t *testing.T, dsn string) ([]adminRecord, []store.AuditRecord) {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var (
		out []adminRecord
		all []store.AuditRecord
	)
	for after := int64(0); ; {
		recs, err := st.QueryAudit(context.Background(), store.AuditFilter{AfterSeq: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out, all
		}
		for _, r := range recs {
			all = append(all, r)
			var a adminRecord
			if err := json.Unmarshal(r.Data, &a); err != nil {
				t.Fatal(err)
			}
			a.Seq = r.Seq
			if a.Kind == audit.KindAdmin || a.Kind == audit.KindAuth {
				out = append(out, a)
			}
		}
		after = recs[len(recs)-1].Seq
	}
}

// TestEveryAdminActionIsAudited walks the CLI and the admin API through every admin action a
// user can take and wants exactly one audit record for each, with its actor, and no secret
// value or token anywhere in the trail.
func TestEveryAdminActionIsAudited(t *testing.T) {
	stamped := stampedSlack(t)
	for _, b := range adminBackends {
		t.Run(b.name, func(t *testing.T) { testEveryAdminAction(t, b, stamped) })
	}
}

func testEveryAdminAction(t *testing.T, b adminBackend, stamped string) {
	hermetic(t)
	t.Setenv("AIRLOCK_ADMIN", "")
	const canary = "xoxb-audit-canary-8472"
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	dsn, _ := b.state(t, dir)
	// As the README says for a shared state: create the master key once, name it everywhere.
	masterKey := filepath.Join(dir, "master.key")
	if code, _, errOut := airlock(t, "init", "master-key", "--out", masterKey); code != exitOK {
		t.Fatalf("init master-key = %d: %s", code, errOut)
	}
	keyText, err := os.ReadFile(masterKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(secret.MasterKeyEnv, strings.TrimSpace(string(keyText)))
	g := []string{"--state-dir", stateDir, "--state", dsn}
	var printed []string
	must := func(args ...string) string {
		t.Helper()
		code, out, errOut := airlock(t, append(args, g...)...)
		printed = append(printed, out, errOut)
		if code != exitOK {
			t.Fatalf("airlock %s = %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	publish := func(args ...string) {
		t.Helper()
		if code, out, errOut := airlock(t, args...); code != exitOK {
			t.Fatalf("airlock %s = %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	cli := adminName()
	if !strings.HasPrefix(cli, "cli:") {
		t.Fatalf("the CLI's actor is %q, want cli:<os user>", cli)
	}

	// A publisher's signed bundles: 1.0.0, and 1.1.0 that asks for a longer timeout.
	keyFile := filepath.Join(dir, "pub.key")
	publish("plugin", "keygen", "--out", keyFile)
	bun := filepath.Join(dir, "slack-1.0.0.airlock")
	publish("plugin", "pack", stamped, "--out", bun, "--key", keyFile)
	raw, err := os.ReadFile(stamped)
	if err != nil {
		t.Fatal(err)
	}
	up := bytes.Replace(bytes.Replace(raw, []byte("version: 1.0.0"), []byte("version: 1.1.0"), 1), []byte("timeout_ms: 15000"), []byte("timeout_ms: 25000"), 1)
	upManifest := filepath.Join(filepath.Dir(stamped), "slack-1.1.0.yaml")
	if err := os.WriteFile(upManifest, up, 0o600); err != nil {
		t.Fatal(err)
	}
	bun2 := filepath.Join(dir, "slack-1.1.0.airlock")
	publish("plugin", "pack", upManifest, "--out", bun2, "--key", keyFile)

	must("trust", "add", "airlock-dev", keyFile+".pub")
	must("plugin", "install", bun)
	if out := must("plugin", "install", bun2); !strings.Contains(out, "PENDING") {
		t.Fatalf("installing 1.1.0 = %q, want it pending", out)
	}
	withStdin(t, canary+"\n")
	must("secret", "set", "slack_bot")
	withStdin(t, "another-value\n")
	must("secret", "set", "spare")
	must("secret", "rm", "spare")
	must("grant", "slack", "--tools", "*", "--scopes", "*", "--hosts", "*", "--credential", "bot_token=store:slack_bot", "--confirm", "post_message")
	pending := func(text string) string {
		t.Helper()
		code, out, _ := airlock(t, append([]string{"call", "slack.post_message", "--args", fmt.Sprintf(`{"channel":"C0GENERAL","text":%q}`, text)}, g...)...)
		id := regexp.MustCompile(`ap_[0-9a-f]+`).FindString(out)
		if code != exitError || id == "" {
			t.Fatalf("post_message = %d %s; want approval_pending", code, out)
		}
		return id
	}
	ap1, ap2 := pending("one"), pending("two")
	must("approve", ap1)
	must("deny", ap2, "--reason", "freeze")
	must("revoke", "slack", "--tools", "post_message")
	// The key came from AIRLOCK_MASTER_KEY: the new one is printed once, to be set everywhere.
	t.Setenv(secret.MasterKeyEnv, strings.TrimSpace(must("secret", "rotate-key")))
	agentTok := strings.TrimSpace(must("agent", "add", "ci-bot"))
	must("agent", "revoke", "ci-bot")
	must("admin", "add", "old-admin", "--role", "owner")
	must("admin", "revoke", "old-admin")
	adminTok := strings.TrimSpace(must("admin", "add", "alice", "--role", "owner"))
	must("audit", "key", "rotate")
	must("trust", "rm", "airlock-dev")
	must("profile", "set", "ops", "--member", "ci-bot", "--allow", "slack")
	must("profile", "delete", "ops")

	// The admin API, as alice, on a running server.
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		run(ctx, append([]string{"serve", "--http", addr}, g...), io.Discard, io.Discard)
	}()
	defer func() { cancel(); wg.Wait() }()
	do := func(tok, method, path, body string) int {
		t.Helper()
		var resp *http.Response
		for deadline := time.Now().Add(30 * time.Second); ; {
			req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err = http.DefaultClient.Do(req)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		printed = append(printed, string(b))
		return resp.StatusCode
	}
	if s := do("airlock_admin_not-a-token", "GET", "/admin/v1/grants", ""); s != http.StatusUnauthorized {
		t.Fatalf("a wrong admin token got %d", s)
	}
	if s := do(agentTok, "POST", "/mcp", `{}`); s != http.StatusUnauthorized {
		t.Fatalf("a revoked agent token got %d", s)
	}
	grant := `{"connector":"slack","tools":["*"],"scopes":["*"],"hosts":["*"],"credentials":{"bot_token":"store:slack_bot"},"confirm":["post_message"]}`
	if s := do(adminTok, "PUT", "/admin/v1/grants/slack?version=1.1.0", grant); s != http.StatusOK {
		t.Fatalf("PUT grant = %d %s", s, printed[len(printed)-1])
	}
	ap3, ap4 := pending("three"), pending("four")
	if s := do(adminTok, "POST", "/admin/v1/approvals/"+ap3+"/approve", ""); s != http.StatusOK {
		t.Fatalf("approve = %d", s)
	}
	if s := do(adminTok, "POST", "/admin/v1/approvals/"+ap4+"/deny", `{"reason":"no"}`); s != http.StatusOK {
		t.Fatalf("deny = %d", s)
	}
	if s := do(adminTok, "DELETE", "/admin/v1/grants/slack", ""); s != http.StatusOK {
		t.Fatalf("DELETE grant = %d", s)
	}
	if s := do(adminTok, "PUT", "/admin/v1/profiles/api-ops", `{"members":["ci-bot"],"tools":["slack.list_channels"]}`); s != http.StatusOK {
		t.Fatalf("PUT profile = %d %s", s, printed[len(printed)-1])
	}
	if s := do(adminTok, "DELETE", "/admin/v1/profiles/api-ops", ""); s != http.StatusOK {
		t.Fatalf("DELETE profile = %d", s)
	}
	cancel()
	wg.Wait()

	type key struct{ actor, action, target string }
	want := []key{
		{cli, "trust add", "airlock-dev"}, {cli, "install", "slack"}, {cli, "upgrade", "slack"},
		{cli, "secret set", "slack_bot"}, {cli, "secret set", "spare"}, {cli, "secret rm", "spare"},
		{cli, "grant", "slack"}, {cli, "approve", ap1}, {cli, "deny", ap2}, {cli, "revoke", "slack"},
		{cli, "secret rotate-key", "master key"}, {cli, "agent token add", "ci-bot"}, {cli, "agent token revoke", "ci-bot"},
		{cli, "admin token add", "old-admin"}, {cli, "admin token revoke", "old-admin"}, {cli, "admin token add", "alice"},
		{cli, "trust rm", "airlock-dev"}, {cli, "profile set", "ops"}, {cli, "profile delete", "ops"},
		{"alice", "grant", "slack"}, {"alice", "approve", ap3}, {"alice", "deny", ap4}, {"alice", "revoke", "slack"},
		{"alice", "profile set", "api-ops"}, {"alice", "profile delete", "api-ops"},
	}
	recs, all := adminRecords(t, dsn)
	got := map[key]int{}
	auth := map[string]int{}
	for _, r := range recs {
		switch r.Kind {
		case audit.KindAdmin:
			if r.Action == "audit key rotate" {
				got[key{r.Actor, r.Action, ""}]++
				continue
			}
			got[key{r.Actor, r.Action, r.Target}]++
		case audit.KindAuth:
			auth[r.Realm]++
		}
	}
	for _, k := range want {
		if got[k] != 1 {
			t.Errorf("%d records of %s by %s on %s, want 1", got[k], k.action, k.actor, k.target)
		}
		delete(got, k)
	}
	if got[key{cli, "audit key rotate", ""}] != 1 {
		t.Errorf("audit key rotate recorded %d times, want 1", got[key{cli, "audit key rotate", ""}])
	}
	delete(got, key{cli, "audit key rotate", ""})
	for k, n := range got {
		t.Errorf("unexpected admin record(s) ×%d: %+v", n, k)
	}
	if auth["admin"] != 1 || auth["mcp"] != 1 {
		t.Errorf("refused authentications recorded = %v, want one for the admin API and one for MCP", auth)
	}
	for _, r := range all {
		for _, s := range []string{canary, "another-value", agentTok, adminTok, strings.TrimPrefix(adminTok, "airlock_admin_")} {
			if bytes.Contains(r.Data, []byte(s)) {
				t.Errorf("audit record %d holds a secret or a token (%.8q…): %s", r.Seq, s, r.Data)
			}
		}
	}
	for i, p := range printed {
		if strings.Contains(p, canary) {
			t.Errorf("output %d holds the secret", i)
		}
	}

	if out := must("audit", "-n", "100"); !strings.Contains(out, cli+": grant slack") || !strings.Contains(out, "alice: deny "+ap4) {
		t.Errorf("audit tail does not show the admin actions with their actors:\n%s", out)
	}

	// The whole trail verifies, with its anchor, across the key rotation.
	if out := must("audit", "verify"); !strings.HasPrefix(out, "OK: ") || !strings.Contains(out, "Anchor") {
		t.Errorf("audit verify = %q", out)
	}
}

// The export verifies on "another machine" — a run with no state directory or database at all,
// only the export and the printed public key — and a flipped byte is named by its record.
func TestAuditExportOfflineCLI(t *testing.T) {
	hermetic(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	g := []string{"--state-dir", state}
	for _, name := range []string{"one", "two", "three"} {
		if code, _, errOut := airlock(t, append([]string{"agent", "add", name}, g...)...); code != exitOK {
			t.Fatalf("agent add = %d %s", code, errOut)
		}
	}
	code, pub, errOut := airlock(t, append([]string{"audit", "key"}, g...)...)
	if code != exitOK || !strings.HasPrefix(pub, "ed25519:") {
		t.Fatalf("audit key = %d %q %s", code, pub, errOut)
	}
	code, export, errOut := airlock(t, append([]string{"audit", "export"}, g...)...)
	if code != exitOK {
		t.Fatalf("audit export = %d %s", code, errOut)
	}
	file := filepath.Join(dir, "audit.jsonl")
	os.WriteFile(file, []byte(export), 0o600)
	os.RemoveAll(state) // the other machine has none of it

	verify := func(path string) (int, string) {
		t.Helper()
		code, out, errOut := airlock(t, "audit", "verify", "--file", path, "--pubkey", strings.TrimSpace(pub), "--state-dir", filepath.Join(dir, "nowhere"))
		return code, out + errOut
	}
	if code, out := verify(file); code != exitOK || !strings.Contains(out, "OK: 3 records") {
		t.Fatalf("verify --file = %d %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); err == nil {
		t.Error("offline verify created a state directory; it must need none")
	}
	flipped := strings.Replace(export, `"target":"two"`, `"target":"twp"`, 1)
	if flipped == export {
		t.Fatal("export has no record of agent two")
	}
	os.WriteFile(file, []byte(flipped), 0o600)
	if code, out := verify(file); code != exitError || !strings.Contains(out, "BROKEN: record 2:") {
		t.Errorf("verify of a flipped byte = %d %q; want record 2 named", code, out)
	}
}

// Connecting an account is an admin action too: one record, with the actor, the connector,
// slot and subject, and none of the tokens the provider issued.
func TestConnectIsAudited(t *testing.T) {
	e := newConnectEnv(t)
	t.Setenv("AIRLOCK_ADMIN", "")
	old := openBrowser
	openBrowser = func(string) error { return nil }
	t.Cleanup(func() { openBrowser = old })
	r := startConnect(t, "slack", "--config", e.cfg, "--subject", "carol", "--timeout", "2m")
	if status := signIn(t, e.auth, r.authURL(t)); status != http.StatusOK {
		t.Fatalf("callback status = %d", status)
	}
	if code := r.wait(); code != exitOK {
		t.Fatalf("airlock connect = %d\n%s\n%s", code, r.stdout, r.stderr)
	}
	recs, all := adminRecords(t, "sqlite:"+e.stateDB)
	n := 0
	for _, a := range recs {
		if a.Action == "connect" && a.Target == "slack" && a.Actor == adminName() {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d connect records by %s, want 1 (admin records: %+v)", n, adminName(), recs)
	}
	for _, rec := range all {
		e.noLeak(t, fmt.Sprintf("audit record %d", rec.Seq), string(rec.Data))
	}
}

// An older airlock's log (no MACs) is named by verify until an admin adopts it.
func TestAuditAdoptCLI(t *testing.T) {
	hermetic(t)
	state := t.TempDir()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(state, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := st.AppendAudit(context.Background(), fmt.Appendf(nil, `{"kind":"call","agent":"old","request_id":"r%d","outcome":"ok"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	g := []string{"--state-dir", state}
	if code, out, _ := airlock(t, append([]string{"audit", "verify"}, g...)...); code != exitError || !strings.Contains(out, "BROKEN: record 1:") || !strings.Contains(out, "airlock audit adopt") {
		t.Errorf("verify of an unkeyed log = %d %q; want record 1 named and adopt suggested", code, out)
	}
	if code, out, errOut := airlock(t, append([]string{"audit", "adopt"}, g...)...); code != exitOK || !strings.Contains(out, "records 1 to 3") {
		t.Fatalf("audit adopt = %d %q %s", code, out, errOut)
	}
	if code, out, _ := airlock(t, append([]string{"audit", "verify"}, g...)...); code != exitOK {
		t.Errorf("verify after adopt = %d %q", code, out)
	}
}
