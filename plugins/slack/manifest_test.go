package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/pdk"
)

// The manifest must describe the connector as built: every tool here, the credential slot the
// code names, and schemas that accept what the code produces.

func loadManifest(t *testing.T) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Load(filepath.Join("..", "..", "manifests", "slack.yaml"))
	if err != nil {
		t.Fatalf("manifests/slack.yaml: %v", err)
	}
	return m
}

var tools = map[string]func() error{
	"post_message":    postMessage,
	"list_channels":   listChannels,
	"channel_history": channelHistory,
}

func TestManifestMatchesCode(t *testing.T) {
	t.Parallel()
	m := loadManifest(t)
	if m.ABI != pdk.ABIVersion || m.Name != "slack" {
		t.Errorf("abi %d name %s, want %d slack", m.ABI, m.Name, pdk.ABIVersion)
	}
	if len(m.Tools) != len(tools) {
		t.Errorf("manifest has %d tools, the code %d", len(m.Tools), len(tools))
	}
	for _, tool := range m.Tools {
		if _, ok := tools[tool.Export]; !ok {
			t.Errorf("tool %s: export %s is not implemented", tool.Name, tool.Export)
		}
	}
	c, ok := m.Credential(credential)
	if !ok || c.Kind != "bearer" {
		t.Errorf("credential slot %s: %+v, want kind bearer", credential, c)
	}
	exports, err := os.ReadFile("exports_wasip1.go")
	if err != nil {
		t.Fatal(err)
	}
	for name := range tools {
		if !strings.Contains(string(exports), "//go:wasmexport "+name+"\n") {
			t.Errorf("exports_wasip1.go has no //go:wasmexport %s", name)
		}
	}
}

func TestManifestSchemas(t *testing.T) {
	t.Parallel()
	m := loadManifest(t)
	tests := []struct {
		tool  string
		input string
		valid bool
	}{
		{"post_message", `{"channel":"C0GENERAL","text":"hi"}`, true},
		{"post_message", `{"channel":"C0GENERAL","text":"hi","thread_ts":"1700000060.000000","blocks":[{"type":"divider"}]}`, true},
		{"post_message", `{"channel":"#general","text":"hi"}`, false},
		{"post_message", `{"channel":"C0GENERAL"}`, false},
		{"post_message", `{"channel":"C0GENERAL","text":""}`, false},
		{"post_message", `{"channel":"C0GENERAL","text":"` + strings.Repeat("a", 40001) + `"}`, false},
		{"post_message", `{"channel":"C0GENERAL","text":"hi","as_user":true}`, false},
		{"post_message", `{"channel":"C0GENERAL","text":"hi","blocks":[{"text":"no type"}]}`, false},
		{"list_channels", `{}`, true},
		{"list_channels", `{"limit":200,"cursor":"abc","types":["public_channel","private_channel"],"exclude_archived":true}`, true},
		{"list_channels", `{"limit":201}`, false},
		{"list_channels", `{"types":["im"]}`, false},
		{"channel_history", `{"channel":"C0GENERAL","limit":5,"oldest":"1700000000","latest":"1700000300.000100"}`, true},
		{"channel_history", `{"channel":"C0GENERAL","oldest":"yesterday"}`, false},
		{"channel_history", `{}`, false},
	}
	for _, tt := range tests {
		tool, ok := m.Tool(tt.tool)
		if !ok {
			t.Fatalf("no tool %s", tt.tool)
		}
		if err := tool.ValidateInput([]byte(tt.input)); (err == nil) != tt.valid {
			t.Errorf("%s.ValidateInput(%.80s) = %v, want valid=%v", tt.tool, tt.input, err, tt.valid)
		}
	}
}

// TestOutputsMatchSchemas runs every tool against the fake Slack and validates the result
// against the tool's output schema, as the host does.
func TestOutputsMatchSchemas(t *testing.T) {
	t.Parallel()
	m := loadManifest(t)
	calls := []struct {
		tool string
		args map[string]any
	}{
		{"post_message", map[string]any{"channel": fakeslack.General, "text": "hi"}},
		{"post_message", map[string]any{"channel": fakeslack.General, "text": "re", "thread_ts": "1700000120.000000"}},
		{"list_channels", map[string]any{}},
		{"list_channels", map[string]any{"limit": 1}},
		{"channel_history", map[string]any{"channel": fakeslack.General}},
		{"channel_history", map[string]any{"channel": fakeslack.Random}},
		{"channel_history", map[string]any{"channel": fakeslack.General, "limit": 1}},
	}
	for _, c := range calls {
		h, _ := newHost(t)
		tool, _ := m.Tool(c.tool)
		args, _ := json.Marshal(c.args)
		if err := tool.ValidateInput(args); err != nil {
			t.Errorf("%s%s: input rejected: %v", c.tool, args, err)
		}
		h.SetInput(json.RawMessage(args))
		out, toolErr := h.Call(tools[c.tool])
		if toolErr != nil {
			t.Errorf("%s%s: %v", c.tool, args, toolErr)
			continue
		}
		if err := tool.ValidateOutput(out); err != nil {
			t.Errorf("%s%s: output %s does not match the output schema: %v", c.tool, args, out, err)
		}
	}
}
