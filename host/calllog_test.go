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

// Attack (hostile agent, red team s9): the agent name and tool name an agent sends end up in the
// per-call log line, written by the fast JSON writer. Names holding a line break, a quote and
// brace that close the object early, a JSON line of their own, U+2028, a DEL or a URL or DSN
// credential must neither split or forge a line nor reach the log unredacted: each call still
// logs exactly one "tool call" line, every line is one JSON object, the names come back as sent
// (credentials redacted), and no line says what the forger wrote.
func TestCallLogLineNotForged(t *testing.T) {
	var buf testenv.Buffer
	h := noopHost(t, slog.New(secret.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	forged := `{"level":"ERROR","msg":"forged","agent":"admin"}`
	calls := []struct{ agent, tool string }{
		{"bot\n" + forged, "hostile.noop"},
		{"bot", "hostile.noop\n" + forged},
		{`bot","level":"ERROR","msg":"forged`, "hostile.noop"},
		{"bot", `hostile.noop"}` + "\r\n" + forged},
		{"bot\u2028" + forged, "hostile.noop\u2029"},
		{"bot\x7f\x00", "nope.x\x1b[2J"},
		{"bot", "https://u:hunter2@evil.example/?token=hunter2"},
		{"bot host=db password=hunter2", "evil.tool?api_key=hunter2"},
		{"bot\nhttps://u:hunter2@evil.example/", "hostile.noop"},
	}
	for _, c := range calls {
		h.Call(context.Background(), host.CallRequest{Tool: c.tool, Arguments: json.RawMessage(`{}`), Agent: c.agent})
	}
	out := buf.String()
	if strings.Contains(out, "hunter2") {
		t.Errorf("a credential reached the log:\n%s", out)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("log line %q is not one JSON object: %v", l, err)
		}
		if v["msg"] == "forged" {
			t.Errorf("a forged line reached the log: %s", l)
		}
		if v["msg"] == "tool call" {
			lines = append(lines, v)
		}
	}
	if len(lines) != len(calls) {
		t.Fatalf("%d tool call lines for %d calls:\n%s", len(lines), len(calls), out)
	}
	for i, c := range calls[:6] { // no credential in these: logged as sent
		if lines[i]["agent"] != c.agent || lines[i]["tool"] != c.tool || lines[i]["level"] != "INFO" {
			t.Errorf("call %d logged agent %q tool %q level %v, want %q %q INFO", i, lines[i]["agent"], lines[i]["tool"], lines[i]["level"], c.agent, c.tool)
		}
	}
}
