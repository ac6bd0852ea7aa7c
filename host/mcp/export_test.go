package mcp_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/mcp"
)

var exportTools = []host.Tool{
	{Name: "slack.post_message", Connector: "slack", Description: "Post a message.",
		InputSchema:  []byte(`{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}`),
		OutputSchema: []byte(`{"type":"object"}`),
		Annotations:  manifest.Annotations{Destructive: false, OpenWorld: true}},
	{Name: "crm.list_accounts", Connector: "crm", Description: "List accounts.", InputSchema: []byte(`{"type":"object"}`),
		Annotations: manifest.Annotations{ReadOnly: true, Idempotent: true}},
	{Name: strings.Repeat("c", 60) + "." + strings.Repeat("t", 60), Description: "long", InputSchema: []byte(`{"type":"object"}`)},
}

func TestExportTools(t *testing.T) {
	fnName := regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	for _, format := range []string{mcp.FormatOpenAI, mcp.FormatAnthropic} {
		t.Run(format, func(t *testing.T) {
			b, err := mcp.ExportTools(exportTools, format)
			if err != nil {
				t.Fatal(err)
			}
			var list []map[string]any
			if err := json.Unmarshal(b, &list); err != nil {
				t.Fatalf("not a JSON array: %v\n%s", err, b)
			}
			var names []string
			for _, item := range list {
				if format == mcp.FormatOpenAI {
					if item["type"] != "function" {
						t.Errorf("type = %v", item["type"])
					}
					item = item["function"].(map[string]any)
					if item["parameters"] == nil {
						t.Error("no parameters")
					}
				} else if item["input_schema"] == nil {
					t.Error("no input_schema")
				}
				name := item["name"].(string)
				if !fnName.MatchString(name) {
					t.Errorf("name %q does not match %s", name, fnName)
				}
				names = append(names, name)
			}
			if names[0] != "slack__post_message" {
				t.Errorf("first name = %q, want slack__post_message", names[0])
			}
			for i, n := range names {
				if back, ok := mcp.ToolName(exportTools, n); !ok || back != exportTools[i].Name {
					t.Errorf("ToolName(%q) = %q %v, want %q", n, back, ok, exportTools[i].Name)
				}
			}
		})
	}
	t.Run("mcp", func(t *testing.T) {
		b, err := mcp.ExportTools(exportTools[:2], mcp.FormatMCP)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Tools []struct {
				Name        string          `json:"name"`
				Annotations map[string]any  `json:"annotations"`
				Output      json.RawMessage `json:"outputSchema"`
			} `json:"tools"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"readOnlyHint": true, "idempotentHint": true, "destructiveHint": false, "openWorldHint": false}
		if diff := cmp.Diff(want, got.Tools[1].Annotations); diff != "" || got.Tools[0].Name != "slack.post_message" || got.Tools[0].Output == nil {
			t.Errorf("mcp export mismatch (-want +got):\n%s\n%s", diff, b)
		}
	})
	if _, err := mcp.ExportTools(exportTools, "langchain"); err == nil {
		t.Error("an unknown format was accepted")
	}
}
