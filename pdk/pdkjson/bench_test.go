package pdkjson

import (
	"encoding/json"
	"testing"
)

// Slack's answer to chat.postMessage, as the connector reads it. Run these as WebAssembly too
// (RATIONALE.md): GOOS=wasip1 GOARCH=wasm go test -c, then wazero run.
var benchAnswer = []byte(`{"ok":true,"channel":"C0GENERAL","ts":"1795443394.714321","message":{"type":"message",` +
	`"user":"U0BOT","bot_id":"B0BOT","text":"benchmark: deploy finished","ts":"1795443394.714321","team":"T0AIRLOCK"}}`)

func BenchmarkAnswer(b *testing.B) {
	b.Run("pdkjson", func(b *testing.B) {
		b.ReportAllocs()
		var d Decoder
		for b.Loop() {
			var ok bool
			var channel, ts string
			d.Reset(benchAnswer)
			d.Object(func(key string) {
				switch key {
				case "ok":
					ok = d.Bool()
				case "channel":
					channel = d.String()
				case "ts":
					ts = d.String()
				}
			})
			if d.End() != nil || !ok || channel == "" || ts == "" {
				b.Fatal("not read")
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v struct {
				OK      bool   `json:"ok"`
				Channel string `json:"channel"`
				TS      string `json:"ts"`
			}
			if json.Unmarshal(benchAnswer, &v) != nil || !v.OK {
				b.Fatal("not read")
			}
		}
	})
}

func BenchmarkWrite(b *testing.B) {
	b.Run("pdkjson", func(b *testing.B) {
		b.ReportAllocs()
		var w Writer
		buf := make([]byte, 0, 128)
		for b.Loop() {
			w.Reset(buf)
			w.ObjectStart()
			w.Key("channel")
			w.String("C0GENERAL")
			w.Key("text")
			w.String("benchmark: deploy finished")
			w.ObjectEnd()
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(struct {
				Channel string `json:"channel"`
				Text    string `json:"text"`
			}{"C0GENERAL", "benchmark: deploy finished"})
		}
	})
}
