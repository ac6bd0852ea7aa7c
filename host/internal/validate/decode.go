package validate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxValueDepth bounds the nesting of objects and arrays [DecodeJSON] accepts.
const MaxValueDepth = 256

// DecodeError reports JSON that [DecodeJSON] refuses: a syntax error, invalid UTF-8, a duplicate
// key, nesting deeper than [MaxValueDepth] or data after the value.
type DecodeError struct {
	// Path is the JSON pointer of the offending value ("" for the whole document).
	Path string
	// Msg says what is wrong, without a "json:" prefix.
	Msg string
}

func (e *DecodeError) Error() string {
	if e.Path == "" {
		return "invalid JSON: " + e.Msg
	}
	return "invalid JSON at " + e.Path + ": " + e.Msg
}

// DecodeJSON decodes one JSON value into the types the validator expects: nil, bool,
// json.Number, string, []any and map[string]any. Numbers keep their precision (json.Number, as
// jsonschema.UnmarshalJSON does).
//
// It is stricter than encoding/json: it refuses invalid UTF-8 (encoding/json would silently
// replace it), duplicate object keys (the validator and the plugin could otherwise disagree on
// which one counts), nesting deeper than [MaxValueDepth] and anything after the value. Errors are
// *[DecodeError].
func DecodeJSON(data []byte) (any, error) {
	return decode(data, MaxValueDepth)
}

// decode is DecodeJSON with a chosen depth bound ([Compile] uses its own).
//
// It is a single-pass recursive-descent parser over data. It runs twice on every tool call
// (arguments and plugin output), so it builds the values directly, allocates only for what it
// returns, and works out the JSON pointer of a problem only when it refuses the input. Its errors
// (paths and messages) are those of the json.Decoder.Token walk it replaced, which
// TestDecodeMatchesReference and FuzzDecodeJSONMatchesReference check against a copy of that
// walk; syntax errors are worded as encoding/json's scanner words them.
func decode(data []byte, maxDepth int) (any, error) {
	// Checking the whole input first refuses invalid UTF-8 wherever it is (and before any syntax
	// error), and lets the string parser copy multi-byte sequences without decoding them.
	if !utf8.Valid(data) {
		return nil, &DecodeError{Msg: "not valid UTF-8"}
	}
	p := parser{data: data, maxDepth: maxDepth}
	v, r := p.value(0)
	if r != nil {
		return nil, r.decodeError()
	}
	p.skipSpace()
	if p.pos < len(p.data) {
		return nil, &DecodeError{Msg: "unexpected data after the top-level value"}
	}
	return v, nil
}

// parser holds the state of one decode call. It is not safe for concurrent use; decode makes a
// new one per call.
type parser struct {
	data     []byte
	pos      int // offset of the next unread byte
	maxDepth int
	scratch  []byte // reused buffer for strings with escapes
}

// A refusal says why the input is refused, on its way up from where the problem was found to
// decode. The parser keeps no path while it works: each object or array a refusal passes
// through adds the step to its member (key or index), so the path costs nothing unless the input
// is refused. A refusal is not an error value, so a nil *refusal never becomes a non-nil error.
type refusal struct {
	msg   string
	steps []step // from the problem up to the document: innermost first
}

// step is one step of a JSON pointer: an object key, or an array index when index >= 0.
type step struct {
	key   string
	index int
}

// refuse returns a refusal at the value being parsed; callers up the stack add the path.
func refuse(msg string) *refusal {
	return &refusal{msg: msg}
}

// refuseChar refuses an unexpected byte c, worded as encoding/json's scanner words it, e.g.
// "invalid character 'x' after array element".
func refuseChar(c byte, context string) *refusal {
	return refuse("invalid character " + quoteChar(c) + " " + context)
}

// refuseEOF refuses input that ends before the value does.
func refuseEOF() *refusal {
	return refuse("unexpected end of input")
}

// inKey says the problem is in (or is) the member key of an object.
func (r *refusal) inKey(key string) *refusal {
	r.steps = append(r.steps, step{key: key, index: -1})
	return r
}

// inIndex says the problem is in (or is) element i of an array.
func (r *refusal) inIndex(i int) *refusal {
	r.steps = append(r.steps, step{index: i})
	return r
}

