package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/pdk"
	"github.com/airlock-dev/airlock/pdk/pdktest"
)

const token = "xoxb-canary-7f3a9"

// newHost returns a fake airlock host whose upstream is a fake Slack, with the bot token filling
// the bot_token slot as the host would inject it.
func newHost(t *testing.T) (*pdktest.Host, *fakeslack.Server) {
	t.Helper()
	s := fakeslack.New(token)
	h := pdktest.New(t)
	h.Serve(s)
	h.SetCredential(credential, pdktest.Bearer(token))
	return h, s
}

func TestPostMessage(t *testing.T) {
	t.Parallel()
	h, s := newHost(t)
	parent := s.Messages(fakeslack.General)[0].TS
	h.SetInput(map[string]any{
		"channel":   fakeslack.General,
		"text":      "Deploy done :tada:",
		"blocks":    []any{map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "*Deploy* done"}}},
		"thread_ts": parent,
	})
	var got postMessageResult
	if toolErr := h.CallJSON(postMessage, &got); toolErr != nil {
		t.Fatalf("post_message: %v", toolErr)
	}
	msgs := s.Messages(fakeslack.General)
	posted := msgs[len(msgs)-1]
	want := postMessageResult{Channel: fakeslack.General, TS: posted.TS, ThreadTS: parent}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result mismatch (-want +got):\n%s", diff)
	}
	if posted.Text != "Deploy done :tada:" || posted.ThreadTS != parent || len(posted.Blocks) != 1 || posted.BotID != fakeslack.BotID {
		t.Errorf("posted message = %+v", posted)
	}

	reqs := h.Requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.URL != "https://slack.com/api/chat.postMessage" || r.Credential != "bot_token" ||
		r.IdempotencyKey != "" || len(r.Headers["Authorization"]) != 0 {
		t.Errorf("request = %+v", r)
	}
	if strings.Contains(string(r.Body), token) {
		t.Error("the request body contains the token: the plugin must never see it")
	}
	if sr := s.Requests(); len(sr) != 1 || !sr[0].Authorized {
		t.Errorf("fake Slack saw %+v, want one authorized request", sr)
	}
}

func TestPostMessageErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", maxTextLen+1)
	tests := []struct {
		name      string
		args      map[string]any
		setup     func(*pdktest.Host, *fakeslack.Server)
		code      string
		category  pdk.Category
		contains  string
		retryMS   int64
		noRequest bool
	}{
		{name: "not in channel", args: map[string]any{"channel": fakeslack.Ops, "text": "hi"},
			code: "not_in_channel", category: pdk.CategoryCorrectable, contains: "the bot is not in channel C0OPS: invite it with /invite @bot"},
		{name: "channel not found", args: map[string]any{"channel": "C0NOPE", "text": "hi"},
			code: "channel_not_found", category: pdk.CategoryCorrectable, contains: "use list_channels"},
		{name: "archived", args: map[string]any{"channel": fakeslack.OldProject, "text": "hi"},
			code: "is_archived", category: pdk.CategoryCorrectable, contains: "archived"},
		{name: "not an ID", args: map[string]any{"channel": "#general", "text": "hi"},
			code: pdk.CodeInvalidArguments, category: pdk.CategoryCorrectable, contains: "list_channels", noRequest: true},
		{name: "empty", args: map[string]any{"channel": fakeslack.General, "text": " "},
			code: "no_text", category: pdk.CategoryCorrectable, noRequest: true},
		{name: "too long", args: map[string]any{"channel": fakeslack.General, "text": long},
			code: "msg_too_long", category: pdk.CategoryCorrectable, contains: "40000", noRequest: true},
		{name: "bad blocks", args: map[string]any{"channel": fakeslack.General, "text": "x", "blocks": []any{map[string]any{"text": "no type"}}},
			code: "invalid_blocks", category: pdk.CategoryCorrectable, contains: "blocks[0]: the type must be one of", noRequest: true},
		{name: "missing scope", args: map[string]any{"channel": fakeslack.General, "text": "hi"},
			setup: func(_ *pdktest.Host, s *fakeslack.Server) { s.SetScopes("channels:read", "channels:history") },
			code:  "missing_scope", category: pdk.CategoryCorrectable,
			contains: "Slack refused: the token lacks scope chat:write (it has: channels:read,channels:history); ask an admin to add it"},
		{name: "wrong token", args: map[string]any{"channel": fakeslack.General, "text": "hi"},
			setup: func(h *pdktest.Host, _ *fakeslack.Server) {
				h.SetCredential(credential, pdktest.Bearer("xoxb-revoked"))
			},
			code: "credential_rejected", category: pdk.CategoryFatal, contains: "the Slack credential was rejected (invalid_auth); ask an admin to check the grant"},
		{name: "no token", args: map[string]any{"channel": fakeslack.General, "text": "hi"},
			setup: func(h *pdktest.Host, _ *fakeslack.Server) { h.SetCredential(credential, func(*http.Request) {}) },
			code:  "credential_rejected", category: pdk.CategoryFatal, contains: "not_authed"},
		{name: "rate limited (429)", args: map[string]any{"channel": fakeslack.General, "text": "hi"},
			setup: func(_ *pdktest.Host, s *fakeslack.Server) { s.SetRateLimit("chat.postMessage", 1, time.Hour) },
			code:  pdk.CodeRateLimited, category: pdk.CategoryRetryable, contains: "try again in", retryMS: 3600_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, s := newHost(t)
			if tt.setup != nil {
				tt.setup(h, s)
			}
			if tt.retryMS > 0 { // use up the rate limit
				h.SetInput(map[string]any{"channel": fakeslack.General, "text": "first"})
				if _, toolErr := h.Call(postMessage); toolErr != nil {
					t.Fatalf("first call: %v", toolErr)
				}
			}
			before := len(s.Requests())
			h.SetInput(tt.args)
			_, toolErr := h.Call(postMessage)
			if toolErr == nil {
				t.Fatal("post_message succeeded, want an error")
			}
			if toolErr.Code != tt.code || toolErr.Category != tt.category || !strings.Contains(toolErr.Message, tt.contains) {
				t.Errorf("tool error = %+v, want code %s, category %s, message containing %q", toolErr, tt.code, tt.category, tt.contains)
			}
			if tt.retryMS > 0 && (toolErr.RetryAfterMS <= 0 || toolErr.RetryAfterMS > tt.retryMS) {
				t.Errorf("retry_after_ms = %d, want in (0, %d]", toolErr.RetryAfterMS, tt.retryMS)
			}
			if sent := len(s.Requests()) - before; tt.noRequest && sent != 0 {
				t.Errorf("%d requests sent to Slack, want none (the arguments are invalid)", sent)
			}
			if strings.Contains(toolErr.Message, token) {
				t.Error("the tool error contains the token")
			}
		})
	}
}

