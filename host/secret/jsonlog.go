package secret

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// NewJSONHandler returns RedactingHandler(slog.NewJSONHandler(w, opts)) that writes the common
// record itself: one whose message, keys and values are plain ASCII strings (printable, no quote
// or backslash) holding nothing [RedactURLs] changes, integers, finite floats and booleans, on
// a handler without attributes, groups, ReplaceAttr or AddSource. It appends that line directly,
// byte for byte as slog's JSON handler would (TestJSONHandlerMatchesSlog), in about a fifth of
// the time: a host logs one such line per tool call. Any other record goes through slog's
// handler behind the redacting one, unchanged.
func NewJSONHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	lw := &lockedWriter{w: w}
	var o slog.HandlerOptions
	if opts != nil {
		o = *opts
	}
	h := &jsonHandler{w: lw, opts: o, slow: RedactingHandler(slog.NewJSONHandler(lw, opts))}
	h.fast = o.ReplaceAttr == nil && !o.AddSource
	return h
}

// lockedWriter serialises the writes of the fast path and of slog's handler on one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type jsonHandler struct {
	w    *lockedWriter
	opts slog.HandlerOptions
	slow slog.Handler // the redacting slog handler, for every other record
	fast bool
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (h *jsonHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.slow.Enabled(ctx, l)
}

func (h *jsonHandler) Handle(ctx context.Context, rec slog.Record) error {
	if !h.fast {
		return h.slow.Handle(ctx, rec)
	}
	p := linePool.Get().(*[]byte)
	line, ok := appendLine((*p)[:0], rec)
	var err error
	if ok {
		_, err = h.w.Write(line)
	} else {
		err = h.slow.Handle(ctx, rec)
	}
	h.recycle(p, line)
	return err
}

// LogAttrs hands h the record (t, level, msg, pc) with attrs, as h.Handle of a Record holding
// them would get it. When h is a NewJSONHandler, the line is written straight from attrs,
// without a Record (which keeps five attributes inline and allocates for more): for a line
// written on every call, of a host that is to allocate nothing per call.
func LogAttrs(ctx context.Context, h slog.Handler, t time.Time, level slog.Level, msg string, pc uintptr, attrs ...slog.Attr) error {
	if jh, ok := h.(*jsonHandler); ok && jh.fast {
		p := linePool.Get().(*[]byte)
		line, ok := appendHead((*p)[:0], t, level, msg)
		for i := 0; ok && i < len(attrs); i++ {
			line, ok = appendAttr(line, attrs[i])
		}
		var err error
		if ok {
			_, err = jh.w.Write(append(line, "}\n"...))
		}
		jh.recycle(p, line)
		if ok {
			return err
		}
	}
	rec := slog.NewRecord(t, level, msg, pc)
	rec.AddAttrs(attrs...)
	return h.Handle(ctx, rec)
}

// recycle puts a line buffer back in the pool, unless a huge line made it too large to keep.
func (h *jsonHandler) recycle(p *[]byte, line []byte) {
	if cap(line) <= 64<<10 {
		*p = line
		linePool.Put(p)
	}
}

func (h *jsonHandler) WithAttrs(attrs []slog.Attr) slog.Handler { return h.slow.WithAttrs(attrs) }
func (h *jsonHandler) WithGroup(name string) slog.Handler       { return h.slow.WithGroup(name) }

// appendLine appends rec as slog's JSON handler writes it, or reports false when rec is not
// one appendLine writes (see NewJSONHandler).
func appendLine(b []byte, rec slog.Record) ([]byte, bool) {
	b, ok := appendHead(b, rec.Time, rec.Level, rec.Message)
	if !ok {
		return b, false
	}
	rec.Attrs(func(a slog.Attr) bool {
		b, ok = appendAttr(b, a)
		return ok
	})
	return append(b, "}\n"...), ok
}

// appendHead opens a line with its time, level and message.
func appendHead(b []byte, t time.Time, level slog.Level, msg string) ([]byte, bool) {
	b = append(b, '{')
	if !t.IsZero() {
		b = append(b, `"time":"`...)
		var ok bool
		if b, ok = appendTime(b, t); !ok {
			return b, false
		}
		b = append(b, `",`...)
	}
	b = append(b, `"level":"`...)
	b = append(b, level.String()...)
	b = append(b, `","msg":`...)
	return appendPlain(b, msg)
}

