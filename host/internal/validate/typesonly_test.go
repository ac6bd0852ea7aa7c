package validate

import (
	"encoding/json"
	"testing"
)

// A schema that only names types is checked without the validator; every value must get the
// answer the validator gives, and a schema that says anything more must still go through it.
func TestTypesOnlyMatchesValidator(t *testing.T) {
	schemas := []string{`true`, `false`, `{}`, `{"type": "object"}`, `{"type": ["string", "null"]}`,
		`{"type": "number", "description": "a count", "title": "n", "$comment": "c"}`, `{"type": "integer"}`,
		`{"type": ["integer", "string"]}`, `{"type": "array"}`, `{"type": "boolean"}`,
		`{"type": "object", "required": ["a"]}`, `{"type": "object", "additionalProperties": false}`,
		`{"type": "string", "maxLength": 2}`, `{"not": {}}`, `{"type": "object", "properties": {"a": {"type": "string"}}}`,
		`{"enum": [1]}`, `{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}`}
	values := []string{`{}`, `{"a": 1}`, `{"a": "x"}`, `[]`, `[1, "x"]`, `"abc"`, `""`, `1`, `1.0`, `1.5`, `-0`,
		`1e400`, `true`, `false`, `null`}
	for _, schema := range schemas {
		s, err := Compile(json.RawMessage(schema), nil)
		if err != nil {
			t.Fatalf("Compile(%s): %v", schema, err)
		}
		for _, value := range values {
			v, err := DecodeJSON([]byte(value))
			if err != nil {
				t.Fatalf("DecodeJSON(%s): %v", value, err)
			}
			got, want := s.Validate(v) == nil, s.sch.Validate(v) == nil
			if got != want {
				t.Errorf("schema %s, value %s: valid = %v, the validator says %v", schema, value, got, want)
			}
		}
	}
	for schema, want := range map[string]uint8{`{}`: typeAny, `{"type": "object"}`: typeObject,
		`{"type": "object", "required": ["a"]}`: 0, `{"type": "integer"}`: 0, `false`: 0, `{"minimum": 1}`: 0} {
		s, err := Compile(json.RawMessage(schema), nil)
		if err != nil {
			t.Fatalf("Compile(%s): %v", schema, err)
		}
		if s.types != want {
			t.Errorf("Compile(%s).types = %b, want %b", schema, s.types, want)
		}
	}
}

// TestEmptyObjectArguments: "{}" (the arguments of a call without parameters) is accepted
// without decoding only where the schema accepts any object; other schemas still judge it.
func TestEmptyObjectArguments(t *testing.T) {
	for schema, ok := range map[string]bool{
		`{"type": "object"}`: true, `{}`: true, `true`: true,
		`{"type": "array"}`: false, `{"type": "object", "required": ["q"]}`: false,
		`{"type": "object", "minProperties": 1}`: false,
	} {
		s, err := Compile(json.RawMessage(schema), nil)
		if err != nil {
			t.Fatalf("Compile(%s): %v", schema, err)
		}
		for _, args := range []string{"{}", " \n{}\t", "{ }"} {
			if err := s.ValidateJSON([]byte(args)); (err == nil) != ok {
				t.Errorf("%s against %s: %v, want accepted %v", args, schema, err, ok)
			}
		}
	}
}
