package main

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/pdk"
	"github.com/airlock-dev/airlock/pdk/pdktest"
)

func blocks(t *testing.T, src string) []json.RawMessage {
	t.Helper()
	var b []json.RawMessage
	if err := json.Unmarshal([]byte(src), &b); err != nil {
		t.Fatalf("test blocks %s: %v", src, err)
	}
	return b
}

func text(n int) string { return strings.Repeat("é", n) } // characters, not bytes

// TestCheckBlocks: what Slack's Block Kit reference allows in a message passes; what it does
// not is refused with the offending block's index and what to change.
func TestCheckBlocks(t *testing.T) {
	t.Parallel()
	valid := `[
	 {"type": "header", "text": {"type": "plain_text", "text": "` + text(150) + `", "emoji": true}},
	 {"type": "section", "block_id": "s1", "text": {"type": "mrkdwn", "text": "` + text(3000) + `"},
	  "accessory": {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": "https://example.com", "action_id": "open"}},
	 {"type": "section", "fields": [` + strings.TrimSuffix(strings.Repeat(`{"type": "mrkdwn", "text": "`+text(2000)+`"},`, 10), ",") + `]},
	 {"type": "divider", "block_id": "d1"},
	 {"type": "context", "elements": [{"type": "image", "image_url": "https://example.com/a.png", "alt_text": "a"},
	  {"type": "plain_text", "text": "by airlock"}]},
	 {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Approve"}, "value": "yes", "action_id": "ok"},
	  {"type": "static_select", "action_id": "pick"}]},
	 {"type": "image", "image_url": "https://example.com/chart.png", "alt_text": "chart", "title": {"type": "plain_text", "text": "Chart"}}
	]`
	if err := checkBlocks(blocks(t, valid)); err != nil {
		t.Fatalf("valid blocks refused: %v", err)
	}
	fifty := "[" + strings.TrimSuffix(strings.Repeat(`{"type":"divider"},`, 50), ",") + "]"
	if err := checkBlocks(blocks(t, fifty)); err != nil {
		t.Errorf("50 blocks refused: %v", err)
	}

	tests := []struct {
		name, blocks, want string
	}{
		{"51 blocks", "[" + strings.TrimSuffix(strings.Repeat(`{"type":"divider"},`, 51), ",") + "]", "51 blocks; Slack allows at most 50"},
		{"no type", `[{"type":"divider"},{"text":"x"}]`, "blocks[1]: the type must be one of"},
		{"unknown type", `[{"type":"video"}]`, "blocks[0]: the type must be one of"},
		{"section text too long", `[{"type":"divider"},{"type":"divider"},{"type":"section","text":{"type":"mrkdwn","text":"` + text(3001) + `"}}]`,
			"blocks[2] (section): text.text is 3001 characters; Slack allows at most 3000"},
		{"section without text or fields", `[{"type":"section"}]`, "blocks[0] (section): a section needs text"},
		{"section with 11 fields", `[{"type":"section","fields":[` + strings.TrimSuffix(strings.Repeat(`{"type":"plain_text","text":"f"},`, 11), ",") + `]}]`,
			"fields has 11 items; Slack allows at most 10"},
		{"section field too long", `[{"type":"section","fields":[{"type":"mrkdwn","text":"` + text(2001) + `"}]}]`,
			"fields[0].text is 2001 characters; Slack allows at most 2000"},
		{"section text is a string", `[{"type":"section","text":"hello"}]`, "text must be a text object"},
		{"empty text", `[{"type":"section","text":{"type":"mrkdwn","text":""}}]`, "text.text must be a non-empty string"},
		{"bad text type", `[{"type":"section","text":{"type":"markdown","text":"x"}}]`, "text.type must be plain_text or mrkdwn"},
		{"emoji on mrkdwn", `[{"type":"section","text":{"type":"mrkdwn","text":"x","emoji":true}}]`, `"emoji" is not a property`},
		{"header mrkdwn", `[{"type":"header","text":{"type":"mrkdwn","text":"x"}}]`, "must be a plain_text object"},
		{"header too long", `[{"type":"header","text":{"type":"plain_text","text":"` + text(151) + `"}}]`, "blocks[0] (header): text.text is 151 characters; Slack allows at most 150"},
		{"header without text", `[{"type":"header"}]`, "a header needs text"},
		{"divider with text", `[{"type":"divider","text":{"type":"plain_text","text":"x"}}]`, `blocks[0] (divider): "text" is not a property`},
		{"context with 11 elements", `[{"type":"context","elements":[` + strings.TrimSuffix(strings.Repeat(`{"type":"mrkdwn","text":"e"},`, 11), ",") + `]}]`,
			"elements has 11 items; Slack allows at most 10"},
		{"context without elements", `[{"type":"context"}]`, "needs elements"},
		{"context with a button", `[{"type":"context","elements":[{"type":"button","text":{"type":"plain_text","text":"b"}}]}]`, "elements[0].type must be plain_text or mrkdwn"},
		{"actions with 26 elements", `[{"type":"actions","elements":[` + strings.TrimSuffix(strings.Repeat(`{"type":"button","text":{"type":"plain_text","text":"b"}},`, 26), ",") + `]}]`,
			"elements has 26 items; Slack allows at most 25"},
		{"actions with text", `[{"type":"actions","elements":[{"type":"mrkdwn","text":"b"}]}]`, "elements[0] must be an element of type button"},
		{"button label too long", `[{"type":"actions","elements":[{"type":"button","text":{"type":"plain_text","text":"` + text(76) + `"}}]}]`,
			"elements[0].text.text is 76 characters; Slack allows at most 75"},
		{"image without alt_text", `[{"type":"image","image_url":"https://example.com/a.png"}]`, "alt_text must be a non-empty string"},
		{"image without URL", `[{"type":"image","alt_text":"a"}]`, "exactly one of image_url"},
		{"image alt_text too long", `[{"type":"image","image_url":"https://example.com/a.png","alt_text":"` + text(2001) + `"}]`, "alt_text is 2001 characters"},
		{"block_id too long", `[{"type":"divider","block_id":"` + strings.Repeat("b", 256) + `"}]`, "block_id is longer than 255"},
		{"block_id twice", `[{"type":"divider","block_id":"x"},{"type":"divider","block_id":"y"},{"type":"divider","block_id":"x"}]`,
			`blocks[2] (divider): block_id "x" is already used by blocks[0]`},
		{"accessory text", `[{"type":"section","text":{"type":"mrkdwn","text":"x"},"accessory":{"type":"mrkdwn","text":"y"}}]`, "accessory must be an element"},
		{"block not an object", `["divider"]`, "blocks[0]: each block must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkBlocks(blocks(t, tt.blocks))
			var pe *pdk.Error
			if !errors.As(err, &pe) || pe.Code != "invalid_blocks" || pe.Category != pdk.CategoryCorrectable || !strings.Contains(pe.Message, tt.want) {
				t.Errorf("checkBlocks = %v, want a correctable invalid_blocks error containing %q", err, tt.want)
			}
		})
	}
}