func TestHostRefusal(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t)
	h2 := pdktest.New(t)
	h2.Serve(fakeslack.New(token)) // bot_token slot not filled: the host refuses
	h2.SetInput(map[string]any{"channel": fakeslack.General, "text": "hi"})
	_, toolErr := h2.Call(postMessage)
	if toolErr == nil || toolErr.Code != pdk.CodeCredential || toolErr.Category != pdk.CategoryCorrectable {
		t.Errorf("unfilled slot: tool error = %+v, want the host's %s refusal", toolErr, pdk.CodeCredential)
	}

	refusal := &pdk.Error{Code: pdk.CodeEgressDenied, Category: pdk.CategoryFatal, Message: "slack.com is not granted to this agent"}
	h.HandleHTTP(func(pdk.HTTPRequest) pdk.HTTPResponse { return pdk.HTTPResponse{Error: refusal} })
	h.SetInput(map[string]any{})
	if _, toolErr := h.Call(listChannels); !cmp.Equal(toolErr, refusal) {
		t.Errorf("egress refusal: tool error = %+v, want %+v unchanged", toolErr, refusal)
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		resp     pdk.HTTPResponse
		code     string
		category pdk.Category
		retryMS  int64
	}{
		{"503", pdktest.Response(503, "upstream down"), pdk.CodeUnavailable, pdk.CategoryRetryable, 0},
		{"429 with Retry-After", pdk.HTTPResponse{Status: 429, Headers: map[string][]string{"retry-after": {"30"}}},
			pdk.CodeRateLimited, pdk.CategoryRetryable, 30_000},
		{"ratelimited body", pdktest.Response(200, `{"ok":false,"error":"ratelimited"}`), pdk.CodeRateLimited, pdk.CategoryRetryable, 0},
		{"internal_error body", pdktest.Response(200, `{"ok":false,"error":"internal_error"}`), pdk.CodeUnavailable, pdk.CategoryRetryable, 0},
		{"token revoked", pdktest.Response(200, `{"ok":false,"error":"token_revoked"}`), "credential_rejected", pdk.CategoryFatal, 0},
		{"unknown error", pdktest.Response(200, `{"ok":false,"error":"something_new"}`), "something_new", pdk.CategoryCorrectable, 0},
		{"not JSON", pdktest.Response(200, "<html>"), "unexpected_response", pdk.CategoryFatal, 0},
		{"404", pdktest.Response(404, `{"ok":false,"error":"unknown_method"}`), "unexpected_response", pdk.CategoryFatal, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := pdktest.New(t)
			h.HandleHTTP(func(pdk.HTTPRequest) pdk.HTTPResponse { return tt.resp })
			h.SetInput(map[string]any{"channel": fakeslack.General})
			_, toolErr := h.Call(channelHistory)
			if toolErr == nil || toolErr.Code != tt.code || toolErr.Category != tt.category || toolErr.RetryAfterMS != tt.retryMS {
				t.Errorf("tool error = %+v, want code %s, category %s, retry_after_ms %d", toolErr, tt.code, tt.category, tt.retryMS)
			}
		})
	}
}

