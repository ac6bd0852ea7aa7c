package host_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// The per-call log line, written by airlock serve --log-json's handler, is one JSON object with
// the call's fields, and a credential in any of them (here a DSN the caller put in its agent
// name) is redacted as in every other line.
func TestCallLogLine(t *testing.T) {
	var buf testenv.Buffer
	h := noopHost(t, slog.New(secret.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx := context.Background()
	for _, agent := range []string{"bench", "postgres://bot:hunter2@db/x", "bot?token=hunter2"} {
		res := h.Call(ctx, host.CallRequest{Tool: "hostile.noop", Arguments: json.RawMessage(`{}`), Agent: agent})
		if !res.OK {
			t.Fatalf("Call as %q: %+v", agent, res.Error)
		}
	}
	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("a credential reached the log:\n%s", buf.String())
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if v["msg"] == "tool call" {
			lines = append(lines, v)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("%d tool call lines, want 3:\n%s", len(lines), buf.String())
	}
	want := map[string]any{"level": "INFO", "agent": "bench", "connector": "hostile", "tool": "hostile.noop", "outcome": "ok", "code": ""}
	for k, v := range want {
		if lines[0][k] != v {
			t.Errorf("tool call line %s = %v, want %v", k, lines[0][k], v)
		}
	}
	for _, k := range []string{"time", "request_id", "duration_ms"} {
		if _, ok := lines[0][k]; !ok {
			t.Errorf("tool call line has no %s: %v", k, lines[0])
		}
	}
	if got := lines[1]["agent"]; got != "postgres://bot:"+secret.RedactedCredential+"@db/x" {
		t.Errorf("agent logged as %v, want the DSN with its password redacted", got)
	}
}