// TestBlockErrorsFromSlack: when Slack itself refuses the blocks, the agent learns which block.
func TestBlockErrorsFromSlack(t *testing.T) {
	t.Parallel()
	tests := []struct{ body, want string }{
		{`{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] must be less than 3001 characters [json-pointer:/blocks/4/text/text]"]}}`,
			"in blocks[4] (must be less than 3001 characters at /text/text)"},
		{`{"ok":false,"error":"msg_blocks_too_long","response_metadata":{"messages":["[ERROR] too long [json-pointer:/blocks/12]"]}}`,
			"in blocks[12] (too long)"},
		{`{"ok":false,"error":"invalid_blocks"}`, "Slack rejected the blocks (invalid_blocks)"},
	}
	for _, tt := range tests {
		h := pdktest.New(t)
		h.HandleHTTP(func(pdk.HTTPRequest) pdk.HTTPResponse { return pdktest.Response(200, tt.body) })
		h.SetInput(map[string]any{"channel": fakeslack.General, "text": "x", "blocks": []any{map[string]any{"type": "divider"}}})
		_, toolErr := h.Call(postMessage)
		if toolErr == nil || toolErr.Category != pdk.CategoryCorrectable || !strings.Contains(toolErr.Message, tt.want) {
			t.Errorf("%s: tool error = %+v, want a correctable error containing %q", tt.body, toolErr, tt.want)
		}
	}
}

// TestErrorTable: the README's error table says what the code does, code by code.
func TestErrorTable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| (correctable|fatal|retryable)(?: \\(`([a-z_]+)`\\))? \\|")
	rows := row.FindAllStringSubmatch(string(readme), -1)
	if len(rows) < 60 {
		t.Fatalf("README.md has %d error rows, want the full table", len(rows))
	}
	categories := map[string]pdk.Category{"correctable": pdk.CategoryCorrectable, "fatal": pdk.CategoryFatal, "retryable": pdk.CategoryRetryable}
	for _, r := range rows {
		slackCode, category, code := r[1], categories[r[2]], r[3]
		if code == "" {
			code = slackCode
		}
		var pe *pdk.Error
		if !errors.As(slackToolError("chat.postMessage", "C0GENERAL", slackError{Error: slackCode}), &pe) {
			t.Fatalf("%s: not a tool error", slackCode)
		}
		if pe.Category != category || pe.Code != code {
			t.Errorf("%s = %s %s, README says %s %s", slackCode, pe.Category, pe.Code, category, code)
		}
		if strings.HasPrefix(pe.Message, "Slack refused chat.postMessage: ") {
			t.Errorf("%s falls through to the default mapping; README lists it as mapped", slackCode)
		}
	}
}
