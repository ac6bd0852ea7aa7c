// Package pdkjson reads and writes JSON without reflection, for a connector's hot path.
//
// Inside a standard-Go WebAssembly module reflection-driven encoding/json runs 9–17× slower than
// natively, and decoding a tool's arguments and an API's answer and encoding the request and the
// result were most of a small tool call's own work. A [Decoder] walks an object's keys and reads
// strings, numbers, booleans and raw values in place; a [Writer] appends JSON to a byte slice.
// Neither uses reflection, and strings without escapes are read without allocating.
//
// What a Decoder reads is what encoding/json reads into the matching Go type, with three
// documented differences:
//
//   - Keys are matched by the caller, exactly: encoding/json also matches a struct field whose
//     name differs only in case ("Channel" for "channel"); a Decoder hands over the key as
//     written.
//   - A JSON null reads as the zero value (encoding/json leaves the field as it was: the same
//     unless a key repeats). Use [Decoder.Null] to tell null apart.
//   - A syntax error is found where it is, not before anything is read: what was read before it
//     must be discarded (the caller checks [Decoder.Err] or [Decoder.End] once at the end).
//
// Strings follow encoding/json exactly: escapes are decoded, a lone or broken UTF-16 surrogate
// escape and each byte of invalid UTF-8 become U+FFFD, a control character is a syntax error.
// Duplicate keys are handed over each time (assigning each, the last wins, as in encoding/json).
// A value of the wrong type (a number where a string is read) is skipped and recorded as a
// [*TypeError]; reading goes on, as encoding/json goes on after an [encoding/json.UnmarshalTypeError].
//
//	var d pdkjson.Decoder
//	d.Reset(pdk.InputBytes())
//	d.Object(func(key string) {
//		switch key {
//		case "channel":
//			args.Channel = d.String()
//		case "limit":
//			args.Limit = d.Int()
//		} // any other key's value is skipped
//	})
//	if err := d.End(); err != nil { … }
package pdkjson