func TestListChannels(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t)
	var got listChannelsResult
	if toolErr := h.CallJSON(listChannels, &got); toolErr != nil {
		t.Fatal(toolErr)
	}
	var ids []string
	for _, c := range got.Channels {
		ids = append(ids, c.ID)
	}
	want := []string{fakeslack.General, fakeslack.Random, fakeslack.Dev, fakeslack.Ops, fakeslack.OldProject}
	if diff := cmp.Diff(want, ids); diff != "" || got.NextCursor != "" {
		t.Errorf("default list mismatch (-want +got):\n%s next_cursor=%q", diff, got.NextCursor)
	}
	if c := got.Channels[0]; c.Name != "general" || !c.IsMember || c.NumMembers != 42 || c.Topic != "About #general" {
		t.Errorf("first channel = %+v", c)
	}
	if got.Channels[3].IsMember || !got.Channels[4].IsArchived {
		t.Errorf("ops/old-project flags wrong: %+v", got.Channels[3:])
	}

	// Page by hand with limit and cursor, private channels included, archived excluded.
	ids = nil
	cursor := ""
	for i := 0; i < 10; i++ {
		h.SetInput(map[string]any{"limit": 2, "cursor": cursor, "types": []string{"public_channel", "private_channel"}, "exclude_archived": true})
		var page listChannelsResult
		if toolErr := h.CallJSON(listChannels, &page); toolErr != nil {
			t.Fatal(toolErr)
		}
		if len(page.Channels) > 2 {
			t.Fatalf("page of %d channels, limit 2", len(page.Channels))
		}
		for _, c := range page.Channels {
			ids = append(ids, c.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	want = []string{fakeslack.General, fakeslack.Random, fakeslack.Dev, fakeslack.Ops, fakeslack.SecretPlans}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("paged list mismatch (-want +got):\n%s", diff)
	}
}

// TestListChannelsFollowsPages: Slack may return short pages while more exist; the tool follows
// next_cursor up to its limit, and up to maxListPages requests.
func TestListChannelsFollowsPages(t *testing.T) {
	t.Parallel()
	s := fakeslack.New(token)
	for i := range 30 {
		s.AddChannel(fakeslack.Channel{ID: fmt.Sprintf("C1EXTRA%02d", i), Name: fmt.Sprintf("extra-%d", i), IsChannel: true, IsMember: true})
	}
	h := pdktest.New(t)
	h.SetCredential(credential, pdktest.Bearer(token))
	// Slack returns at most 2 channels per page, whatever the limit.
	h.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if n := q.Get("limit"); n != "1" {
			q.Set("limit", "2")
		}
		r.URL.RawQuery = q.Encode()
		s.ServeHTTP(w, r)
	}))

	h.SetInput(map[string]any{"limit": 7})
	var got listChannelsResult
	if toolErr := h.CallJSON(listChannels, &got); toolErr != nil {
		t.Fatal(toolErr)
	}
	if len(got.Channels) != 7 || got.NextCursor == "" {
		t.Errorf("limit 7 with 2-channel pages: %d channels, next_cursor %q; want 7 and a cursor", len(got.Channels), got.NextCursor)
	}
	if n := len(h.Requests()); n != 4 {
		t.Errorf("requests = %d, want 4 (2+2+2+1)", n)
	}

	// The page cap: limit 200 stops after maxListPages requests, with a cursor to continue.
	h.SetInput(map[string]any{"limit": 500}) // above the cap: clamped to 200
	before := len(h.Requests())
	got = listChannelsResult{}
	if toolErr := h.CallJSON(listChannels, &got); toolErr != nil {
		t.Fatal(toolErr)
	}
	reqs := h.Requests()[before:]
	if len(reqs) != maxListPages || len(got.Channels) != 2*maxListPages || got.NextCursor == "" {
		t.Errorf("page cap: %d requests, %d channels, cursor %q; want %d, %d and a cursor",
			len(reqs), len(got.Channels), got.NextCursor, maxListPages, 2*maxListPages)
	}
	u, _ := url.Parse(reqs[0].URL)
	if l := u.Query().Get("limit"); l != "200" || reqs[0].Method != "GET" {
		t.Errorf("first request %s %s: limit=%s, want GET with limit 200", reqs[0].Method, reqs[0].URL, l)
	}
}

