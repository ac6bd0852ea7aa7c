package abi

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Hand-written codecs for the airlock_http envelopes ([HTTPRequest], [HTTPResponse]), used by the
// PDK (encode the request, decode the response) and the host (the other two).
//
// They write and read the same JSON as encoding/json, without reflection: inside a standard-Go
// WebAssembly module reflection-driven encoding/json runs ~10× slower than natively and was the
// largest part of a small tool call's own work. The wire format does not change. The decoders
// are fast paths: anything they are not certain to read exactly as encoding/json would (a key
// that differs from a field's only in case, a duplicate key, invalid UTF-8, escapes they do not
// handle, a number that is not a plain integer) makes them report false, and the caller falls
// back to json.Unmarshal (DecodeHTTPRequest and DecodeHTTPResponse do so themselves).

// AppendHTTPRequest appends req as JSON, the same object encoding/json writes (fields in
// declaration order, omitempty honoured, header names sorted, body in standard base64).
func AppendHTTPRequest(b []byte, req *HTTPRequest) []byte {
	b = append(b, `{"method":`...)
	b = appendJSONString(b, req.Method)
	b = append(b, `,"url":`...)
	b = appendJSONString(b, req.URL)
	if len(req.Headers) > 0 {
		b = append(b, `,"headers":`...)
		b = appendHeaders(b, req.Headers)
	}
	if len(req.Body) > 0 {
		b = append(b, `,"body":"`...)
		b = base64.StdEncoding.AppendEncode(b, req.Body)
		b = append(b, '"')
	}
	if req.Credential != "" {
		b = append(b, `,"credential":`...)
		b = appendJSONString(b, req.Credential)
	}
	if req.IdempotencyKey != "" {
		b = append(b, `,"idempotency_key":`...)
		b = appendJSONString(b, req.IdempotencyKey)
	}
	if req.TimeoutMS != 0 {
		b = append(b, `,"timeout_ms":`...)
		b = strconv.AppendInt(b, req.TimeoutMS, 10)
	}
	return append(b, '}')
}

// appendHeaders appends a header map as encoding/json does (names sorted).
func appendHeaders(b []byte, h map[string][]string) []byte {
	b = append(b, '{')
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		vs := h[k]
		if vs == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '[')
		for j, v := range vs {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, v)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// AppendHTTPResponse appends resp as JSON, the same object encoding/json writes.
