package main

import (
	"context"
	"github.com/airlock-dev/airlock/internal/testenv"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestServeAllowOriginFlag(t *testing.T) {
	code, _, errOut := airlock(t, "serve", "--http", "127.0.0.1:0", "--allow-origin", "console.example.com")
	if code != exitUsage || !strings.Contains(errOut, "scheme://host") {
		t.Errorf("serve --allow-origin console.example.com = %d, %q; want a usage error showing the form", code, errOut)
	}
}

// The origins of the config file's http key and of --allow-origin are both allowed; others get
// 403 before authentication.
func TestServeHTTPOrigins(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "airlock.yaml")
	if err := os.WriteFile(config, []byte("state_dir: state\nconnectors: []\nhttp:\n  allowed_origins: [https://console.example.com]\n  session_idle_timeout: 10m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut testenv.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve", "--config", config, "--http", "127.0.0.1:0", "--allow-origin", "https://ops.example.com"}, &out, &errOut)
	}()
	defer func() {
		cancel()
		<-done
	}()
	re := regexp.MustCompile(`at (http://\S+/mcp)`)
	var url string
	for deadline := time.Now().Add(30 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(errOut.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		t.Fatalf("serve did not start: %s", errOut.String())
	}
	for origin, want := range map[string]int{
		"":                            http.StatusUnauthorized,
		"https://console.example.com": http.StatusUnauthorized,
		"https://ops.example.com":     http.StatusUnauthorized,
		"https://evil.example":        http.StatusForbidden,
	} {
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{}`))
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Origin %q: status %d, want %d", origin, resp.StatusCode, want)
		}
	}
}

// serve lets the heap grow to three times what is live (GOGC 200) unless the operator set GOGC,
// which keeps its meaning.
func TestServeGCDefault(t *testing.T) {
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	t.Setenv("GOGC", "")
	tuneGC()
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Errorf("GC percent while serving without GOGC = %d, want %d", got, serveGCPercent)
	}
	t.Setenv("GOGC", "50")
	tuneGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent while serving with GOGC=50 = %d; want the runtime's own (100 here), untouched", got)
	}
}
