package fakeslack

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// operation is a method's operation in Slack's published description (Swagger 2.0).
type operation struct {
	Parameters []struct {
		Name     string `json:"name"`
		In       string `json:"in"`
		Type     string `json:"type"`
		Required bool   `json:"required"`
	} `json:"parameters"`
}

// publishedSpec reads Slack's published Web API description from ../shared/specs next to the
// repository (path → HTTP method → operation), or skips the test when it is not there.
func publishedSpec(t *testing.T) map[string]map[string]operation {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for !fileExists(filepath.Join(dir, "go.mod")) {
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
	path := filepath.Join(dir, "..", "shared", "specs", "slack_web_openapi_v2.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("Slack's published description is not available (%v): put ../shared/specs next to the repository to run this test", err)
	}
	var spec struct {
		Paths map[string]map[string]operation `json:"paths"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return spec.Paths
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestParamsMatchPublishedDescription: the fake's parameter table is Slack's description of
// each method: the same names and types, and every parameter Slack requires required here.
func TestParamsMatchPublishedDescription(t *testing.T) {
	t.Parallel()
	paths := publishedSpec(t)
	for method, declared := range methodParams {
		ops, ok := paths["/"+method]
		if !ok {
			t.Errorf("Slack's description has no %s", method)
			continue
		}
		seen := map[string]bool{}
		for _, op := range ops {
			for _, p := range op.Parameters {
				if p.Name == "token" {
					continue // or "Authorization: Bearer", the documented difference
				}
				seen[p.Name] = true
				got, ok := declared[p.Name]
				switch {
				case !ok:
					t.Errorf("%s: parameter %s (%s) is in Slack's description, not in the fake's table", method, p.Name, p.Type)
				case got.typ != p.Type:
					t.Errorf("%s: parameter %s is %s in the table, %s in Slack's description", method, p.Name, got.typ, p.Type)
				case p.Required && !got.required:
					t.Errorf("%s: parameter %s is required by Slack's description, not by the fake", method, p.Name)
				}
			}
		}
		for name := range declared {
			if !seen[name] {
				t.Errorf("%s: the fake declares %s, which Slack's description does not", method, name)
			}
		}
	}
}

// TestRefusesWhatTheDescriptionRefuses sends, for every parameter of every method the fake
// serves, requests that break Slack's published description — a value of the wrong type, an
// undeclared parameter, a required one missing — and expects each refused, naming the
// parameter.
func TestRefusesWhatTheDescriptionRefuses(t *testing.T) {
	t.Parallel()
	paths := publishedSpec(t)
	valid := map[string]url.Values{
		"chat.postMessage":      {"channel": {General}, "text": {"hi"}},
		"conversations.list":    {},
		"conversations.history": {"channel": {General}},
		"auth.test":             {},
	}
	wrong := map[string]string{"boolean": "maybe", "integer": "1.5", "number": "soon"}
	send := func(method string, form url.Values) map[string]any {
		_, m := do(t, New(token), call{method: method, contentType: "application/x-www-form-urlencoded", body: form.Encode(), auth: "Bearer " + token})
		return m
	}
	for method := range methodParams {
		if m := send(method, valid[method]); m["ok"] != true {
			t.Fatalf("%s with valid arguments = %v", method, m)
		}
		for _, op := range paths["/"+method] {
			for _, p := range op.Parameters {
				if p.Name == "token" {
					continue
				}
				if bad, ok := wrong[p.Type]; ok {
					form := cloneValues(valid[method])
					form.Set(p.Name, bad)
					if m := send(method, form); m["ok"] != false || !strings.Contains(metadataMessage(m), "/"+p.Name) {
						t.Errorf("%s with %s=%q (%s) = %v, want it refused naming %s", method, p.Name, bad, p.Type, m, p.Name)
					}
				}
				if p.Required {
					form := cloneValues(valid[method])
					form.Del(p.Name)
					if m := send(method, form); m["ok"] != false || !strings.Contains(metadataMessage(m), "missing required field: "+p.Name) {
						t.Errorf("%s without required %s = %v, want it refused", method, p.Name, m)
					}
				}
			}
		}
		form := cloneValues(valid[method])
		form.Set("chanel", General) // a typo is not a parameter Slack describes
		if m := send(method, form); m["ok"] != false || m["error"] != "invalid_arguments" || !strings.Contains(metadataMessage(m), "chanel") {
			t.Errorf("%s with an undeclared parameter = %v, want invalid_arguments", method, m)
		}
	}
	// The documented differences are allowed: Bearer instead of token, a JSON body with blocks as
	// an array.
	_, m := do(t, New(token), postJSON("chat.postMessage", map[string]any{"channel": General, "text": "hi",
		"blocks": []any{map[string]any{"type": "divider"}}, "unfurl_links": false}))
	if m["ok"] != true {
		t.Errorf("JSON body with Bearer = %v, want ok", m)
	}
	_, m = do(t, New(token), postJSON("chat.postMessage", map[string]any{"channel": General, "text": 42}))
	if m["ok"] != false || !strings.Contains(metadataMessage(m), "must be of type string [json-pointer:/text]") {
		t.Errorf("a number as text = %v, want it refused", m)
	}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func metadataMessage(m map[string]any) string {
	md, _ := m["response_metadata"].(map[string]any)
	msgs, _ := md["messages"].([]any)
	if len(msgs) == 0 {
		return ""
	}
	s, _ := msgs[0].(string)
	return s
}

// TestBlockKit: the fake refuses what Block Kit's reference refuses, pointing at the block.
func TestBlockKit(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("x", n) }
	divider := map[string]any{"type": "divider"}
	section := func(text string) map[string]any {
		return map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": text}}
	}
	fields := func(n, size int) map[string]any {
		var f []any
		for range n {
			f = append(f, map[string]any{"type": "plain_text", "text": long(size)})
		}
		return map[string]any{"type": "section", "fields": f}
	}
	many := func(n int, b any) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = b
		}
		return out
	}
	tests := []struct {
		name    string
		blocks  []any
		code    string // "" for accepted
		pointer string
	}{
		{"valid", []any{section(long(3000)), fields(10, 2000), divider,
			map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": long(150)}},
			map[string]any{"type": "context", "elements": many(10, map[string]any{"type": "mrkdwn", "text": "c"})},
			map[string]any{"type": "actions", "elements": many(25, map[string]any{"type": "button", "text": map[string]any{"type": "plain_text", "text": "b"}})},
			map[string]any{"type": "image", "image_url": "https://example.com/a.png", "alt_text": "a"}}, "", ""},
		{"50 blocks", many(50, divider), "", ""},
		{"51 blocks", many(51, divider), "invalid_blocks", "/blocks]"},
		{"section text 3001", []any{divider, section(long(3001))}, "invalid_blocks", "/blocks/1/text/text"},
		{"11 fields", []any{fields(11, 1)}, "invalid_blocks", "/blocks/0/fields"},
		{"field 2001", []any{fields(1, 2001)}, "invalid_blocks", "/blocks/0/fields/0/text"},
		{"section without text", []any{map[string]any{"type": "section"}}, "invalid_blocks", "/blocks/0"},
		{"header mrkdwn", []any{map[string]any{"type": "header", "text": map[string]any{"type": "mrkdwn", "text": "h"}}}, "invalid_blocks", "/blocks/0/text/type"},
		{"header 151", []any{map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": long(151)}}}, "invalid_blocks", "/blocks/0/text/text"},
		{"context 11", []any{map[string]any{"type": "context", "elements": many(11, map[string]any{"type": "mrkdwn", "text": "c"})}}, "invalid_blocks", "/blocks/0/elements"},
		{"actions 26", []any{map[string]any{"type": "actions", "elements": many(26, map[string]any{"type": "button", "text": map[string]any{"type": "plain_text", "text": "b"}})}}, "invalid_blocks", "/blocks/0/elements"},
		{"image without alt_text", []any{map[string]any{"type": "image", "image_url": "https://example.com/a.png"}}, "invalid_blocks", "/blocks/0/alt_text"},
		{"block_id 256", []any{map[string]any{"type": "divider", "block_id": long(256)}}, "invalid_blocks", "/blocks/0/block_id"},
		{"block_id twice", []any{map[string]any{"type": "divider", "block_id": "a"}, map[string]any{"type": "divider", "block_id": "a"}}, "invalid_blocks", "/blocks/1/block_id"},
		{"unknown type", []any{map[string]any{"type": "sparkle"}}, "invalid_blocks", "/blocks/0/type"},
		{"no type", []any{map[string]any{}}, "invalid_blocks", "/blocks/0/type"},
		{"extra property", []any{map[string]any{"type": "divider", "text": "x"}}, "invalid_blocks", "/blocks/0/text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, m := do(t, New(token), postJSON("chat.postMessage", map[string]any{"channel": General, "text": "x", "blocks": tt.blocks}))
			if tt.code == "" {
				if m["ok"] != true {
					t.Errorf("= %.300v, want ok", m)
				}
				return
			}
			if m["ok"] != false || m["error"] != tt.code || !strings.Contains(metadataMessage(m), "[json-pointer:"+tt.pointer) {
				t.Errorf("= %.300v, want %s pointing at %s", m, tt.code, tt.pointer)
			}
		})
	}
	// Blocks sent as a form field hold JSON in a string, and are checked the same.
	b, _ := json.Marshal([]any{section(long(3001))})
	_, m := do(t, New(token), call{method: "chat.postMessage", contentType: "application/x-www-form-urlencoded",
		body: url.Values{"channel": {General}, "blocks": {string(b)}}.Encode(), auth: "Bearer " + token})
	if m["error"] != "invalid_blocks" {
		t.Errorf("form blocks = %.300v, want invalid_blocks", m)
	}
}

// TestTruncatesLongText: Slack truncates text over 40,000 characters rather than refusing it.
func TestTruncatesLongText(t *testing.T) {
	t.Parallel()
	s := New(token)
	_, m := do(t, s, postJSON("chat.postMessage", map[string]any{"channel": General, "text": strings.Repeat("é", MaxTextLen+500)}))
	if m["ok"] != true {
		t.Fatalf("long text = %.200v, want ok (truncated)", m)
	}
	msgs := s.Messages(General)
	if n := utf8.RuneCountInString(msgs[len(msgs)-1].Text); n != MaxTextLen {
		t.Errorf("stored text has %d characters, want %d", n, MaxTextLen)
	}
}

// TestNonMarketplace: a non-Marketplace app's conversations.history returns at most 15
// messages and one request a minute.
func TestNonMarketplace(t *testing.T) {
	t.Parallel()
	s := New(token)
	for range 20 {
		s.AddMessage(General, Message{User: "U0ALICE", Text: "m"})
	}
	s.SetNonMarketplace(true)
	get := func() (int, map[string]any) {
		res, m := do(t, s, call{httpMethod: "GET", method: "conversations.history", query: "channel=" + General + "&limit=200", auth: "Bearer " + token})
		return res.StatusCode, m
	}
	status, m := get()
	if msgs, _ := m["messages"].([]any); status != 200 || len(msgs) != MaxNonMarketplaceHistory || m["has_more"] != true {
		t.Errorf("first request = %d, %d messages, has_more %v; want 15 and more", status, len(msgs), m["has_more"])
	}
	if status, m := get(); status != 429 || m["error"] != "ratelimited" {
		t.Errorf("second request within the minute = %d %v, want 429 ratelimited", status, m)
	}
}