func AppendHTTPResponse(b []byte, resp *HTTPResponse) []byte {
	b = append(b, '{')
	n := len(b)
	sep := func() {
		if len(b) > n {
			b = append(b, ',')
		}
	}
	if resp.Status != 0 {
		b = append(b, `"status":`...)
		b = strconv.AppendInt(b, int64(resp.Status), 10)
	}
	if len(resp.Headers) > 0 {
		sep()
		b = append(b, `"headers":`...)
		b = appendHeaders(b, resp.Headers)
	}
	if len(resp.Body) > 0 {
		sep()
		b = append(b, `"body":"`...)
		b = base64.StdEncoding.AppendEncode(b, resp.Body)
		b = append(b, '"')
	}
	if e := resp.Error; e != nil {
		sep()
		b = append(b, `"error":{"code":`...)
		b = appendJSONString(b, e.Code)
		b = append(b, `,"category":`...)
		b = appendJSONString(b, string(e.Category))
		b = append(b, `,"message":`...)
		b = appendJSONString(b, e.Message)
		if e.RetryAfterMS != 0 {
			b = append(b, `,"retry_after_ms":`...)
			b = strconv.AppendInt(b, e.RetryAfterMS, 10)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// DecodeHTTPRequest reads an HTTPRequest envelope into *req, as json.Unmarshal into a zero
// HTTPRequest would (and with its error when the data is not a valid envelope).
func DecodeHTTPRequest(data []byte, req *HTTPRequest) error {
	if fastHTTPRequest(data, req) {
		return nil
	}
	*req = HTTPRequest{}
	return json.Unmarshal(data, req)
}

var requestKeys = [...]string{"method", "url", "headers", "body", "credential", "idempotency_key", "timeout_ms"}

func fastHTTPRequest(data []byte, req *HTTPRequest) bool {
	d := jsonReader{b: data, s: string(data)}
	var r HTTPRequest
	ok := d.object(requestKeys[:], func(i int) (ok bool) {
		switch i {
		case 0:
			r.Method, ok = d.string()
		case 1:
			r.URL, ok = d.string()
		case 2:
			r.Headers, ok = d.headers()
		case 3:
			r.Body, ok = d.base64()
		case 4:
			r.Credential, ok = d.string()
		case 5:
			r.IdempotencyKey, ok = d.string()
		case 6:
			r.TimeoutMS, ok = d.int()
		}
		return ok
	})
	if !ok || !d.end() {
		return false
	}
	*req = r
	return true
}

// object reads a JSON object whose fields are keys, calling field(i) to read the value of
// keys[i] (a null leaves the field as it is). Unknown keys are skipped. A key that matches one of
// keys only ignoring case, or a repeated key, makes it give up: encoding/json resolves those in
// ways the fast path does not copy.
func (d *jsonReader) object(keys []string, field func(i int) bool) bool {
	var seen uint64 // bit i: keys[i] was read
	more, ok := d.open('{', '}')
	for ; ok && more; more, ok = d.more('}') {
		key, ok := d.key()
		if !ok {
			return false
		}
		i := slices.Index(keys, key)
		if i < 0 {
			if foldIndex(keys, key) >= 0 || !d.skip() {
				return false
			}
			continue
		}
		if seen&(1<<i) != 0 {
			return false
		}
		seen |= 1 << i
		if d.null() {
			continue
		}
		if !field(i) {
			return false
		}
	}
	return ok
}

// base64 reads a standard base64 string without escapes, as encoding/json reads a []byte.
func (d *jsonReader) base64() ([]byte, bool) {
	s, ok := d.stringBytes()
	if !ok {
		return nil, false
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, s)
	return b[:n], err == nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaped as encoding/json escapes it (including
// <, > and &, U+2028 and U+2029; invalid UTF-8 becomes U+FFFD).
func appendJSONString(b []byte, s string) []byte {
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

// DecodeHTTPResponse reads an HTTPResponse envelope into *resp, as json.Unmarshal into a zero
// HTTPResponse would (and with its error when the data is not a valid envelope).
func DecodeHTTPResponse(data []byte, resp *HTTPResponse) error {
	if fastHTTPResponse(data, resp) {
		return nil
	}
	*resp = HTTPResponse{}
	return json.Unmarshal(data, resp)
}

// fastHTTPResponse is the fast path of DecodeHTTPResponse; false means "use json.Unmarshal".
func fastHTTPResponse(data []byte, resp *HTTPResponse) bool {
	d := jsonReader{b: data, s: string(data)}
	var r HTTPResponse
	ok := d.object(responseKeys[:], func(i int) (ok bool) {
		switch i {
		case 0:
			var n int64
			n, ok = d.int()
			r.Status = int(n)
		case 1:
			r.Headers, ok = d.headers()
		case 2:
			r.Body, ok = d.base64()
		case 3:
			r.Error = new(Error)
			ok = d.errorObject(r.Error)
		}
		return ok
	})
	if !ok || !d.end() {
		return false
	}
	*resp = r
	return true
}

var (
	responseKeys = [...]string{"status", "headers", "body", "error"}
	errorKeys    = [...]string{"code", "category", "message", "retry_after_ms"}
)

func foldIndex(keys []string, key string) int {
	for i, k := range keys {
		if equalFoldASCII(k, key) {
			return i
		}
	}
	return -1
}

// headers reads an object of string arrays (or nulls).
func (d *jsonReader) headers() (map[string][]string, bool) {
	h := make(map[string][]string)
	pool := make([]string, 0, 8) // the values of every header share one array
	more, ok := d.open('{', '}')
	for ; ok && more; more, ok = d.more('}') {
		name, ok := d.key()
		if !ok {
			return nil, false
		}
		if _, dup := h[name]; dup {
			return nil, false
		}
		if d.null() {
			h[name] = nil
			continue
		}
		first := len(pool)
		more, ok := d.open('[', ']')
		for ; ok && more; more, ok = d.more(']') {
			v, ok := d.string()
			if !ok {
				return nil, false
			}
			pool = append(pool, v)
		}
		if !ok {
			return nil, false
		}
		h[name] = pool[first:len(pool):len(pool)]
	}
	return h, ok
}

func (d *jsonReader) errorObject(e *Error) bool {
	return d.object(errorKeys[:], func(i int) (ok bool) {
		var s string
		switch i {
		case 0:
			s, ok = d.string()
			e.Code = s
		case 1:
			s, ok = d.string()
			e.Category = Category(s)
		case 2:
			s, ok = d.string()
			e.Message = s
		case 3:
			e.RetryAfterMS, ok = d.int()
		}
		return ok
	})
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// jsonReader is a minimal JSON reader for the envelopes. Every method reports false on input it
// does not handle, and the reader is then abandoned.
type jsonReader struct {
	b []byte
	s string // b as a string, when set: strings without escapes are cut from it, not copied
	i int
}

func (d *jsonReader) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonReader) end() bool {
	d.ws()
	return d.i == len(d.b)
}

func (d *jsonReader) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *jsonReader) lit(s string) bool {
	d.ws()
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

func (d *jsonReader) null() bool { return d.lit("null") }

// open consumes the opening bracket c and reports whether the container has an element.
func (d *jsonReader) open(c, close byte) (more, ok bool) {
	if d.peek() != c {
		return false, false
	}
	d.i++
	if d.peek() == close {
		d.i++
		return false, true
	}
	return true, true
}

// more consumes what follows an element: a comma (more is true) or the closing bracket.
func (d *jsonReader) more(close byte) (more, ok bool) {
	switch d.peek() {
	case ',':
		d.i++
		return true, true
	case close:
		d.i++
		return false, true
	}
	return false, false
}

// key reads an object key and its colon.
func (d *jsonReader) key() (string, bool) {
	k, ok := d.string()
	if !ok || d.peek() != ':' {
		return "", false
	}
	d.i++
	return k, true
}

// int reads an integer without fraction or exponent (what encoding/json accepts for an int).
func (d *jsonReader) int() (int64, bool) {
	d.ws()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i == digits || (d.b[digits] == '0' && d.i-digits > 1) {
		return 0, false
	}
	if d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	return n, err == nil
}

// stringBytes reads a string without escapes and returns its bytes (aliasing the input).
func (d *jsonReader) stringBytes() ([]byte, bool) {
	if d.peek() != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// string reads a string, unescaping it; invalid UTF-8 makes it give up (encoding/json would
// replace it, which the fallback does).
func (d *jsonReader) string() (string, bool) {
	if d.peek() != '"' {
		return "", false
	}
	d.i++
	start := d.i
	ascii := true
	for ; d.i < len(d.b); d.i++ {
		c := d.b[d.i]
		if c == '"' {
			s := d.b[start:d.i]
			d.i++
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			if d.s != "" {
				return d.s[start : d.i-1], true
			}
			return string(s), true
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	// Escapes: decode the rest into a buffer.
	buf := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(buf) {
				return "", false
			}
			return string(buf), true
		case c < 0x20:
			return "", false
		case c != '\\':
			buf = append(buf, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			return "", false
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				// A pair; a lone surrogate is U+FFFD in encoding/json: leave that to it.
				if !d.lit2(`\u`) {
					return "", false
				}
				r2, ok := d.hex4()
				if !ok {
					return "", false
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return "", false
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", false
		}
	}
	return "", false
}

// lit2 matches s at the current position, without skipping white space.
func (d *jsonReader) lit2(s string) bool {
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

func (d *jsonReader) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// maxSkipDepth bounds the nesting of an unknown value the fast path skips. The host decodes
// envelopes a plugin wrote: a hostile one must not make it recurse a million levels deep. Deeper
// values go to encoding/json, which has its own bound.
const maxSkipDepth = 32

// skip consumes any JSON value. Numbers are checked loosely; the fallback is never needed for a
// value the fast path skips, since encoding/json ignores unknown fields too, but a malformed one
// still makes the whole envelope go to json.Unmarshal (which reports the error).
func (d *jsonReader) skip() bool { return d.skipDepth(0) }

func (d *jsonReader) skipDepth(depth int) bool {
	switch c := d.peek(); {
	case (c == '{' || c == '[') && depth >= maxSkipDepth:
		return false
	case c == '{':
		more, ok := d.open('{', '}')
		for ; ok && more; more, ok = d.more('}') {
			if _, ok := d.key(); !ok || !d.skipDepth(depth+1) {
				return false
			}
		}
		return ok
	case c == '[':
		more, ok := d.open('[', ']')
		for ; ok && more; more, ok = d.more(']') {
			if !d.skipDepth(depth + 1) {
				return false
			}
		}
		return ok
	case c == '"':
		_, ok := d.string()
		return ok
	case c == 't':
		return d.lit("true")
	case c == 'f':
		return d.lit("false")
	case c == 'n':
		return d.null()
	case c == '-' || ('0' <= c && c <= '9'):
		start := d.i
		for d.i < len(d.b) && bytesIndexNum(d.b[d.i]) {
			d.i++
		}
		return json.Valid(d.b[start:d.i])
	}
	return false
}

func bytesIndexNum(c byte) bool {
	return '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}