import (
	"encoding/base64"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxDepth is encoding/json's bound on nesting; deeper input is a syntax error.
const maxDepth = 10000

// A Decoder reads one JSON value from a byte slice. The zero Decoder reads an empty input; call
// [Decoder.Reset] to give it data. Strings it returns may share memory with a copy of the input
// it makes once, so they stay valid after the input changes.
type Decoder struct {
	data    []byte
	s       string // data as a string: strings without escapes are cut from it, not copied
	i       int
	depth   int
	err     *SyntaxError
	typeErr *TypeError
}

// NewDecoder returns a Decoder reading data.
func NewDecoder(data []byte) *Decoder {
	d := new(Decoder)
	d.Reset(data)
	return d
}

// Reset makes d read data from the start, forgetting any error.
func (d *Decoder) Reset(data []byte) {
	*d = Decoder{data: data, s: string(data)}
}

// ResetString makes d read s from the start, forgetting any error. Strings it returns share
// memory with s: no copy is made.
func (d *Decoder) ResetString(s string) {
	*d = Decoder{data: unsafe.Slice(unsafe.StringData(s), len(s)), s: s}
}

// A SyntaxError is input that is not JSON.
type SyntaxError struct {
	Msg    string
	Offset int // the byte offset where the error was found
}

func (e *SyntaxError) Error() string {
	return "pdkjson: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// A TypeError is a JSON value of another type than the one read (or a number that does not fit).
type TypeError struct {
	Value  string // what the JSON holds: "string", "number 1.5", "object", …
	Want   string // what was read: "string", "int64", "bool", …
	Offset int
}

func (e *TypeError) Error() string {
	return "pdkjson: cannot read JSON " + e.Value + " as " + e.Want + " at offset " + strconv.Itoa(e.Offset)
}

// Err returns the first syntax error, or else the first type error, or nil.
func (d *Decoder) Err() error {
	if d.err != nil {
		return d.err
	}
	if d.typeErr != nil {
		return d.typeErr
	}
	return nil
}

// InputOffset is the offset in the input just after the last value read.
func (d *Decoder) InputOffset() int { return d.i }

// End checks that nothing but white space follows the value read, and returns [Decoder.Err].
func (d *Decoder) End() error {
	if d.peek(); d.err == nil && d.i < len(d.data) {
		d.syntax("invalid character " + quoteChar(d.data[d.i]) + " after top-level value")
	}
	return d.Err()
}

func (d *Decoder) syntax(msg string) {
	if d.err == nil {
		d.err = &SyntaxError{Msg: msg, Offset: d.i}
	}
	d.i = len(d.data) // stop everything
}

// mismatch records a type error for the value at d.i and skips it.
func (d *Decoder) mismatch(want string) {
	start := d.i
	value := kindNames[d.Kind()]
	d.Skip()
	if d.err != nil {
		return
	}
	if value == "number" {
		value += " " + d.s[start:d.i]
	}
	d.typeMismatch(value, want, start)
}

func (d *Decoder) typeMismatch(value, want string, at int) {
	if d.typeErr == nil && d.err == nil {
		d.typeErr = &TypeError{Value: value, Want: want, Offset: at}
	}
}

// Kind is the type of a JSON value.
type Kind int

// The kinds of JSON values; Invalid is the end of the input or a character no value starts with.
const (
	Invalid Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

var kindNames = [...]string{Invalid: "invalid value", Null: "null", Bool: "bool", Number: "number",
	String: "string", Array: "array", Object: "object"}

func (k Kind) String() string { return kindNames[k] }

// Kind reports the type of the next value without reading it.
func (d *Decoder) Kind() Kind {
	switch c := d.peek(); {
	case c == '{':
		return Object
	case c == '[':
		return Array
	case c == '"':
		return String
	case c == 't' || c == 'f':
		return Bool
	case c == 'n':
		return Null
	case c == '-' || '0' <= c && c <= '9':
		return Number
	}
	return Invalid
}

// peek skips white space and returns the next byte, or 0 at the end.
func (d *Decoder) peek() byte {
	for d.i < len(d.data) {
		switch c := d.data[d.i]; c {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return c
		}
	}
	return 0
}

// Null reads a null and reports true, or reports false and reads nothing.
func (d *Decoder) Null() bool {
	if d.peek() == 'n' {
		return d.literal("null")
	}
	return false
}

func (d *Decoder) literal(lit string) bool {
	if len(d.data)-d.i >= len(lit) && d.s[d.i:d.i+len(lit)] == lit {
		d.i += len(lit)
		return true
	}
	for j := 1; j < len(lit); j++ { // name the first wrong byte, as encoding/json does
		if d.i+j >= len(d.data) {
			d.i = len(d.data)
			d.syntax("unexpected end of JSON input")
			return false
		}
		if d.data[d.i+j] != lit[j] {
			d.i += j
			d.syntax("invalid character " + quoteChar(d.data[d.i]) + " in literal " + lit)
			return false
		}
	}
	return false
}

// Object reads an object, calling field with each member's key; field reads the member's value
// with one of the Decoder's methods (a value it does not read is skipped). Object reports
// whether it read an object: false for null (field is not called), for another type (skipped, a
// [*TypeError]) and on a syntax error.
func (d *Decoder) Object(field func(key string)) bool {
	return d.container('{', '}', "object", "after object key:value pair", func(int) bool {
		if d.peek() != '"' {
			d.expected("beginning of object key string")
			return false
		}
		key := d.str()
		if d.peek() != ':' {
			d.expected("after object key")
			return false
		}
		d.i++
		d.value(func() { field(key) })
		return true
	})
}

// Array reads an array, calling elem for each element with its index; elem reads the element
// (one it does not read is skipped). Array reports false for null, another type and on a syntax
// error, as Object does.
func (d *Decoder) Array(elem func(i int)) bool {
	return d.container('[', ']', "array", "after array element", func(n int) bool {
		d.value(func() { elem(n) })
		return true
	})
}

// container reads an object or array (want) between open and close, calling member for each
// member; after names what may follow a member, for the syntax error.
func (d *Decoder) container(open, close byte, want, after string, member func(n int) bool) bool {
	switch d.peek() {
	case open:
	case 'n':
		d.Null()
		return false
	default:
		d.mismatch(want)
		return false
	}
	if !d.enter() {
		return false
	}
	d.i++
	if d.peek() == close {
		d.i++
		d.depth--
		return true
	}
	for n := 0; ; n++ {
		if !member(n) {
			return false
		}
		switch d.peek() {
		case ',':
			d.i++
		case close:
			d.i++
			d.depth--
			return d.err == nil
		default:
			d.expected(after)
			return false
		}
	}
}

// value runs read for the value at d.i and skips the value if read did not consume it.
func (d *Decoder) value(read func()) {
	if d.Kind() == Invalid {
		d.expected("beginning of value")
		return
	}
	start := d.i
	read()
	if d.i == start && d.err == nil {
		d.Skip()
	}
}

func (d *Decoder) enter() bool {
	d.depth++
	if d.depth > maxDepth {
		d.syntax("exceeded max depth")
		return false
	}
	return true
}

func (d *Decoder) expected(what string) {
	if d.peek(); d.i == len(d.data) {
		d.syntax("unexpected end of JSON input")
		return
	}
	d.syntax("invalid character " + quoteChar(d.data[d.i]) + " " + what)
}

// String reads a string ("" for null).
func (d *Decoder) String() string {
	switch d.peek() {
	case '"':
		return d.str()
	case 'n':
		d.Null()
		return ""
	}
	d.mismatch("string")
	return ""
}

// Base64 reads a string of standard base64 and returns the bytes it encodes, as encoding/json
// reads a []byte (nil for null). Input that is not base64 is a [*TypeError].
func (d *Decoder) Base64() []byte {
	c := d.peek()
	start := d.i
	s := d.String()
	if s == "" {
		if c == '"' && d.err == nil {
			return []byte{}
		}
		return nil
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, unsafe.Slice(unsafe.StringData(s), len(s)))
	if err != nil {
		d.typeMismatch("string", "base64 []byte", start)
		return nil
	}
	return b[:n]
}

// Bool reads true or false (false for null).
func (d *Decoder) Bool() bool {
	switch d.peek() {
	case 't':
		return d.literal("true")
	case 'f':
		d.literal("false")
		return false
	case 'n':
		d.Null()
		return false
	}
	d.mismatch("bool")
	return false
}

// Int reads a number as an int64, as encoding/json reads one into an int64: a fraction, an
// exponent or a number out of range is a [*TypeError] (0 for null).
func (d *Decoder) Int() int64 {
	lit, ok := d.number("int64")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(lit, 10, 64)
	if err != nil {
		d.typeMismatch("number "+lit, "int64", d.i-len(lit))
		return 0
	}
	return n
}

// Float reads a number as a float64 (0 for null); one out of range is a [*TypeError].
func (d *Decoder) Float() float64 {
	lit, ok := d.number("float64")
	if !ok {
		return 0
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		d.typeMismatch("number "+lit, "float64", d.i-len(lit))
		return 0
	}
	return f
}

// Number reads a number and returns its text as written (like encoding/json.Number); "" for null.
func (d *Decoder) Number() string {
	lit, _ := d.number("number")
	return lit
}

// number reads a number literal; ok is false for null, another type or a syntax error.
func (d *Decoder) number(want string) (lit string, ok bool) {
	switch c := d.peek(); {
	case c == '-' || '0' <= c && c <= '9':
		start := d.i
		if !d.scanNumber() {
			return "", false
		}
		return d.s[start:d.i], true
	case c == 'n':
		d.Null()
		return "", false
	}
	d.mismatch(want)
	return "", false
}

// scanNumber reads a number by JSON's grammar.
func (d *Decoder) scanNumber() bool {
	b, i := d.data, d.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		d.i = i
		d.expected("in numeric literal")
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			d.i = i
			d.expected("after decimal point in numeric literal")
			return false
		}
		i = digits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			d.i = i
			d.expected("in exponent of numeric literal")
			return false
		}
		i = digits(b, i)
	}
	d.i = i
	return true
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// Raw reads any value and returns its JSON text as written (like encoding/json.RawMessage:
// "null" for null). It shares memory with the input.
func (d *Decoder) Raw() []byte {
	if d.Kind() == Invalid {
		d.expected("beginning of value")
		return nil
	}
	start := d.i
	d.Skip()
	if d.err != nil {
		return nil
	}
	return d.data[start:d.i:d.i]
}

// Skip reads any value and discards it.
func (d *Decoder) Skip() {
	switch d.Kind() {
	case Object:
		d.Object(func(string) {})
	case Array:
		d.Array(func(int) {})
	case String:
		d.skipString()
	case Number:
		d.scanNumber()
	case Bool:
		if d.data[d.i] == 't' {
			d.literal("true")
		} else {
			d.literal("false")
		}
	case Null:
		d.literal("null")
	default:
		d.expected("beginning of value")
	}
}

// skipString reads past a string without decoding it, checking what str checks.
func (d *Decoder) skipString() {
	for i := d.i + 1; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			d.i = i + 1
			return
		case c == '\\' || c < 0x20:
			d.str() // the slow path reports the error, if any
			return
		}
	}
	d.i = len(d.data)
	d.syntax("unexpected end of JSON input")
}

