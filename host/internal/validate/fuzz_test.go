package validate

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzCompile checks that no schema crashes the compiler or the validator, and that errors have
// the documented types.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		channelSchema,
		`{"$ref": "#"}`,
		`{"$defs": {"a": {"$anchor": "x", "$ref": "#x"}}, "$ref": "#x"}`,
		`{"$dynamicRef": "#meta", "$dynamicAnchor": "meta"}`,
		`{"$schema": "http://json-schema.org/draft-07/schema#", "items": [{}], "additionalItems": false}`,
		`{"properties": {"a\u0000": {"pattern": "\\p{L}"}}}`,
		`{"$ref": "file:///etc/passwd"}`,
		`true`,
		`{"type": ["object", "null"], "description": "d"}`,
	} {
		f.Add(s, `{"a": [1, "x", null]}`)
	}
	f.Fuzz(func(t *testing.T, schema, value string) {
		s, err := Compile(json.RawMessage(schema), nil)
		if err != nil {
			var se *SchemaError
			if !errors.As(err, &se) {
				t.Fatalf("Compile error %T, want *SchemaError", err)
			}
			return
		}
		if err := s.ValidateJSON([]byte(value)); err != nil {
			var ve *Error
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("ValidateJSON error %T %v, want *Error with problems", err, err)
			}
			_ = err.Error()
		}
		// The types-only shortcut agrees with the validator.
		if v, err := DecodeJSON([]byte(value)); err == nil && (s.Validate(v) == nil) != (s.sch.Validate(v) == nil) {
			t.Fatalf("schema %s, value %s: Validate = %v, the validator says %v", schema, value, s.Validate(v), s.sch.Validate(v))
		}
	})
}

// FuzzDecodeJSONMatchesReference checks that decode agrees with the json.Decoder.Token walk it
// replaced (referenceDecode): on accepting or refusing, on the value, and on the path and message
// of a refusal. A small depth bound runs too, so the fuzzer reaches the depth check.
func FuzzDecodeJSONMatchesReference(f *testing.F) {
	for _, s := range decodeCorpus {
		f.Add([]byte(s))
	}
	f.Add([]byte(benchSmall))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkMatchesReference(t, data, MaxValueDepth)
		checkMatchesReference(t, data, 2)
	})
}
