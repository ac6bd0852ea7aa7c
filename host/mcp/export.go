package mcp

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/airlock-dev/airlock/host"
)

// Formats ExportTools knows.
const (
	FormatMCP       = "mcp"       // the tools/list result: {"tools":[{name, description, inputSchema, outputSchema, annotations}]}
	FormatOpenAI    = "openai"    // [{"type":"function","function":{name, description, parameters}}] (Chat Completions tools)
	FormatAnthropic = "anthropic" // [{name, description, input_schema}] (Messages API tools)
)

// ExportTools renders tools as the tool definitions of another ecosystem, for agents that do not
// speak MCP, as indented JSON.
//
// OpenAI and Anthropic require function names matching ^[a-zA-Z0-9_-]{1,64}$, so those formats
// name a tool with [FunctionName] (slack.post_message becomes slack__post_message); map a name
// back with [ToolName] before calling host.Call. MCP keeps connector.tool.
func ExportTools(tools []host.Tool, format string) ([]byte, error) {
	var v any
	switch format {
	case FormatMCP:
		list := make([]any, 0, len(tools))
		for _, t := range tools {
			list = append(list, sdkTool(t))
		}
		v = map[string]any{"tools": list}
	case FormatOpenAI:
		type function struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
		}
		type tool struct {
			Type     string   `json:"type"`
			Function function `json:"function"`
		}
		list := make([]tool, 0, len(tools))
		for _, t := range tools {
			list = append(list, tool{Type: "function", Function: function{Name: FunctionName(t.Name), Description: t.Description, Parameters: inputSchema(t)}})
		}
		v = list
	case FormatAnthropic:
		type tool struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			InputSchema json.RawMessage `json:"input_schema"`
		}
		list := make([]tool, 0, len(tools))
		for _, t := range tools {
			list = append(list, tool{Name: FunctionName(t.Name), Description: t.Description, InputSchema: inputSchema(t)})
		}
		v = list
	default:
		return nil, fmt.Errorf("unknown tool format %q: use %s, %s or %s", format, FormatMCP, FormatOpenAI, FormatAnthropic)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func inputSchema(t host.Tool) json.RawMessage {
	if len(t.InputSchema) == 0 {
		return json.RawMessage(`{"type":"object"}`)
	}
	return json.RawMessage(t.InputSchema)
}

// FunctionName escapes a tool name connector.tool for ecosystems that allow only
// [a-zA-Z0-9_-] in function names: the dot between connector and tool becomes "__" (connector
// and tool names are snake_case and never contain "__" themselves... see ToolName for the way
// back). Any other character outside the set becomes "_".
func FunctionName(tool string) string {
	conn, name, ok := strings.Cut(tool, ".")
	if !ok {
		return sanitize(tool)
	}
	return sanitize(conn) + "__" + sanitize(name)
}

// ToolName maps a name made by FunctionName back to connector.tool: the first "__" becomes the
// dot.
func ToolName(function string) string {
	conn, name, ok := strings.Cut(function, "__")
	if !ok {
		return function
	}
	return conn + "." + name
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}
