package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/pdk"
	"github.com/airlock-dev/airlock/pdk/pdktest"
)

// The connector reads Slack's answers with pdkjson since issue 19; before, it decoded them with
// encoding/json into structs. referencePostMessage is that decoding, kept here as the reference:
// whatever Slack answers, post_message must end the same way (same result bytes, or the same tool
// error).

type slackErrorJSON struct {
	OK       bool   `json:"ok"`
	Error    string `json:"error"`
	Needed   string `json:"needed"`
	Provided string `json:"provided"`
	Metadata struct {
		Messages []string `json:"messages"`
	} `json:"response_metadata"`
}

func referencePostMessage(body []byte, channel, threadTS string) ([]byte, *pdk.Error) {
	var resp struct {
		slackErrorJSON
		Channel string `json:"channel"`
		TS      string `json:"ts"`
	}
	err := json.Unmarshal(body, &resp)
	var e error
	if _, syntax := err.(*json.SyntaxError); syntax {
		e = pdk.Fatal("unexpected_response", "Slack sent an answer to %s that is not JSON", "chat.postMessage")
	} else if env := resp.slackErrorJSON; !env.OK && (err == nil || env.Error != "") {
		e = slackToolError("chat.postMessage", channel, slackError{OK: env.OK, Error: env.Error, Needed: env.Needed,
			Provided: env.Provided, Metadata: struct{ Messages []string }{env.Metadata.Messages}})
	} else if err != nil {
		e = pdk.Fatal("unexpected_response", "Slack sent an answer to %s this connector cannot read", "chat.postMessage")
	}
	if e != nil {
		var pe *pdk.Error
		errors.As(e, &pe)
		if pe.Code == "" {
			pe.Code = pdk.CodePluginError // what pdk.Run makes of an empty code
		}
		return nil, pe
	}
	out, _ := json.Marshal(postMessageResult{Channel: resp.Channel, TS: resp.TS, ThreadTS: threadTS})
	return out, nil
}

// exactKeys reports whether every object key in data is spelled exactly, once per object: where
// encoding/json matches keys ignoring case and the last of a repeated null-valued key keeps the
// earlier value, the connector's reader differs by design (pdkjson's documentation).
func exactKeys(data []byte) bool {
	known := []string{"ok", "error", "needed", "provided", "response_metadata", "messages", "channel", "ts"}
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return true // the end, or a syntax error both readers report
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k, _ := tok.(string)
			if top.keys[k] {
				return false
			}
			top.keys[k] = true
			for _, want := range known {
				if k != want && strings.EqualFold(k, want) {
					return false
				}
			}
			top.key = false
			continue
		}
		if top != nil && top.object {
			top.key = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

var answerSeeds = []string{
	`{"ok":true,"channel":"C0GENERAL","ts":"1795443394.714321","message":{"type":"message","text":"hi"}}`,
	`{"ok":false,"error":"not_in_channel"}`,
	`{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]}}`,
	`{"ok":false,"error":"missing_scope","needed":"chat:write","provided":"channels:read"}`,
	`{"ok":"yes","error":"not_in_channel"}`, `{"ok":true,"channel":5}`, `{"ok":true,"ts":null}`, `[]`, `null`, `""`,
	`{"ok":false}`, `{"ok":true}`, `{"ok":true} x`, `<html>`, ``, `{"ok":true,"channel":"C\u00e9\ud800"}`,
	`{"ok":false,"error":"invalid_arguments","response_metadata":{"messages":[null,5]}}`,
	`{"ok":false,"error":"x","response_metadata":{"messages":"no"}}`, `{"OK":true,"channel":"C1"}`,
}

// post calls post_message with body as Slack's answer.
func post(t *testing.T, body []byte) ([]byte, *pdk.Error) {
	h := pdktest.New(t)
	h.HandleHTTP(func(pdk.HTTPRequest) pdk.HTTPResponse { return pdk.HTTPResponse{Status: 200, Body: body} })
	h.SetInput(map[string]any{"channel": fakeslack.General, "text": "hi", "thread_ts": "1.2"})
	return h.Call(postMessage)
}

func checkAnswer(t *testing.T, body []byte) {
	t.Helper()
	if !exactKeys(body) {
		return
	}
	got, gotErr := post(t, body)
	want, wantErr := referencePostMessage(body, fakeslack.General, "1.2")
	if !bytes.Equal(got, want) || (gotErr == nil) != (wantErr == nil) ||
		gotErr != nil && *gotErr != *wantErr {
		t.Fatalf("answer %q:\n got %s %+v\nwant %s %+v", body, got, gotErr, want, wantErr)
	}
}

func TestAnswersReadAsEncodingJSONReadThem(t *testing.T) {
	for _, s := range answerSeeds {
		checkAnswer(t, []byte(s))
	}
	if exactKeys([]byte(`{"OK":true}`)) || exactKeys([]byte(`{"a":{"ts":1,"ts":2}}`)) || !exactKeys([]byte(`{"a":[{"ts":1},{"ts":2}]}`)) {
		t.Fatal("exactKeys is wrong")
	}
}

func FuzzAnswer(f *testing.F) {
	for _, s := range answerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkAnswer(t, body) })
}

