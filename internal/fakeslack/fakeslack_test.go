package fakeslack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const token = "xoxb-test-token"

type call struct {
	httpMethod  string
	method      string
	contentType string
	body        string
	query       string
	auth        string // Authorization header value
}

func do(t *testing.T, s *Server, c call) (*http.Response, map[string]any) {
	t.Helper()
	target := "https://slack.com/api/" + c.method
	if c.query != "" {
		target += "?" + c.query
	}
	r := httptest.NewRequest(cmpOr(c.httpMethod, "POST"), target, strings.NewReader(c.body))
	if c.contentType != "" {
		r.Header.Set("Content-Type", c.contentType)
	}
	if c.auth != "" {
		r.Header.Set("Authorization", c.auth)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	res := w.Result()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("%s: body %q is not JSON: %v", c.method, w.Body.String(), err)
	}
	return res, m
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func postJSON(method string, body any) call {
	b, _ := json.Marshal(body)
	return call{method: method, contentType: "application/json; charset=utf-8", body: string(b), auth: "Bearer " + token}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    call
		want string // error, or "" for ok
	}{
		{"no token", call{method: "auth.test"}, "not_authed"},
		{"wrong token", call{method: "auth.test", auth: "Bearer xoxb-wrong"}, "invalid_auth"},
		{"basic scheme", call{method: "auth.test", auth: "Basic " + token}, "not_authed"},
		{"bearer", call{method: "auth.test", auth: "Bearer " + token}, ""},
		{"bearer lowercase", call{method: "auth.test", auth: "bearer " + token}, ""},
		{"form token", call{method: "auth.test", contentType: "application/x-www-form-urlencoded", body: "token=" + token}, ""},
		{"query token", call{method: "auth.test", httpMethod: "GET", query: "token=" + token}, ""},
		{"json token ignored", call{method: "auth.test", contentType: "application/json", body: `{"token":"` + token + `"}`}, "not_authed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(token)
			res, m := do(t, s, tt.c)
			if res.StatusCode != 200 {
				t.Errorf("status = %d, want 200 (Slack reports auth errors in the body)", res.StatusCode)
			}
			if tt.want == "" {
				if m["ok"] != true {
					t.Errorf("got %v, want ok", m)
				}
			} else if m["ok"] != false || m["error"] != tt.want {
				t.Errorf("got %v, want error %s", m, tt.want)
			}
			reqs := s.Requests()
			if len(reqs) != 1 || reqs[0].Method != "auth.test" || reqs[0].HasAuth != (tt.name != "no token" && tt.name != "json token ignored" && tt.name != "basic scheme") {
				t.Errorf("Requests() = %+v", reqs)
			}
		})
	}
}

func TestPostMessage(t *testing.T) {
	t.Parallel()
	s := New(token)
	s.SetClock(func() time.Time { return time.Unix(1800000000, 0) })
	blocks := []any{map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "*hi*"}}}
	_, m := do(t, s, postJSON("chat.postMessage", map[string]any{"channel": General, "text": "hello", "blocks": blocks}))
	if m["ok"] != true || m["channel"] != General || m["ts"] != "1800000000.000000" {
		t.Fatalf("postMessage = %v", m)
	}
	msg := m["message"].(map[string]any)
	if msg["text"] != "hello" || msg["bot_id"] != BotID || msg["user"] != BotUser || len(msg["blocks"].([]any)) != 1 {
		t.Errorf("message = %v", msg)
	}

	// Form-encoded, with blocks as a JSON string, in a thread, by channel name.
	parent := s.Messages(General)[0].TS
	form := url.Values{"channel": {"#general"}, "text": {"reply"}, "thread_ts": {parent},
		"blocks": {`[{"type":"divider"}]`}}
	_, m = do(t, s, call{method: "chat.postMessage", contentType: "application/x-www-form-urlencoded",
		body: form.Encode(), auth: "Bearer " + token})
	if m["ok"] != true || m["ts"] != "1800000000.000100" {
		t.Fatalf("form postMessage = %v", m)
	}
	msgs := s.Messages(General)
	if got := msgs[0]; got.ReplyCount != 1 || got.ThreadTS != parent {
		t.Errorf("parent after reply = %+v, want reply_count 1", got)
	}
	last := msgs[len(msgs)-1]
	if last.ThreadTS != parent || last.Text != "reply" || string(last.Blocks[0]) != `{"type":"divider"}` {
		t.Errorf("reply = %+v", last)
	}
}

func TestPostMessageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args map[string]any
		want string
	}{
		{"no channel", map[string]any{"text": "x"}, "invalid_arguments"},
		{"unknown channel", map[string]any{"channel": "C0NOPE", "text": "x"}, "channel_not_found"},
		{"not in channel", map[string]any{"channel": Ops, "text": "x"}, "not_in_channel"},
		{"archived", map[string]any{"channel": OldProject, "text": "x"}, "is_archived"},
		{"no text", map[string]any{"channel": General, "text": "  "}, "no_text"},
		{"max length ok", map[string]any{"channel": General, "text": strings.Repeat("é", MaxTextLen)}, ""},
		{"blocks not array", map[string]any{"channel": General, "blocks": map[string]any{"type": "x"}}, "invalid_blocks_format"},
		{"block without type", map[string]any{"channel": General, "blocks": []any{map[string]any{}}}, "invalid_blocks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(token)
			_, m := do(t, s, postJSON("chat.postMessage", tt.args))
			if tt.want == "" {
				if m["ok"] != true {
					t.Errorf("got %v, want ok", m)
				}
				return
			}
			if m["ok"] != false || m["error"] != tt.want {
				t.Errorf("got %v, want error %s", m, tt.want)
			}
		})
	}
}

func TestBadBodies(t *testing.T) {
	t.Parallel()
	s := New(token)
	_, m := do(t, s, call{method: "chat.postMessage", contentType: "application/json", body: "{", auth: "Bearer " + token})
	if m["error"] != "invalid_json" {
		t.Errorf("bad JSON: %v", m)
	}
	_, m = do(t, s, call{method: "chat.postMessage", contentType: "text/xml", body: "<a/>", auth: "Bearer " + token})
	if m["error"] != "invalid_form_data" {
		t.Errorf("xml: %v", m)
	}
	res, m := do(t, s, call{method: "nope.nope", auth: "Bearer " + token})
	if res.StatusCode != 404 || m["error"] != "unknown_method" {
		t.Errorf("unknown method: %d %v", res.StatusCode, m)
	}
}

func TestMissingScope(t *testing.T) {
	t.Parallel()
	s := New(token)
	s.SetScopes("channels:read", "channels:history")
	_, m := do(t, s, postJSON("chat.postMessage", map[string]any{"channel": General, "text": "x"}))
	want := map[string]any{"ok": false, "error": "missing_scope", "needed": "chat:write", "provided": "channels:read,channels:history"}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	_, m = do(t, s, call{httpMethod: "GET", method: "conversations.list", query: "types=private_channel", auth: "Bearer " + token})
	if m["error"] != "missing_scope" || m["needed"] != "groups:read" {
		t.Errorf("private list: %v", m)
	}
	_, m = do(t, s, call{httpMethod: "GET", method: "conversations.list", auth: "Bearer " + token})
	if m["ok"] != true {
		t.Errorf("public list with channels:read: %v", m)
	}
}

