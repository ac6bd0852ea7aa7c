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

// referenceDecode is the json.Decoder.Token-based DecodeJSON that the single-pass parser in
// decode.go replaced, kept verbatim (only renamed) so the differential test and
// FuzzDecodeJSONMatchesReference can check that the two agree on what they accept, the values
// they build and where and why they refuse. Its syntax error messages are encoding/json's, so the
// comparison assumes the default encoding/json (not GOEXPERIMENT=jsonv2).
func referenceDecode(data []byte, maxDepth int) (any, error) {
	if !utf8.Valid(data) {
		return nil, &DecodeError{Msg: "not valid UTF-8"}
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	dec := refDecoder{d: d, maxDepth: maxDepth}
	v, err := dec.value()
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, &DecodeError{Msg: "unexpected data after the top-level value"}
	}
	return v, nil
}

type refDecoder struct {
	d        *json.Decoder
	maxDepth int
	path     []string
}

func (dec *refDecoder) fail(msg string) error {
	return &DecodeError{Path: pointer(dec.path), Msg: msg}
}

func (dec *refDecoder) syntax(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return dec.fail("unexpected end of input")
	}
	return dec.fail(strings.TrimPrefix(err.Error(), "json: "))
}

func (dec *refDecoder) value() (any, error) {
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