// The request body is the JSON encoding/json wrote for the old argument struct: blocks compacted
// and HTML-escaped, optional members left out.
func TestPostMessageBodyMatchesEncodingJSON(t *testing.T) {
	type argsJSON struct {
		Channel  string            `json:"channel"`
		Text     string            `json:"text"`
		Blocks   []json.RawMessage `json:"blocks,omitempty"`
		ThreadTS string            `json:"thread_ts,omitempty"`
	}
	for _, input := range []string{
		`{"channel":"C0GENERAL","text":"<b> & \u2028 bad` + "\xff" + `"}`,
		`{"text":"x","channel":"C0GENERAL","blocks":[ {"type" : "divider"} ,{"type":"section","text":{"type":"mrkdwn","text":"a <b> & c"}}],"thread_ts":"1.2","extra":[1]}`,
		`{"channel":"C0GENERAL","text":"x","blocks":[],"thread_ts":""}`,
	} {
		h := pdktest.New(t)
		h.HandleHTTP(func(pdk.HTTPRequest) pdk.HTTPResponse {
			return pdktest.Response(200, `{"ok":true,"channel":"C0GENERAL","ts":"1.1"}`)
		})
		h.SetInput(json.RawMessage(input))
		if _, toolErr := h.Call(postMessage); toolErr != nil {
			t.Fatalf("%s: %v", input, toolErr)
		}
		var args argsJSON
		if err := json.Unmarshal([]byte(input), &args); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(args)
		reqs := h.Requests()
		if got := reqs[len(reqs)-1].Body; !bytes.Equal(got, want) {
			t.Errorf("%s:\n got body %s\nwant      %s", input, got, want)
		}
	}
}

// list_channels and channel_history name Slack's reason for invalid_arguments too: the struct
// they decoded Slack's answer into had its own response_metadata (for next_cursor), which hid
// the error's messages from encoding/json.
func TestListErrorsNameSlacksReason(t *testing.T) {
	answer := `{"ok":false,"error":"invalid_arguments","response_metadata":{"messages":["[ERROR] unsupported type [json-pointer:/types]"],"next_cursor":""}}`
	for name, tool := range map[string]func() error{"list_channels": listChannels, "channel_history": channelHistory} {
		h := pdktest.New(t)
		h.HandleHTTP(func(pdk.HTTPRequest) pdk.HTTPResponse { return pdktest.Response(200, answer) })
		h.SetInput(map[string]any{"channel": fakeslack.General})
		_, toolErr := h.Call(tool)
		if toolErr == nil || toolErr.Code != "invalid_arguments" || !strings.Contains(toolErr.Message, "unsupported type") {
			t.Errorf("%s: %+v, want invalid_arguments naming Slack's reason", name, toolErr)
		}
	}
}