func TestConversationsListPaging(t *testing.T) {
	t.Parallel()
	s := New(token)
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		q := url.Values{"limit": {"2"}, "types": {"public_channel,private_channel"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		_, m := do(t, s, call{httpMethod: "GET", method: "conversations.list", query: q.Encode(), auth: "Bearer " + token})
		if m["ok"] != true {
			t.Fatalf("list: %v", m)
		}
		for _, c := range m["channels"].([]any) {
			ids = append(ids, c.(map[string]any)["id"].(string))
		}
		cursor = m["response_metadata"].(map[string]any)["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	want := []string{General, Random, Dev, Ops, OldProject, SecretPlans}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("channels mismatch (-want +got):\n%s", diff)
	}

	// Default types: public only; exclude_archived; POST form; bad cursor.
	_, m := do(t, s, call{method: "conversations.list", contentType: "application/x-www-form-urlencoded",
		body: "exclude_archived=true", auth: "Bearer " + token})
	if n := len(m["channels"].([]any)); n != 4 {
		t.Errorf("public, unarchived channels = %d, want 4", n)
	}
	_, m = do(t, s, call{httpMethod: "GET", method: "conversations.list", query: "cursor=garbage", auth: "Bearer " + token})
	if m["error"] != "invalid_cursor" {
		t.Errorf("bad cursor: %v", m)
	}
	_, m = do(t, s, call{httpMethod: "GET", method: "conversations.list", query: "types=dm", auth: "Bearer " + token})
	if m["error"] != "invalid_types" {
		t.Errorf("bad types: %v", m)
	}
}

func TestConversationsHistory(t *testing.T) {
	t.Parallel()
	s := New(token)
	_, m := do(t, s, postJSON("conversations.history", map[string]any{"channel": General, "limit": 2}))
	if m["ok"] != true || m["has_more"] != true || len(m["messages"].([]any)) != 2 {
		t.Fatalf("history page 1 = %v", m)
	}
	first := m["messages"].([]any)[0].(map[string]any)
	if first["text"] != "Deploy finished, all green." {
		t.Errorf("newest message = %v, want the last seeded one", first)
	}
	cursor := m["response_metadata"].(map[string]any)["next_cursor"].(string)
	_, m = do(t, s, postJSON("conversations.history", map[string]any{"channel": General, "limit": 10, "cursor": cursor}))
	if m["has_more"] != false || len(m["messages"].([]any)) != 3 || m["response_metadata"] != nil {
		t.Errorf("history page 2 = %v", m)
	}

	msgs := s.Messages(General)
	q := url.Values{"channel": {General}, "oldest": {msgs[1].TS}, "latest": {msgs[3].TS}}
	_, m = do(t, s, call{httpMethod: "GET", method: "conversations.history", query: q.Encode(), auth: "Bearer " + token})
	if got := len(m["messages"].([]any)); got != 1 {
		t.Errorf("exclusive window: %d messages, want 1", got)
	}
	q.Set("inclusive", "true")
	_, m = do(t, s, call{httpMethod: "GET", method: "conversations.history", query: q.Encode(), auth: "Bearer " + token})
	if got := len(m["messages"].([]any)); got != 3 {
		t.Errorf("inclusive window: %d messages, want 3", got)
	}

	for ch, want := range map[string]string{Ops: "not_in_channel", "C0NOPE": "channel_not_found", "#general": "channel_not_found"} {
		_, m = do(t, s, postJSON("conversations.history", map[string]any{"channel": ch}))
		if m["error"] != want {
			t.Errorf("history(%s) = %v, want %s", ch, m, want)
		}
	}
	_, m = do(t, s, postJSON("conversations.history", map[string]any{"channel": General, "oldest": "yesterday"}))
	if m["error"] != "invalid_ts_oldest" {
		t.Errorf("bad oldest: %v", m)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	now := time.Unix(1800000000, 0)
	s := New(token)
	s.SetClock(func() time.Time { return now })
	s.SetRateLimit("chat.postMessage", 2, time.Minute)
	post := postJSON("chat.postMessage", map[string]any{"channel": General, "text": "x"})
	for i := 0; i < 2; i++ {
		if res, m := do(t, s, post); res.StatusCode != 200 || m["ok"] != true {
			t.Fatalf("call %d: %d %v", i, res.StatusCode, m)
		}
	}
	now = now.Add(20 * time.Second)
	res, m := do(t, s, post)
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "40" || m["error"] != "ratelimited" {
		t.Errorf("over limit: %d Retry-After=%q %v", res.StatusCode, res.Header.Get("Retry-After"), m)
	}
	if _, m := do(t, s, call{httpMethod: "GET", method: "conversations.list", auth: "Bearer " + token}); m["ok"] != true {
		t.Errorf("other method limited too: %v", m)
	}
	now = now.Add(41 * time.Second)
	if res, _ := do(t, s, post); res.StatusCode != 200 {
		t.Errorf("after the window: %d", res.StatusCode)
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	s := New(token)
	url, closeFn := s.Start()
	defer closeFn()
	req, _ := http.NewRequest("POST", url+"/api/debug.echo?q=1", strings.NewReader("body-canary"))
	req.Header.Set("Authorization", "Bearer canary-secret")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(b), "canary-secret") || !strings.Contains(string(b), "body-canary") {
		t.Errorf("echo body %s does not reflect the request", b)
	}
	if got := res.Header.Get("X-Echo-Authorization"); got != "Bearer canary-secret" {
		t.Errorf("X-Echo-Authorization = %q", got)
	}

	s.SetEchoHeaders(true)
	_, _ = do(t, s, call{method: "auth.test", auth: "Bearer " + token})
	r := httptest.NewRequest("GET", "https://slack.com/api/auth.test", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if got := w.Header().Get("X-Echo-Authorization"); got != "Bearer "+token {
		t.Errorf("with SetEchoHeaders, X-Echo-Authorization = %q", got)
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	s := New(token)
	done := make(chan struct{})
	for i := 0; i < 8; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := 0; j < 25; j++ {
				r := httptest.NewRequest("POST", "https://slack.com/api/chat.postMessage",
					strings.NewReader(`{"channel":"C0RANDOM","text":"x"}`))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Authorization", "Bearer "+token)
				s.ServeHTTP(httptest.NewRecorder(), r)
			}
		}()
	}
	for i := 0; i < 8; i++ {
		<-done
	}
	msgs := s.Messages(Random)
	if len(msgs) != 200 {
		t.Fatalf("messages = %d, want 200", len(msgs))
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		if seen[m.TS] {
			t.Fatalf("duplicate ts %s", m.TS)
		}
		seen[m.TS] = true
	}
}

// The server remembers a bounded number of requests and messages, so benchmarks can hammer it.
func TestMemoryIsBounded(t *testing.T) {
	s := New("tok")
	for i := range 2*MaxKept + 5 {
		r := httptest.NewRequest("POST", "/api/chat.postMessage",
			strings.NewReader(fmt.Sprintf(`{"channel":"C0GENERAL","text":"m%d"}`, i)))
		r.Header.Set("Authorization", "Bearer tok")
		r.Header.Set("Content-Type", "application/json")
		s.ServeHTTP(httptest.NewRecorder(), r)
	}
	reqs := s.Requests()
	if got := len(reqs); got < MaxKept || got > 2*MaxKept {
		t.Errorf("Requests() holds %d, want between %d and %d", got, MaxKept, 2*MaxKept)
	}
	last := reqs[len(reqs)-1]
	if !strings.Contains(string(last.Body), fmt.Sprintf("m%d\"", 2*MaxKept+4)) {
		t.Errorf("the newest request was dropped: %s", last.Body)
	}
}

func TestPostMessageClient(t *testing.T) {
	url, stop := New("tok").Start()
	defer stop()
	if err := PostMessage(context.Background(), http.DefaultClient, url, "tok", General, "hi"); err != nil {
		t.Fatal(err)
	}
	if err := PostMessage(context.Background(), http.DefaultClient, url, "wrong", General, "hi"); err == nil || !strings.Contains(err.Error(), "invalid_auth") {
		t.Errorf("PostMessage with a wrong token = %v, want invalid_auth", err)
	}
}
