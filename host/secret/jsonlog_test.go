package secret

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
)

// TestJSONHandlerMatchesSlog logs records through NewJSONHandler, through LogAttrs on it and
// through the redacting handler over slog's JSON handler it stands for: every line must be the
// same, byte for byte, whether the fast path wrote it or slog did.
func TestJSONHandlerMatchesSlog(t *testing.T) {
	at := time.Date(2026, 12, 4, 15, 4, 5, 123456789, time.FixedZone("X", 3600))
	records := [][]slog.Attr{
		{slog.String("request_id", "0123456789abcdef"), slog.String("agent", "bench"), slog.String("tool", "hostile.noop"),
			slog.String("outcome", "ok"), slog.String("code", ""), slog.Float64("duration_ms", 0.523)},
		{slog.Int("n", -42), slog.Uint64("u", 7), slog.Bool("b", true), slog.Bool("f", false)},
		{slog.Float64("zero", 0), slog.Float64("neg0", math.Copysign(0, -1)), slog.Float64("big", 1e20), slog.Float64("tiny", 1e-6)},
		{slog.Float64("huge", 1e21), slog.Float64("small", 1e-7)}, // 'e' format: slog's
		{slog.Float64("nan", math.NaN())},
		{slog.String("quote", `say "hi"`)}, {slog.String("nl", "a\nb")}, {slog.String("html", "<a&b>")},
		{slog.String("utf8", "héllo \u2028")}, {slog.String("ctl", "\x00\x7f")},
		{slog.String("dsn", "postgres://airlock:hunter2@db/x")}, {slog.String("q", "https://h/p?token=abc")},
		{slog.Any("err", errors.New("dial postgres://u:pw@db: refused"))},
		{slog.Duration("d", time.Second), slog.Time("t", at)},
		{slog.Group("g", slog.String("a", "b"))}, {slog.Any("", nil)}, {slog.String("", "x")},
		{slog.String("k\"ey", "v")},
		{slog.String("a", "1"), slog.String("b", "2"), slog.String("c", "3"), slog.String("d", "4"), slog.String("e", "5"),
			slog.String("f", "6"), slog.Int("g", 7), slog.Float64("h", 12.5)},
	}
	for _, msg := range []string{"tool call", "", `a "quoted" message`, "connect postgres://u:pw@db/x"} {
		for _, tm := range []time.Time{at, {}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
			for _, level := range []slog.Level{slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelDebug, slog.LevelInfo + 2} {
				for _, attrs := range records {
					var fast, direct, want bytes.Buffer
					rec := slog.NewRecord(tm, level, msg, 0)
					rec.AddAttrs(attrs...)
					opts := &slog.HandlerOptions{Level: slog.LevelDebug}
					if err := NewJSONHandler(&fast, opts).Handle(context.Background(), rec.Clone()); err != nil {
						t.Fatal(err)
					}
					if err := LogAttrs(context.Background(), NewJSONHandler(&direct, opts), tm, level, msg, 0, attrs...); err != nil {
						t.Fatal(err)
					}
					if err := RedactingHandler(slog.NewJSONHandler(&want, opts)).Handle(context.Background(), rec.Clone()); err != nil {
						t.Fatal(err)
					}
					if fast.String() != want.String() {
						t.Errorf("record %q %v %v:\n got %s\nwant %s", msg, level, attrs, fast.String(), want.String())
					}
					if direct.String() != want.String() {
						t.Errorf("LogAttrs %q %v %v:\n got %s\nwant %s", msg, level, attrs, direct.String(), want.String())
					}
				}
			}
		}
	}
}

// A credential in a log line never reaches the writer, on the fast path or off it.
func TestJSONHandlerRedacts(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewJSONHandler(&buf, nil))
	log.Info("tool call", "request_id", "r1", "err", errors.New("query failed: postgres://airlock:hunter2@db/x"))
	log.Info("tool call", slog.String("url", "https://api.example.test/x?access_token=hunter2"), slog.Int("n", 1))
	log.With("dsn", "postgres://airlock:hunter2@db/x").Info("connected")
	log.WithGroup("g").Info("x", "dsn", "host=db password=hunter2")
	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("a credential reached the log:\n%s", buf.String())
	}
	if n := strings.Count(buf.String(), RedactedCredential); n != 4 {
		t.Errorf("%d redactions in the log, want 4:\n%s", n, buf.String())
	}
}