// decodeError returns r as a *DecodeError with the JSON pointer of the problem.
func (r *refusal) decodeError() *DecodeError {
	tokens := make([]string, len(r.steps))
	for i, s := range r.steps {
		t := s.key
		if s.index >= 0 {
			t = strconv.Itoa(s.index)
		}
		tokens[len(tokens)-1-i] = t
	}
	return &DecodeError{Path: pointer(tokens), Msg: r.msg}
}

// quoteChar formats c as a quoted character literal, as encoding/json does in its syntax errors
// (a byte of 0x80 or more is shown as the rune of the same value, as there).
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// skipSpace advances past JSON white space (space, tab, CR, LF).
func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value parses a value, after optional white space, inside depth objects and arrays.
func (p *parser) value(depth int) (any, *refusal) {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, refuseEOF()
	}
	switch c := p.data[p.pos]; c {
	case '{', '[':
		if depth >= p.maxDepth {
			return nil, refuse(fmt.Sprintf("nested deeper than %d levels", p.maxDepth))
		}
		if c == '{' {
			return p.object(depth + 1)
		}
		return p.array(depth + 1)
	case '"':
		s, r := p.string()
		if r != nil {
			return nil, r
		}
		return s, nil
	case 't':
		return true, p.literal("true")
	case 'f':
		return false, p.literal("false")
	case 'n':
		return nil, p.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return p.number()
		}
		return nil, refuseChar(c, "looking for beginning of value")
	}
}

// object parses an object whose members are at depth; p.pos is at its '{'.
func (p *parser) object(depth int) (any, *refusal) {
	p.pos++
	obj := map[string]any{}
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, refuseEOF()
	}
	if p.data[p.pos] == '}' {
		p.pos++
		return obj, nil
	}
	for {
		// A key, at p.pos after white space: at the start or after a comma.
		if c := p.data[p.pos]; c != '"' {
			return nil, refuseChar(c, "looking for beginning of object key string")
		}
		key, r := p.string()
		if r != nil {
			return nil, r
		}
		// Refuse a duplicate before looking at its value, so the error names the key.
		if _, dup := obj[key]; dup {
			return nil, refuse(fmt.Sprintf("duplicate key %q", key)).inKey(key)
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, refuseEOF().inKey(key)
		}
		if c := p.data[p.pos]; c != ':' {
			return nil, refuseChar(c, "after object key").inKey(key)
		}
		p.pos++
		v, r := p.value(depth)
		if r != nil {
			return nil, r.inKey(key)
		}
		obj[key] = v

		// A comma and the next key, or the end of the object.
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, refuseEOF()
		}
		switch c := p.data[p.pos]; c {
		case ',':
			p.pos++
			p.skipSpace()
			if p.pos >= len(p.data) {
				return nil, refuseEOF()
			}
		case '}':
			p.pos++
			return obj, nil
		default:
			return nil, refuseChar(c, "after object key:value pair")
		}
	}
}

// array parses an array whose elements are at depth; p.pos is at its '['.
func (p *parser) array(depth int) (any, *refusal) {
	p.pos++
	arr := []any{}
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, refuseEOF()
	}
	switch c := p.data[p.pos]; c {
	case ']':
		p.pos++
		return arr, nil
	case '}':
		// Refused at the array rather than at its first element, as the Token walk did.
		return nil, refuseChar(c, "looking for beginning of value")
	}
	for {
		v, r := p.value(depth)
		if r != nil {
			return nil, r.inIndex(len(arr))
		}
		arr = append(arr, v)

		// A comma and the next element, or the end of the array.
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, refuseEOF()
		}
		switch c := p.data[p.pos]; c {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return arr, nil
		case '}':
			return nil, refuseChar(c, "after array element")
		default:
			// Refused at the element that would come next, as the Token walk did.
			return nil, refuseChar(c, "after array element").inIndex(len(arr))
		}
	}
}

// literal parses true, false or null (word); p.pos is at its first byte, which matched.
func (p *parser) literal(word string) *refusal {
	for i := 1; i < len(word); i++ {
		if p.pos+i >= len(p.data) {
			return refuseEOF()
		}
		if c := p.data[p.pos+i]; c != word[i] {
			return refuseChar(c, "in literal "+word+" (expecting "+quoteChar(word[i])+")")
		}
	}
	p.pos += len(word)
	return nil
}

