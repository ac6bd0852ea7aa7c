package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// rolesServer starts 'airlock serve --http' on a fresh state (SQLite in a directory, or the
// PostgreSQL dsn) and returns the global flags that name that state and the server's base URL.
func rolesServer(t *testing.T, dsn string) (g []string, base string) {
	t.Helper()
	hermetic(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "airlock.yaml")
	if err := os.WriteFile(config, []byte("state_dir: state\nconnectors: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g = []string{"--config", config}
	if dsn != "" { // a shared store: the master key is made once and given to every process
		key := filepath.Join(dir, "master.key")
		if code, _, errOut := airlock(t, "init", "master-key", "--out", key); code != exitOK {
			t.Fatalf("init master-key = %d: %s", code, errOut)
		}
		g = append(g, "--state", dsn, "--master-key", "file:"+key)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut testenv.Buffer
	done := make(chan int)
	go func() { done <- run(ctx, append([]string{"serve", "--http", "127.0.0.1:0"}, g...), &out, &errOut) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	re := regexp.MustCompile(`at (http://[^/\s]+)/mcp`)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(errOut.String()); m != nil {
			return g, m[1]
		}
	}
	t.Fatalf("serve did not start: %s", errOut.String())
	return nil, ""
}

// Each role against every CLI command that can talk to a server: the command runs, or the CLI
// prints the server's refusal ("your admin token has role viewer; deciding approvals needs
// approver: ask an owner") and exits 1; every refusal is in the audit trail. Then an expired
// token is refused saying so, and 'admin list' shows roles and last use.
func TestAdminRolesCLI(t *testing.T) {
	for _, b := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { return testenv.Postgres(t) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			g, base := rolesServer(t, b.dsn(t))
			cli := func(args ...string) (int, string, string) {
				t.Helper()
				return airlock(t, append(args, g...)...)
			}
			tokens := map[admin.Role]string{}
			for _, r := range admin.Roles {
				code, out, errOut := cli("admin", "add", string(r)+"-admin", "--role", string(r))
				if code != exitOK || !strings.Contains(errOut, "with role "+string(r)) {
					t.Fatalf("admin add --role %s = %d %q", r, code, errOut)
				}
				tokens[r] = strings.TrimSpace(out)
			}

			commands := []struct {
				args  []string
				least admin.Role
				what  string // what the refusal names, when not what[least]
			}{
				{[]string{"approvals"}, admin.Viewer, ""},
				{[]string{"audit", "search", "--kind", "admin"}, admin.Viewer, ""},
				{[]string{"grants"}, admin.Viewer, ""},
				{[]string{"grants", "slack", "--history"}, admin.Viewer, ""},
				{[]string{"approve", "ap_none"}, admin.Approver, ""},
				{[]string{"deny", "ap_none", "--reason", "no"}, admin.Approver, ""},
				{[]string{"revoke", "slack"}, admin.Granter, ""},
				{[]string{"admin", "list"}, admin.Owner, ""},
				{[]string{"admin", "role", "nobody", "viewer"}, admin.Owner, ""},
				{[]string{"profile", "list"}, admin.Viewer, ""},
				{[]string{"profile", "show", "support", "--history"}, admin.Viewer, ""},
				{[]string{"profile", "set", "support", "--member", "support-bot", "--allow", "slack.list_*"}, admin.Granter, "managing agent profiles"},
				{[]string{"profile", "delete", "support"}, admin.Granter, "managing agent profiles"},
			}
			what := map[admin.Role]string{admin.Approver: "deciding approvals", admin.Granter: "revoking grants", admin.Owner: ""}
			t.Setenv("AIRLOCK_SERVER", base)
			refused := 0
			for _, role := range admin.Roles {
				t.Setenv(adminTokenEnv, tokens[role])
				for _, c := range commands {
					code, out, errOut := cli(c.args...)
					allowed := slices.Index(admin.Roles, role) >= slices.Index(admin.Roles, c.least)
					if allowed {
						if strings.Contains(errOut, "refused") || code == exitUsage {
							t.Errorf("%s: airlock %s = %d %q %q; want it allowed", role, strings.Join(c.args, " "), code, out, errOut)
						}
						continue
					}
					refused++
					w := what[c.least]
					if c.what != "" {
						w = c.what
					}
					want := fmt.Sprintf("the server refused: your admin token has role %s; %s", role, w)
					if code != exitError || !strings.Contains(errOut, want) || !strings.Contains(errOut, "needs "+string(c.least)+": ask an owner") {
						t.Errorf("%s: airlock %s = %d %q; want exit 1 with %q… needs %s: ask an owner", role, strings.Join(c.args, " "), code, errOut, want, c.least)
					}
				}
			}
			// The message the issue asks for, word for word.
			t.Setenv(adminTokenEnv, tokens[admin.Viewer])
			if _, _, errOut := cli("approve", "ap_none"); !strings.Contains(errOut, "your admin token has role viewer; deciding approvals needs approver: ask an owner") {
				t.Errorf("a viewer approving through the CLI printed %q", errOut)
			}
			refused++

			// Issuing and revoking tokens is done where the store is, never through a server.
			t.Setenv(adminTokenEnv, tokens[admin.Owner])
			if code, _, errOut := cli("admin", "add", "eve", "--role", "owner"); code != exitUsage || !strings.Contains(errOut, "state store only") {
				t.Errorf("admin add through --server = %d %q; want a usage error", code, errOut)
			}

			// An expired admin token: refused, saying so.
			t.Setenv("AIRLOCK_SERVER", "")
			code, out, _ := cli("admin", "add", "brief", "--role", "owner", "--ttl", "1ms")
			if code != exitOK {
				t.Fatalf("admin add --ttl 1ms = %d", code)
			}
			time.Sleep(10 * time.Millisecond)
			t.Setenv("AIRLOCK_SERVER", base)
			t.Setenv(adminTokenEnv, strings.TrimSpace(out))
			if code, _, errOut := cli("approvals"); code != exitError || !strings.Contains(errOut, "expired") || !strings.Contains(errOut, "airlock admin add NAME --role ROLE --ttl") {
				t.Errorf("an expired admin token = %d %q; want refused saying it expired and how to get a new one", code, errOut)
			}

			// A viewer finds the refusals through the server too.
			t.Setenv(adminTokenEnv, tokens[admin.Viewer])
			code, out, errOut := cli("audit", "search", "--kind", "admin", "--decision", "denied", "--json")
			if n := strings.Count(out, "\n"); code != exitOK || n != refused || !strings.Contains(out, `"required":"owner"`) {
				t.Errorf("audit search --server as a viewer = %d, %d records (want %d): %s %s", code, n, refused, out, errOut)
			}

			// Every refusal is in the audit trail, with the admin, the route and the role needed.
			t.Setenv("AIRLOCK_SERVER", "")
			st, err := (&globals{config: g[1], state: flagValue(g, "--state"), key: flagValue(g, "--master-key")}).openStore(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			recs, err := st.QueryAudit(context.Background(), store.AuditFilter{Kind: audit.KindAdmin, Decision: "denied"})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != refused {
				t.Errorf("%d refusals in the audit trail, want %d", len(recs), refused)
			}
			// The expired token's refused authentication says it had expired (written through
			// the server's rate-limited sink, so it may take a moment).
			var auth []store.AuditRecord
			for deadline := time.Now().Add(10 * time.Second); len(auth) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if auth, err = st.QueryAudit(context.Background(), store.AuditFilter{Kind: audit.KindAuth}); err != nil {
					t.Fatal(err)
				}
			}
			if len(auth) != 1 || !strings.Contains(string(auth[0].Data), "an expired bearer token") {
				t.Errorf("refused authentications = %d, want 1 saying the token expired: %v", len(auth), auth)
			}
			for _, r := range recs {
				var ev audit.Event
				json.Unmarshal(r.Data, &ev)
				var d struct{ Role, Required string }
				json.Unmarshal(ev.Detail, &d)
				if !strings.HasSuffix(ev.Actor, "-admin") || !strings.HasPrefix(ev.Target, "/admin/v1/") && !strings.Contains(ev.Target, " /admin/v1/") || d.Required == "" || d.Role == "" {
					t.Errorf("refusal record %s lacks the admin, the route or the roles", r.Data)
				}
			}

			// 'admin list' (locally, as the owner holding the store) shows roles and last use.
			code, out, _ = cli("admin", "list")
			if code != exitOK || !regexp.MustCompile(`(?m)^viewer-admin\s+viewer\s+\S+\s+20\d\d-`).MatchString(out) ||
				!regexp.MustCompile(`(?m)^brief\s+owner\s+\S+\s+never\s+\S+ \(expired\)`).MatchString(out) {
				t.Errorf("admin list = %d\n%s\nwant roles, the viewer's last use and brief never used and expired", code, out)
			}
		})
	}
}

// flagValue is the value of flag among the global flags g, or "".
func flagValue(g []string, flag string) string {
	if i := slices.Index(g, flag); i >= 0 {
		return g[i+1]
	}
	return ""
}