// The handler's options hold: a level below the minimum is not logged; ReplaceAttr and
// AddSource, which the fast path does not apply, send every record through slog.
func TestJSONHandlerOptions(t *testing.T) {
	var buf bytes.Buffer
	slog.New(NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})).Info("quiet")
	if buf.Len() != 0 {
		t.Errorf("an Info line reached a Warn handler: %s", buf.String())
	}
	drop := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	slog.New(NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: drop})).Info("tool call", "k", "v")
	if got, want := buf.String(), `{"level":"INFO","msg":"tool call","k":"v"}`+"\n"; got != want {
		t.Errorf("with ReplaceAttr: %s, want %s", got, want)
	}
	buf.Reset()
	slog.New(NewJSONHandler(&buf, &slog.HandlerOptions{AddSource: true})).Info("tool call")
	if !strings.Contains(buf.String(), `"source":`) {
		t.Errorf("with AddSource: %s, want a source", buf.String())
	}
}

func BenchmarkJSONHandler(b *testing.B) {
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "tool call", 0)
	rec.AddAttrs(slog.String("request_id", "0123456789abcdef"), slog.String("agent", "bench"), slog.String("connector", "hostile"),
		slog.String("tool", "hostile.noop"), slog.String("outcome", "ok"), slog.String("code", ""), slog.Float64("duration_ms", 0.523))
	for _, bc := range []struct {
		name string
		h    slog.Handler
	}{{"fast", NewJSONHandler(discard{}, nil)}, {"slog", RedactingHandler(slog.NewJSONHandler(discard{}, nil))}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.h.Handle(context.Background(), rec)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// plainSlow is plainFast's reference: a byte at a time.
func plainSlow(s string) bool {
	for i := 0; i < len(s); i++ {
		if plainClass[s[i]] != 0 {
			return false
		}
	}
	return true
}

// plainFast answers as the byte-at-a-time loop for every string: a byte that needs escaping or
// may start a credential is never missed, at any position of an eight-byte word.
func FuzzPlainFast(f *testing.F) {
	for _, s := range []string{"", "tool call", "0123456789abcdef", "hostile.noop", `say "hi"`, "a\\b", "k=v", "https://x",
		"\x00", "\x1f\x20", "~\x7f", "\x80", "héllo", "aaaaaaa\"", "aaaaaaaa\x01", "!!!!!!!!!!!!!!!:", "        "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := plainFast(s), plainSlow(s); got != want {
			t.Fatalf("plainFast(%q) = %v, want %v", s, got, want)
		}
	})
}

// Every byte value, alone and beside plain bytes at each position of a word, is classed as the
// byte-at-a-time loop classes it (the fuzz target's seeds cannot cover all 256 × 16 cases).
func TestPlainFastEveryByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		for n := 1; n <= 17; n++ {
			for at := 0; at < n; at++ {
				b := bytes.Repeat([]byte{'a'}, n)
				b[at] = byte(c)
				if got, want := plainFast(string(b)), plainSlow(string(b)); got != want {
					t.Fatalf("plainFast(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
}

// appendTime writes what time.RFC3339Nano does, across seconds, zones, fractions with trailing
// zeros and none, and years slog's JSON handler writes another way; switching between them
// (its cached second) changes nothing.
func TestAppendTimeMatchesFormat(t *testing.T) {
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("A", 5*3600+1800), time.FixedZone("B", -8*3600), time.FixedZone("C", 0)}
	base := time.Date(2026, 12, 4, 23, 59, 58, 0, time.UTC)
	var times []time.Time
	for _, ns := range []int{0, 1, 10, 100000000, 120000000, 123456789, 999999999, 500} {
		for _, d := range []time.Duration{0, time.Second, 2 * time.Second, 365 * 24 * time.Hour} {
			times = append(times, base.Add(d).Add(time.Duration(ns)))
		}
	}
	times = append(times, time.Date(0, 1, 1, 0, 0, 0, 5, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0))
	for round := 0; round < 2; round++ { // the second round meets every second cached by the first
		for _, tm := range times {
			for _, z := range zones {
				tz := tm.In(z)
				got, ok := appendTime([]byte("x"), tz)
				want := tz.AppendFormat([]byte("x"), time.RFC3339Nano)
				if y := tz.Year(); ok != (y >= 0 && y < 10000) {
					t.Errorf("appendTime(%v) ok = %v for year %d", tz, ok, y)
				}
				if ok && string(got) != string(want) {
					t.Errorf("appendTime(%v) = %s, want %s", tz, got, want)
				}
			}
		}
	}
}

// BenchmarkLogAttrs writes the host's per-call line (finishCall's attributes) through LogAttrs.
func BenchmarkLogAttrs(b *testing.B) {
	h := NewJSONHandler(discard{}, nil)
	attrs := []slog.Attr{slog.String("request_id", "0123456789abcdef"), slog.String("agent", "bench"), slog.String("connector", "hostile"),
		slog.String("tool", "hostile.noop"), slog.String("outcome", "ok"), slog.String("code", ""), slog.Float64("duration_ms", 0.523)}
	b.ReportAllocs()
	for b.Loop() {
		_ = LogAttrs(context.Background(), h, time.Now(), slog.LevelInfo, "tool call", 0, attrs...)
	}
}