// number parses a number as a json.Number holding its text; p.pos is at its '-' or first digit.
// The number ends at the first byte that cannot continue it (the caller checks what follows), so
// "01" is the number 0 followed by an unexpected '1', as in encoding/json.
func (p *parser) number() (any, *refusal) {
	data, start := p.data, p.pos
	i := start
	if data[i] == '-' {
		i++
	}
	// Integer part: 0, or a non-zero digit and more digits.
	switch {
	case i >= len(data):
		return nil, refuseEOF()
	case data[i] == '0':
		i++
	case '1' <= data[i] && data[i] <= '9':
		i = skipDigits(data, i+1)
	default:
		return nil, refuseChar(data[i], "in numeric literal")
	}
	// Fraction: a point and at least one digit.
	if i < len(data) && data[i] == '.' {
		i++
		j := skipDigits(data, i)
		if j == i {
			if i >= len(data) {
				return nil, refuseEOF()
			}
			return nil, refuseChar(data[i], "after decimal point in numeric literal")
		}
		i = j
	}
	// Exponent: e or E, an optional sign and at least one digit.
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := skipDigits(data, i)
		if j == i {
			if i >= len(data) {
				return nil, refuseEOF()
			}
			return nil, refuseChar(data[i], "in exponent of numeric literal")
		}
		i = j
	}
	p.pos = i
	return json.Number(data[start:i]), nil
}

// skipDigits returns the offset of the first byte at or after i that is not a decimal digit.
func skipDigits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
}

// string parses a string; p.pos is at its opening quote. It decodes escapes as encoding/json
// does, including its handling of UTF-16 surrogates: a valid \uD8xx\uDCxx pair is one rune, and
// any other surrogate escape becomes U+FFFD (the escape after it is then decoded on its own).
func (p *parser) string() (string, *refusal) {
	data := p.data
	start := p.pos + 1
	// Fast path: no escapes, so the value is the bytes between the quotes (valid UTF-8, as decode
	// checked the whole input).
	i := start
	for ; i < len(data); i++ {
		c := data[i]
		if c == '"' {
			p.pos = i + 1
			return string(data[start:i]), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", refuseChar(c, "in string literal")
		}
	}

	// Slow path: copy into p.scratch, decoding escapes.
	buf := append(p.scratch[:0], data[start:i]...)
	for {
		// Copy the run of plain bytes up to the next quote, backslash or control character.
		j := i
		for j < len(data) && data[j] != '"' && data[j] != '\\' && data[j] >= 0x20 {
			j++
		}
		buf = append(buf, data[i:j]...)
		i = j
		if i >= len(data) {
			return "", refuseEOF()
		}
		if c := data[i]; c == '"' {
			p.pos = i + 1
			p.scratch = buf
			return string(buf), nil
		} else if c < 0x20 {
			return "", refuseChar(c, "in string literal")
		}
		// An escape: data[i] is the backslash.
		i++
		if i >= len(data) {
			return "", refuseEOF()
		}
		switch e := data[i]; e {
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
			r := hex4(data[i+1:])
			if r < 0 {
				return "", p.refuseHex(i + 1)
			}
			i += 4
			if utf16.IsSurrogate(r) {
				// Combine with a following \uXXXX if the two make a pair; otherwise the
				// surrogate becomes U+FFFD and what follows is decoded on its own (and refused
				// there if it is not a valid escape).
				r2 := rune(-1)
				if i+2 < len(data) && data[i+1] == '\\' && data[i+2] == 'u' {
					r2 = hex4(data[i+3:])
				}
				if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
					r = pair
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", refuseChar(e, "in string escape code")
		}
		i++ // past the last byte of the escape
	}
}

// hex4 decodes the four hex digits at the start of b, or returns -1 if there are not four.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// refuseHex refuses the \u escape whose digits start at data[i] and that hex4 refused.
func (p *parser) refuseHex(i int) *refusal {
	for j := i; j < i+4 && j < len(p.data); j++ {
		if c := p.data[j]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return refuseChar(c, `in \u hexadecimal character escape`)
		}
	}
	return refuseEOF()
}

// pointer returns the JSON pointer (RFC 6901) of tokens.
func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		sb.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return sb.String()
}

// unescape turns one JSON pointer token back into a key.
func unescape(tok string) string {
	tok = strings.ReplaceAll(tok, "~1", "/")
	return strings.ReplaceAll(tok, "~0", "~")
}

// splitPointer splits a JSON pointer into unescaped tokens.
func splitPointer(ptr string) []string {
	if ptr == "" {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	for i, p := range parts {
		parts[i] = unescape(p)
	}
	return parts
}
