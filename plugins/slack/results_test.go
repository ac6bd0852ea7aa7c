package main

import (
	"encoding/json"
	"testing"

	"github.com/airlock-dev/airlock/pdk/pdkjson"
)

// The tools' results as encoding/json structs: the shape the manifest's output schemas describe,
// which the tests decode results into, and which the connector's pdkjson writers must match byte
// for byte.

type postMessageResult struct {
	Channel  string `json:"channel"`
	TS       string `json:"ts"`
	ThreadTS string `json:"thread_ts,omitempty"`
}

type channelJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	IsPrivate  bool   `json:"is_private"`
	IsArchived bool   `json:"is_archived"`
	IsMember   bool   `json:"is_member"`
	NumMembers int    `json:"num_members"`
	Topic      string `json:"topic,omitempty"`
	Purpose    string `json:"purpose,omitempty"`
}

type listChannelsResult struct {
	Channels   []channelJSON `json:"channels"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

type messageJSON struct {
	TS         string `json:"ts"`
	User       string `json:"user,omitempty"`
	BotID      string `json:"bot_id,omitempty"`
	Subtype    string `json:"subtype,omitempty"`
	Text       string `json:"text"`
	ThreadTS   string `json:"thread_ts,omitempty"`
	ReplyCount int    `json:"reply_count,omitempty"`
}

type channelHistoryResult struct {
	Channel    string        `json:"channel"`
	Messages   []messageJSON `json:"messages"`
	HasMore    bool          `json:"has_more"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

var awkward = []string{"", "general", "<b>&amp;</b> \"quoted\" \\", "tab\tnl\n\x00", "\u2028", "bad\xffutf8", "émoji 😀"}

func TestWritersMatchEncodingJSON(t *testing.T) {
	for i, s := range awkward {
		c := channel{ID: s, Name: s, IsPrivate: i%2 == 0, IsArchived: i%3 == 0, IsMember: i%2 == 1,
			NumMembers: i - 3, Topic: s, Purpose: awkward[(i+1)%len(awkward)]}
		var w pdkjson.Writer
		writeChannel(&w, &c)
		want, _ := json.Marshal(channelJSON(c))
		if string(w.Bytes()) != string(want) {
			t.Errorf("channel %+v:\n got %s\nwant %s", c, w.Bytes(), want)
		}
		m := message{TS: s, User: s, BotID: awkward[(i+2)%len(awkward)], Subtype: s, Text: s, ThreadTS: s, ReplyCount: i}
		w.Reset(nil)
		writeMessage(&w, &m)
		want, _ = json.Marshal(messageJSON(m))
		if string(w.Bytes()) != string(want) {
			t.Errorf("message %+v:\n got %s\nwant %s", m, w.Bytes(), want)
		}
	}
}
