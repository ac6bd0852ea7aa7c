package pdkjson

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
)

// A Writer appends JSON to a byte slice, writing each value as encoding/json.Marshal writes it
// (strings HTML-escaped, invalid UTF-8 as U+FFFD, floats in the same format, raw values
// compacted). It puts the commas between members and elements itself:
//
//	var w pdkjson.Writer
//	w.ObjectStart()
//	w.Key("channel")
//	w.String(resp.Channel)
//	w.Key("ts")
//	w.String(resp.TS)
//	w.ObjectEnd()
//	pdk.OutputBytes(w.Bytes())
//
// The zero Writer is ready to use. Keys and values must alternate inside objects; the Writer
// does not check the document's shape.
type Writer struct {
	b   []byte
	err error
}

// Reset makes w append to buf[:0], forgetting any error, so a buffer can be reused.
func (w *Writer) Reset(buf []byte) { *w = Writer{b: buf[:0]} }

// Bytes returns the JSON written so far.
func (w *Writer) Bytes() []byte { return w.b }

// Err returns the first value that could not be written (a NaN or infinite float, a raw value
// that is not JSON); the value was left out.
func (w *Writer) Err() error { return w.err }

// sep writes the comma a value or key needs after the previous one.
func (w *Writer) sep() {
	if n := len(w.b); n > 0 {
		switch w.b[n-1] {
		case '{', '[', ':', ',':
		default:
			w.b = append(w.b, ',')
		}
	}
}

// ObjectStart opens an object.
func (w *Writer) ObjectStart() { w.sep(); w.b = append(w.b, '{') }

// ObjectEnd closes an object.
func (w *Writer) ObjectEnd() { w.b = append(w.b, '}') }

// ArrayStart opens an array.
func (w *Writer) ArrayStart() { w.sep(); w.b = append(w.b, '[') }

// ArrayEnd closes an array.
func (w *Writer) ArrayEnd() { w.b = append(w.b, ']') }

// Key writes an object member's key and colon.
func (w *Writer) Key(k string) {
	w.sep()
	w.b = AppendString(w.b, k)
	w.b = append(w.b, ':')
}

// String writes a string.
func (w *Writer) String(s string) { w.sep(); w.b = AppendString(w.b, s) }

// Int writes an integer.
func (w *Writer) Int(n int64) { w.sep(); w.b = strconv.AppendInt(w.b, n, 10) }

// Bool writes true or false.
func (w *Writer) Bool(v bool) { w.sep(); w.b = strconv.AppendBool(w.b, v) }

// Null writes null.
func (w *Writer) Null() { w.sep(); w.b = append(w.b, "null"...) }

// Float writes a float64 as encoding/json does; NaN and infinities are left out (see Err).
func (w *Writer) Float(f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		w.fail(errors.New("pdkjson: unsupported value: " + strconv.FormatFloat(f, 'g', -1, 64)))
		return
	}
	w.sep()
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	w.b = strconv.AppendFloat(w.b, f, format, -1, 64)
	if n := len(w.b); format == 'e' && n >= 4 && w.b[n-4] == 'e' && w.b[n-3] == '-' && w.b[n-2] == '0' {
		w.b[n-2] = w.b[n-1] // e-09 → e-9, as encoding/json writes it
		w.b = w.b[:n-1]
	}
}

// Raw writes a JSON value given as text, compacted and HTML-escaped as encoding/json.Marshal
// writes a json.RawMessage; a value that is not JSON is left out (see Err).
func (w *Writer) Raw(raw []byte) {
	var d Decoder
	d.Reset(raw)
	d.Skip()
	if err := d.End(); err != nil || len(raw) == 0 {
		if err == nil {
			err = errors.New("pdkjson: unexpected end of JSON input")
		}
		w.fail(err)
		return
	}
	w.sep()
	w.b = appendCompact(w.b, raw)
}

func (w *Writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// appendCompact appends valid JSON without insignificant white space, escaping <, >, &, U+2028
// and U+2029 as encoding/json's compact with HTML escaping does.
func appendCompact(b, raw []byte) []byte {
	start := 0
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case inString && c == '\\':
			i++ // the escaped byte is copied as is
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			b = append(b, raw[start:i]...)
			start = i + 1
		case c == '<' || c == '>' || c == '&':
			b = append(b, raw[start:i]...)
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			start = i + 1
		case c == 0xE2 && i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xA8:
			b = append(b, raw[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[raw[i+2]&0xf])
			i += 2
			start = i + 1
		}
	}
	return append(b, raw[start:]...)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped as encoding/json escapes it (including <, >
// and &, U+2028 and U+2029; invalid UTF-8 becomes U+FFFD).
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