// str reads the string at d.i (which is '"'), as encoding/json unquotes it.
func (d *Decoder) str() string {
	start := d.i + 1
	i := start
	for i < len(d.data) {
		c := d.data[i]
		if c == '"' {
			d.i = i + 1
			return d.s[start:i]
		}
		if c == '\\' || c < 0x20 {
			break
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(d.data[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	buf := make([]byte, i-start, i-start+16)
	copy(buf, d.data[start:i])
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.i = i + 1
			return string(buf)
		case c < 0x20:
			d.i = i
			d.syntax("invalid character " + quoteChar(c) + " in string literal")
			return ""
		case c == '\\':
			i++
			if i >= len(d.data) {
				break
			}
			switch e := d.data[i]; e {
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
				r, ok := hex4(d.data, i+1)
				if !ok {
					d.i = min(i+1+hexPrefix(d.data, i+1), len(d.data))
					if d.i == len(d.data) {
						d.syntax("unexpected end of JSON input")
					} else {
						d.syntax("invalid character " + quoteChar(d.data[d.i]) + " in \\u hexadecimal character escape")
					}
					return ""
				}
				i += 4
				if utf16.IsSurrogate(r) {
					// encoding/json: a valid pair is one rune; anything else is U+FFFD and the
					// next escape, if any, is read on its own.
					r2 := rune(-1)
					if i+2 < len(d.data) && d.data[i+1] == '\\' && d.data[i+2] == 'u' {
						if v, ok := hex4(d.data, i+3); ok {
							r2 = v
						}
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				d.i = i
				d.syntax("invalid character " + quoteChar(e) + " in string escape code")
				return ""
			}
			i++
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, size := utf8.DecodeRune(d.data[i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, "\uFFFD"...)
			} else {
				buf = append(buf, d.data[i:i+size]...)
			}
			i += size
		}
	}
	d.i = len(d.data)
	d.syntax("unexpected end of JSON input")
	return ""
}

// hex4 reads four hexadecimal digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
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
	return r, true
}

// hexPrefix is the number of hexadecimal digits at b[i:] (at most 4).
func hexPrefix(b []byte, i int) int {
	n := 0
	for n < 4 && i+n < len(b) {
		if _, ok := hex4([]byte{'0', '0', '0', b[i+n]}, 0); !ok {
			break
		}
		n++
	}
	return n
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}
