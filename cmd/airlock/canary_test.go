package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// The operator starts `airlock serve` with the PostgreSQL state given as --state, password in
// the URL, as the README shows. The password must appear in no endpoint (metrics included: it
// used to publish expvar's cmdline), no log line at debug level, and no error the CLI prints
// when that database or Redis cannot be reached or the URL is malformed.
func TestDSNPasswordCanary(t *testing.T) {
	hermetic(t)
	base := testenv.Postgres(t)
	const pw = "Canary-PG-pw-5b1e"
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), pw) // loopback trust auth: any password works
	dsn := u.String()
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte("state_dir: state\n"), 0o600)
	flags := []string{"--state-dir", stateDir, "--state", dsn, "--config", filepath.Join(dir, "airlock.yaml"), "--log-level", "debug"}
	if code, _, errOut := airlock(t, "init", "master-key", "--out", filepath.Join(stateDir, "master.key")); code != exitOK {
		t.Fatalf("airlock init master-key = %d: %s", code, errOut)
	}

	var printed []string // everything any command printed
	cli := func(args ...string) (int, string) {
		t.Helper()
		code, out, errOut := airlock(t, append(args, flags...)...)
		printed = append(printed, out, errOut)
		return code, out
	}
	if code, _ := cli("grants"); code != exitOK {
		t.Fatalf("grants on the PostgreSQL state failed: %v", printed)
	}
	_, adminToken := cli("admin", "add", "ops", "--role", "owner")
	_, agentToken := cli("agent", "add", "bot", "--subject", "acme")
	adminToken, agentToken = strings.TrimSpace(adminToken), strings.TrimSpace(agentToken)

	// The server, started the way a shell starts it: the DSN is on its command line.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	serveArgs := append([]string{"serve", "--http", addr, "--redis", "redis://:" + pw + "@127.0.0.1:1/0"}, flags...)
	oldArgs := os.Args
	os.Args = append([]string{"airlock"}, serveArgs...)
	t.Cleanup(func() { os.Args = oldArgs })
	ctx, cancel := context.WithCancel(context.Background())
	var logs testenv.Buffer
	done := make(chan int)
	go func() { done <- run(ctx, serveArgs, &logs, &logs) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path, token string) string {
		t.Helper()
		var body []byte
		for deadline := time.Now().Add(20 * time.Second); ; {
			req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := client.Do(req)
			if err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				return fmt.Sprintf("%d %s %s", resp.StatusCode, resp.Header, body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v\nserver output: %s", path, err, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	answers := map[string]string{}
	for _, p := range []string{"/admin/v1/metrics", "/admin/v1/grants", "/admin/v1/connectors", "/admin/v1/audit", "/admin/v1/audit/verify",
		"/admin/v1/approvals", "/admin/v1/connectors/nope/review", "/debug/vars", "/metrics"} {
		answers[p] = get(p, adminToken)
	}
	answers["/mcp"] = get("/mcp", agentToken)
	answers["/mcp unauthenticated"] = get("/mcp", "")
	answers["/healthz"] = get("/healthz", "")
	answers["/readyz"] = get("/readyz", "") // Redis unreachable: the check fails, naming no URL
	if r := answers["/readyz"]; !strings.HasPrefix(r, "503") || !strings.Contains(r, `"name":"redis"`) {
		t.Errorf("/readyz with Redis unreachable = %s; want 503 with the redis check failing", r)
	}
	if m := answers["/admin/v1/metrics"]; !strings.HasPrefix(m, "200") || !strings.Contains(m, "airlock_ratelimit") ||
		strings.Contains(m, "cmdline") || strings.Contains(m, "memstats") {
		t.Errorf("metrics = %s; want airlock's counters only", m)
	}

	// Errors: the database unreachable, a malformed URL, Redis unreachable.
	for _, bad := range []string{
		"postgres://airlock:" + pw + "@127.0.0.1:1/airlock?sslmode=disable&connect_timeout=2",
		"postgres://airlock:" + pw + "@127.0.0.1:notaport/airlock",
		"postgres://127.0.0.1:1/airlock?password=" + pw + "&connect_timeout=2",
	} {
		code, out, errOut := airlock(t, "grants", "--state-dir", stateDir, "--state", bad)
		printed = append(printed, out, errOut)
		if code == exitOK {
			t.Errorf("grants with --state %s succeeded", secretFree(bad, pw))
		}
	}
	code, out, errOut := airlock(t, "tools", "--state-dir", stateDir, "--state", dsn, "--redis", "redis://:"+pw+"@127.0.0.1:1/0", "--log-level", "debug")
	printed = append(printed, out, errOut)
	if code != exitOK {
		t.Errorf("tools with Redis unreachable = %d: %s", code, errOut)
	}

	for where, text := range answers {
		if strings.Contains(text, pw) {
			t.Errorf("GET %s published the DSN password: %s", where, text)
		}
	}
	for i, text := range printed {
		if strings.Contains(text, pw) {
			t.Errorf("command output %d holds the DSN password: %s", i, text)
		}
	}
	cancel()
	<-done
	done = make(chan int, 1)
	done <- 0
	if strings.Contains(logs.String(), pw) {
		t.Errorf("the server's log holds the DSN password:\n%s", logs.String())
	}
}

func secretFree(s, pw string) string { return strings.ReplaceAll(s, pw, "…") }
