package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestServeMetricsAndRefusals: `serve --http A --metrics B --log-json` serves Prometheus metrics
// on B only, counts every request refused for its token, logs the refusals without one line
// per request, and writes nothing but JSON to stderr, its banner included.
func TestServeMetricsAndRefusals(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte("connectors: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	mcpAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	metricsAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &testenv.Buffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve", "--http", mcpAddr, "--metrics", metricsAddr, "--log-json", "--log-level", "info",
			"--config", filepath.Join(dir, "airlock.yaml"), "--state-dir", dir}, io.Discard, stderr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d:\n%s", code, stderr)
		}
	}()
	get := func(url string, header ...string) (int, string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			req, _ := http.NewRequest("GET", url, nil)
			if len(header) == 2 {
				req.Header.Set(header[0], header[1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v\n%s", url, err, stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for range 5 {
		if code, _ := get("http://"+mcpAddr+"/mcp", "Authorization", "Bearer guessed-token"); code != 401 {
			t.Fatalf("MCP request with a wrong token = %d, want 401", code)
		}
	}
	if code, _ := get("http://" + mcpAddr + "/admin/v1/connectors"); code != 401 {
		t.Fatalf("admin request without a token = %d, want 401", code)
	}
	if code, _ := get("http://" + mcpAddr + "/metrics"); code != 401 { // a sixth refusal on the agent listener
		t.Errorf("GET /metrics on the agent listener = %d, want 401: metrics belong on their own listener", code)
	}
	code, body := get("http://" + metricsAddr + "/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics on --metrics = %d", code)
	}
	for _, want := range []string{`airlock_auth_refusals_total{listener="mcp"} 6`, `airlock_auth_refusals_total{listener="admin"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, grep(body, "airlock_auth"))
		}
	}
	if _, om := get("http://"+metricsAddr+"/metrics", "Accept", "application/openmetrics-text; version=1.0.0"); !strings.HasSuffix(strings.TrimSpace(om), "# EOF") {
		t.Error("/metrics does not answer OpenMetrics when asked")
	}

	out := stderr.String()
	var refusalLines, banners int
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Errorf("with --log-json, stderr has a line that is not JSON: %q", sc.Text())
			continue
		}
		msg, _ := line["msg"].(string)
		if strings.HasPrefix(msg, "airlock serve: MCP over streamable HTTP") || strings.HasPrefix(msg, "airlock serve: Prometheus metrics") {
			banners++
		}
		if msg == "refused requests without a valid token" {
			refusalLines++
		}
		if strings.Contains(sc.Text(), "guessed-token") {
			t.Error("a refused token was logged")
		}
	}
	if banners != 2 {
		t.Errorf("%d JSON banner lines, want 2 (MCP and metrics):\n%s", banners, out)
	}
	if refusalLines < 1 || refusalLines > 2 { // the first on each listener, then one per 10 s
		t.Errorf("%d log lines for 7 refused requests, want one per listener:\n%s", refusalLines, out)
	}
}

func grep(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestServeFailureIsJSONWithLogJSON: a serve that cannot start (its metrics address is taken)
// says so as a JSON line under --log-json, and exits 1.
func TestServeFailureIsJSONWithLogJSON(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte("connectors: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	code, _, stderr := airlock(t, "serve", "--http", "127.0.0.1:0", "--metrics", taken.Addr().String(), "--log-json",
		"--config", filepath.Join(dir, "airlock.yaml"), "--state-dir", dir)
	if code != 1 {
		t.Fatalf("serve with a taken metrics address exited %d, want 1:\n%s", code, stderr)
	}
	var found bool
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("with --log-json, stderr has a line that is not JSON: %q", l)
		}
		msg, _ := m["msg"].(string)
		found = found || (m["level"] == "ERROR" && strings.Contains(msg, "--metrics"))
	}
	if !found {
		t.Errorf("no JSON error line naming --metrics:\n%s", stderr)
	}
}
