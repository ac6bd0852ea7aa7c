package mcp

import (
	"crypto/sha256"
	"encoding/hex"
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
// back with [ToolName] before calling host.Call. MCP keeps connector.tool. Unknown formats are
// an error.
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
// ^[a-zA-Z0-9_-]{1,64}$ in function names: the dot becomes "__" (slack.post_message becomes
// slack__post_message), any other character outside the set becomes "_", and a name longer than
// 64 characters is cut to 55 and suffixed with "_" and 8 hex digits of its SHA-256, so distinct
// tools keep distinct names. Map a function name back with ToolName.
func FunctionName(tool string) string {
	conn, name, ok := strings.Cut(tool, ".")
	out := sanitize(tool)
	if ok {
		out = sanitize(conn) + "__" + sanitize(name)
	}
	if len(out) > 64 {
		sum := sha256.Sum256([]byte(tool))
		out = out[:55] + "_" + hex.EncodeToString(sum[:4])
	}
	return out
}

// ToolName returns the name (connector.tool) of the tool among tools whose FunctionName is
// function, or false if there is none. Looking the name up, rather than reversing the escaping,
// makes the mapping exact even for cut names.
func ToolName(tools []host.Tool, function string) (string, bool) {
	for _, t := range tools {
		if FunctionName(t.Name) == function {
			return t.Name, true
		}
	}
	return "", false
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}
