package main

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
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
	tuneGC(slog.New(slog.DiscardHandler))
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Errorf("GC percent while serving without GOGC = %d, want %d", got, serveGCPercent)
	}
	t.Setenv("GOGC", "50")
	tuneGC(slog.New(slog.DiscardHandler))
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent while serving with GOGC=50 = %d; want the runtime's own (100 here), untouched", got)
	}
}

// In a container with a memory limit, serve keeps the Go heap under 90% of it unless
// GOMEMLIMIT is set; without a limit ("max", cgroup v1's "unlimited", no cgroup file) the
// runtime's own (none) stays.
func TestServeMemoryLimitFromContainer(t *testing.T) {
	was := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(was) })
	files := cgroupMemoryFiles
	t.Cleanup(func() { cgroupMemoryFiles = files })
	dir := t.TempDir()
	v2, v1 := filepath.Join(dir, "memory.max"), filepath.Join(dir, "memory.limit_in_bytes")
	cgroupMemoryFiles = []string{v2, v1}
	const unset = math.MaxInt64
	for _, c := range []struct {
		name, v2, v1, gomemlimit string
		want                     int64
	}{
		{"cgroup v2 limit", "1073741824\n", "", "", 1073741824 / 10 * 9},
		{"cgroup v2 without limit", "max\n", "", "", unset},
		{"cgroup v1 limit", "", "536870912\n", "", 536870912 / 10 * 9},
		{"cgroup v1 unlimited", "", "9223372036854771712\n", "", unset},
		{"no cgroup", "", "", "", unset},
		{"GOMEMLIMIT set", "1073741824\n", "", "700MiB", unset},
	} {
		t.Run(c.name, func(t *testing.T) {
			debug.SetMemoryLimit(unset)
			for f, v := range map[string]string{v2: c.v2, v1: c.v1} {
				os.Remove(f)
				if v != "" {
					if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			t.Setenv("GOMEMLIMIT", c.gomemlimit)
			var logs bytes.Buffer
			tuneGC(slog.New(slog.NewTextHandler(&logs, nil)))
			if got := debug.SetMemoryLimit(-1); got != c.want {
				t.Errorf("memory limit = %d, want %d (logged: %s)", got, c.want, logs.String())
			}
			if said := strings.Contains(logs.String(), "container_limit_bytes"); said != (c.want != unset) {
				t.Errorf("logged %q; want a line naming the limit only when one was set", logs.String())
			}
		})
	}
}
