package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
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

func decode(data []byte, maxDepth int) (any, error) {
	if !utf8.Valid(data) {
		return nil, &DecodeError{Msg: "not valid UTF-8"}
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	dec := decoder{d: d, maxDepth: maxDepth}
	v, err := dec.value()
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, &DecodeError{Msg: "unexpected data after the top-level value"}
	}
	return v, nil
}

type decoder struct {
	d        *json.Decoder
	maxDepth int
	path     []string
}

func (dec *decoder) fail(msg string) error {
	return &DecodeError{Path: pointer(dec.path), Msg: msg}
}

func (dec *decoder) syntax(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return dec.fail("unexpected end of input")
	}
	return dec.fail(strings.TrimPrefix(err.Error(), "json: "))
}

func (dec *decoder) value() (any, error) {
	tok, err := dec.d.Token()
	if err != nil {
		return nil, dec.syntax(err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // nil, bool, json.Number or string
	}
	if len(dec.path) >= dec.maxDepth {
		return nil, dec.fail(fmt.Sprintf("nested deeper than %d levels", dec.maxDepth))
	}
	switch delim {
	case '{':
		obj := map[string]any{}
		for dec.d.More() {
			tok, err := dec.d.Token()
			if err != nil {
				return nil, dec.syntax(err)
			}
			key, ok := tok.(string)
			if !ok {
				return nil, dec.fail("object key is not a string")
			}
			dec.path = append(dec.path, key)
			if _, dup := obj[key]; dup {
				return nil, dec.fail(fmt.Sprintf("duplicate key %q", key))
			}
			v, err := dec.value()
			if err != nil {
				return nil, err
			}
			obj[key] = v
			dec.path = dec.path[:len(dec.path)-1]
		}
		if _, err := dec.d.Token(); err != nil {
			return nil, dec.syntax(err)
		}
		return obj, nil
	case '[':
		arr := []any{}
		for i := 0; dec.d.More(); i++ {
			dec.path = append(dec.path, fmt.Sprint(i))
			v, err := dec.value()
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
			dec.path = dec.path[:len(dec.path)-1]
		}
		if _, err := dec.d.Token(); err != nil {
			return nil, dec.syntax(err)
		}
		return arr, nil
	}
	return nil, dec.fail(fmt.Sprintf("unexpected %q", delim))
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