// stamp is a formatted second of the log's clock: lines logged within one second (of one
// location) share it, and only their fraction is formatted.
type stamp struct {
	sec  int64
	loc  *time.Location
	ok   bool   // a year slog's JSON handler writes as RFC 3339 (0 to 9999)
	head []byte // "2006-01-02T15:04:05"
	zone []byte // "Z07:00"
}

var lastStamp atomic.Pointer[stamp]

// appendTime appends t as t.AppendFormat(b, time.RFC3339Nano) does, or reports false for a year
// slog's JSON handler writes otherwise.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	sec, loc := t.Unix(), t.Location()
	s := lastStamp.Load()
	if s == nil || s.sec != sec || s.loc != loc {
		y := t.Year()
		s = &stamp{sec: sec, loc: loc, ok: y >= 0 && y < 10000,
			head: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
		lastStamp.Store(s)
	}
	if !s.ok {
		return b, false
	}
	b = append(b, s.head...)
	if ns := t.Nanosecond(); ns != 0 { // ".999999999": trailing zeros dropped
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(frac)
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, s.zone...), true
}

// appendAttr appends ,"key":value.
func appendAttr(b []byte, a slog.Attr) ([]byte, bool) {
	if a.Key == "" {
		return b, false // slog drops it, or inlines a group
	}
	b = append(b, ',')
	b, ok := appendPlain(b, a.Key)
	if !ok {
		return b, false
	}
	b = append(b, ':')
	return appendValue(b, a.Value)
}

func appendValue(b []byte, v slog.Value) ([]byte, bool) {
	switch v.Kind() {
	case slog.KindString:
		return appendPlain(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10), true
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10), true
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool()), true
	case slog.KindFloat64:
		// As encoding/json, which slog calls: 'f' between 1e-6 and 1e21, 'e' outside (left to slog).
		f := v.Float64()
		if abs := math.Abs(f); math.IsNaN(f) || math.IsInf(f, 0) || abs != 0 && (abs < 1e-6 || abs >= 1e21) {
			return b, false
		}
		return strconv.AppendFloat(b, f, 'f', -1, 64), true
	}
	return b, false
}

// appendPlain appends s quoted when it needs neither JSON escaping nor redaction.
func appendPlain(b []byte, s string) ([]byte, bool) {
	if !plainFast(s) {
		var class byte
		for i := 0; i < len(s); i++ {
			class |= plainClass[s[i]]
		}
		if class&needsEscape != 0 || class&maybeCredential != 0 && RedactURLs(s) != s {
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// Classes of bytes in plainClass.
const (
	needsEscape     = 1 << iota // JSON escapes it, or it is not ASCII
	maybeCredential             // RedactURLs looks only at text with "://" or "="
)

var plainClass = func() (t [256]byte) {
	for c := range t {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			t[c] = needsEscape
		}
	}
	t[':'], t['='] = maybeCredential, maybeCredential
	return t
}()

// plainFast reports, eight bytes at a time, that no byte of s has a class in plainClass: every
// byte is printable ASCII other than '"', '\\', ':' and '='. False means "look byte by byte";
// it is never true of a string holding such a byte (FuzzPlainFast).
func plainFast(s string) bool {
	// Each term is non-zero exactly when some byte of x is of its kind (the classic tests: a
	// borrow may mark more bytes, but only above one that is).
	var flags uint64
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		flags |= x&highBits | (x-0x20*lowBits)&^x&highBits | // not ASCII; below 0x20
			hasZero(x^0x7f*lowBits) | hasZero(x^'"'*lowBits) | hasZero(x^'\\'*lowBits) | hasZero(x^':'*lowBits) | hasZero(x^'='*lowBits)
	}
	if flags != 0 {
		return false
	}
	for ; i < len(s); i++ {
		if plainClass[s[i]] != 0 {
			return false
		}
	}
	return true
}

// Each byte of a word set to 1, and each byte with only its high bit set (plainFast, hasZero).
const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// hasZero is non-zero exactly when a byte of x is zero.
func hasZero(x uint64) uint64 {
	return (x - lowBits) & ^x & highBits
}