func TestListChannelsPrivateNeedsScope(t *testing.T) {
	t.Parallel()
	h, s := newHost(t)
	s.SetScopes("channels:read")
	h.SetInput(map[string]any{"types": []string{"private_channel"}})
	_, toolErr := h.Call(listChannels)
	if toolErr == nil || toolErr.Code != "missing_scope" || !strings.Contains(toolErr.Message, "groups:read") {
		t.Errorf("tool error = %+v, want missing_scope naming groups:read", toolErr)
	}
}

func TestChannelHistory(t *testing.T) {
	t.Parallel()
	h, s := newHost(t)
	seeded := s.Messages(fakeslack.General)

	h.SetInput(map[string]any{"channel": fakeslack.General, "limit": 2})
	var page1 channelHistoryResult
	if toolErr := h.CallJSON(channelHistory, &page1); toolErr != nil {
		t.Fatal(toolErr)
	}
	if len(page1.Messages) != 2 || !page1.HasMore || page1.NextCursor == "" || page1.Channel != fakeslack.General {
		t.Fatalf("page 1 = %+v", page1)
	}
	if m := page1.Messages[0]; m.Text != seeded[len(seeded)-1].Text || m.User != seeded[len(seeded)-1].User || m.TS != seeded[len(seeded)-1].TS {
		t.Errorf("newest message = %+v, want %+v", m, seeded[len(seeded)-1])
	}

	h.SetInput(map[string]any{"channel": fakeslack.General, "cursor": page1.NextCursor})
	var page2 channelHistoryResult
	if toolErr := h.CallJSON(channelHistory, &page2); toolErr != nil {
		t.Fatal(toolErr)
	}
	if len(page2.Messages) != 3 || page2.HasMore || page2.NextCursor != "" {
		t.Errorf("page 2 = %+v", page2)
	}
	if m := page2.Messages[1]; m.ReplyCount != 1 || m.ThreadTS != m.TS {
		t.Errorf("threaded message = %+v, want reply_count 1", m)
	}

	h.SetInput(map[string]any{"channel": fakeslack.General, "oldest": seeded[1].TS, "latest": seeded[3].TS})
	var window channelHistoryResult
	if toolErr := h.CallJSON(channelHistory, &window); toolErr != nil {
		t.Fatal(toolErr)
	}
	if len(window.Messages) != 1 || window.Messages[0].TS != seeded[2].TS {
		t.Errorf("window = %+v, want only %s", window.Messages, seeded[2].TS)
	}

	h.SetInput(map[string]any{"channel": fakeslack.Random})
	var empty json.RawMessage
	if toolErr := h.CallJSON(channelHistory, &empty); toolErr != nil {
		t.Fatal(toolErr)
	}
	if want := `{"channel":"C0RANDOM","messages":[],"has_more":false}`; string(empty) != want {
		t.Errorf("empty history = %s, want %s", empty, want)
	}

	h.SetInput(map[string]any{"channel": fakeslack.Ops})
	if _, toolErr := h.Call(channelHistory); toolErr == nil || toolErr.Code != "not_in_channel" {
		t.Errorf("history of ops: %+v, want not_in_channel", toolErr)
	}
	h.SetInput(map[string]any{"channel": fakeslack.General, "oldest": "last tuesday"})
	if _, toolErr := h.Call(channelHistory); toolErr == nil || toolErr.Code != "invalid_ts_oldest" {
		t.Errorf("bad oldest: %+v, want invalid_ts_oldest", toolErr)
	}
}

func TestValidChannel(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{"C0GENERAL": true, "G0SECRET": true, "D024BE91L": true, "C1": false,
		"c0general": false, "#general": false, "X0GENERAL": false, "C0GEN-RAL": false, "": false} {
		if got := validChannel(id); got != want {
			t.Errorf("validChannel(%q) = %v, want %v", id, got, want)
		}
	}
}
