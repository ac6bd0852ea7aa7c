package validate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustCompile(t testing.TB, schema string) *Schema {
	t.Helper()
	s, err := Compile(json.RawMessage(schema), nil)
	if err != nil {
		t.Fatalf("Compile(%s) = %v", schema, err)
	}
	return s
}

const channelSchema = `{
	"type": "object",
	"required": ["channel"],
	"properties": {
		"channel": {"type": "string", "minLength": 2, "maxLength": 80, "pattern": "^[CG][A-Z0-9]+$"},
		"limit": {"type": "integer", "minimum": 1, "maximum": 200},
		"ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "multipleOf": 0.25},
		"mode": {"enum": ["fast", "slow"]},
		"kind": {"const": "message"},
		"tags": {"type": "array", "minItems": 1, "maxItems": 3, "uniqueItems": true, "items": {"type": "string"}},
		"when": {"type": "string", "format": "date-time"},
		"email": {"type": "string", "format": "email"},
		"id": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
		"blocks": {"type": "array", "items": {
			"type": "object",
			"required": ["type"],
			"properties": {"type": {"enum": ["section", "divider"]}, "text": {"type": "string"}},
			"additionalProperties": false
		}},
		"meta": {"type": "object", "minProperties": 1, "maxProperties": 2},
		"secret": false,
		"target": {"oneOf": [
			{"type": "object", "required": ["user"], "properties": {"user": {"type": "string"}}, "additionalProperties": false},
			{"type": "object", "required": ["channel"], "properties": {"channel": {"type": "string", "minLength": 3}}, "additionalProperties": false}
		]}
	},
	"dependentRequired": {"thread": ["channel"]},
	"additionalProperties": false
}`

func TestMessages(t *testing.T) {
	s := mustCompile(t, channelSchema)
	tests := []struct {
		name, in string
		want     []Problem
	}{
		{"valid", `{"channel": "C123", "limit": 5}`, nil},
		{"required", `{}`, []Problem{{"/channel", `"channel" is required`}}},
		{"type", `{"channel": 5}`, []Problem{{"/channel", `"channel" must be a string (got a number)`}}},
		{"type integer", `{"channel": "C1", "limit": 2.5}`, []Problem{{"/limit", `"limit" must be an integer (got a number)`}}},
		{"root type", `[]`, []Problem{{"", `the value must be an object (got an array)`}}},
		{"maximum", `{"channel": "C1", "limit": 500}`, []Problem{{"/limit", `"limit" must be at most 200 (got 500)`}}},
		{"minimum", `{"channel": "C1", "limit": 0}`, []Problem{{"/limit", `"limit" must be at least 1 (got 0)`}}},
		{"exclusive max", `{"channel": "C1", "ratio": 1}`, []Problem{{"/ratio", `"ratio" must be less than 1 (got 1)`}}},
		{"exclusive min", `{"channel": "C1", "ratio": 0}`, []Problem{{"/ratio", `"ratio" must be greater than 0 (got 0)`}}},
		{"multipleOf", `{"channel": "C1", "ratio": 0.3}`, []Problem{{"/ratio", `"ratio" must be a multiple of 0.25 (got 0.3)`}}},
		{"enum", `{"channel": "C1", "mode": "medium"}`, []Problem{{"/mode", `"mode" must be one of "fast", "slow" (got "medium")`}}},
		{"const", `{"channel": "C1", "kind": "file"}`, []Problem{{"/kind", `"kind" must be "message" (got "file")`}}},
		{"minLength", `{"channel": "C"}`, []Problem{
			{"/channel", `"channel" must be at least 2 characters long (got 1)`},
			{"/channel", `"channel" must match the pattern ^[CG][A-Z0-9]+$ (got "C")`},
		}},
		{"maxLength", `{"channel": "C` + strings.Repeat("A", 80) + `"}`, []Problem{{"/channel", `"channel" must be at most 80 characters long (got 81)`}}},
		{"pattern", `{"channel": "general"}`, []Problem{{"/channel", `"channel" must match the pattern ^[CG][A-Z0-9]+$ (got "general")`}}},
		{"pattern truncates", `{"channel": "x` + strings.Repeat("y", 70) + `"}`, []Problem{{"/channel", `"channel" must match the pattern ^[CG][A-Z0-9]+$ (got "x` + strings.Repeat("y", 39) + `…")`}}},
		{"unknown field", `{"chanel": "C1"}`, []Problem{
			{"/chanel", `unknown field "chanel" (did you mean "channel"?)`},
			{"/channel", `"channel" is required`},
		}},
		{"unknown field no suggestion", `{"channel": "C1", "zzzzzz": 1}`, []Problem{{"/zzzzzz", `unknown field "zzzzzz"`}}},
		{"nested unknown field", `{"channel": "C1", "blocks": [{"type": "section", "txt": "hi"}]}`, []Problem{
			{"/blocks/0/txt", `unknown field "blocks[0].txt" (did you mean "text"?)`},
		}},
		{"nested required and enum", `{"channel": "C1", "blocks": [{"type": "image"}, {}]}`, []Problem{
			{"/blocks/0/type", `"blocks[0].type" must be one of "section", "divider" (got "image")`},
			{"/blocks/1/type", `"blocks[1].type" is required`},
		}},
		{"minItems", `{"channel": "C1", "tags": []}`, []Problem{{"/tags", `"tags" must have at least 1 item (got 0)`}}},
		{"maxItems", `{"channel": "C1", "tags": ["a", "b", "c", "d"]}`, []Problem{{"/tags", `"tags" must have at most 3 items (got 4)`}}},
		{"uniqueItems", `{"channel": "C1", "tags": ["a", "a"]}`, []Problem{{"/tags", `"tags" must not contain duplicates (items 0 and 1 are equal)`}}},
		{"format date-time", `{"channel": "C1", "when": "yesterday"}`, []Problem{{"/when", `"when" must be a valid date-time (got "yesterday")`}}},
		{"format email", `{"channel": "C1", "email": "nobody"}`, []Problem{{"/email", `"email" must be a valid email (got "nobody")`}}},
		{"anyOf types", `{"channel": "C1", "id": true}`, []Problem{{"/id", `"id" must be a string or an integer (got a boolean)`}}},
		{"oneOf picks closest", `{"channel": "C1", "target": {"channel": "x"}}`, []Problem{{"/target/channel", `"target.channel" must be at least 3 characters long (got 1)`}}},
		{"false schema", `{"channel": "C1", "secret": "x"}`, []Problem{{"/secret", `"secret" is not allowed`}}},
		{"minProperties", `{"channel": "C1", "meta": {}}`, []Problem{{"/meta", `"meta" must have at least 1 field (got 0)`}}},
		{"maxProperties", `{"channel": "C1", "meta": {"a": 1, "b": 2, "c": 3}}`, []Problem{{"/meta", `"meta" must have at most 2 fields (got 3)`}}},
		{"dependentRequired", `{"thread": "1"}`, []Problem{
			{"", `the value needs "channel" when "thread" is present`},
			{"/channel", `"channel" is required`},
			{"/thread", `unknown field "thread"`},
		}},
		{"not json", `{"channel": `, []Problem{{"/channel", `not valid JSON: unexpected end of input`}}},
		{"duplicate key", `{"channel": "C1", "channel": "C2"}`, []Problem{{"/channel", `not valid JSON: duplicate key "channel"`}}},
		{"trailing data", `{"channel": "C1"} {}`, []Problem{{"", `not valid JSON: unexpected data after the top-level value`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.ValidateJSON([]byte(tt.in))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ValidateJSON(%s) = %v, want nil", tt.in, err)
				}
				return
			}
			var ve *Error
			if !errors.As(err, &ve) {
				t.Fatalf("ValidateJSON(%s) = %v (%T), want *Error", tt.in, err, err)
			}
			// The "unknown field" hint lists known fields when there is no close match; keep the
			// table readable by comparing up to that hint.
			got := ve.Problems
			for i := range got {
				got[i].Message, _, _ = strings.Cut(got[i].Message, " (known fields:")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ValidateJSON(%s) problems mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	s := mustCompile(t, `{
		"type": "object",
		"required": ["channel"],
		"properties": {"channel": {"type": "string"}, "limit": {"type": "integer", "maximum": 200}}
	}`)
	err := s.ValidateJSON([]byte(`{"limit": 500}`))
	want := `invalid arguments: "channel" is required; "limit" must be at most 200 (got 500)`
	if err == nil || err.Error() != want {
		t.Errorf("ValidateJSON error = %v, want %s", err, want)
	}
}

func TestErrorBounded(t *testing.T) {
	var props, in []string
	for i := range 30 {
		props = append(props, fmt.Sprintf(`"f%d": {"type": "string"}`, i))
		in = append(in, fmt.Sprintf(`"f%d": %d`, i, i))
	}
	s := mustCompile(t, `{"properties": {`+strings.Join(props, ",")+`}}`)
	err := s.ValidateJSON([]byte(`{` + strings.Join(in, ",") + `}`))
	if err == nil || !strings.HasSuffix(err.Error(), "; and 20 more problems") || strings.Count(err.Error(), "; ") != 10 {
		t.Errorf("ValidateJSON = %v, want 10 problems and a count of the rest", err)
	}
}

func TestCompileErrors(t *testing.T) {
	deep := strings.Repeat(`{"items":`, 70) + `{}` + strings.Repeat(`}`, 70)
	tests := []struct {
		name, schema string
		path, msg    string // want the first problem to have this path and contain msg
	}{
		{"not an object", `[1]`, "", "must be an object or a boolean"},
		{"bad type", `{"type": "strin"}`, "/type", `must be one of "array"`},
		{"bad minimum", `{"minimum": "1"}`, "/minimum", "must be a number (got a string)"},
		{"remote ref", `{"$ref": "https://example.com/x.json"}`, "/$ref", "airlock loads no remote or file schemas"},
		{"file ref", `{"properties": {"a": {"$ref": "other.json#/a"}}}`, "/properties/a/$ref", "airlock loads no remote or file schemas"},
		{"file url ref", `{"$ref": "file:///etc/passwd"}`, "/$ref", "airlock loads no remote or file schemas"},
		{"unknown $schema", `{"$schema": "https://example.com/meta"}`, "/$schema", "unsupported $schema"},
		{"missing pointer", `{"$ref": "#/$defs/nope"}`, "/$ref", `$ref "#/$defs/nope" points to nothing`},
		{"missing anchor", `{"properties": {"a": {"$ref": "#nope"}}}`, "/properties/a/$ref", `$ref "#nope" points to nothing`},
		{"self ref cycle", `{"$ref": "#"}`, "/$ref", "$ref cycle"},
		{"ref cycle", `{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}, "properties": {"x": {"$ref": "#/$defs/a"}}}`, "/$defs/", "$ref cycle"},
		{"anchor cycle", `{"$defs": {"a": {"$anchor": "x", "$ref": "#x"}}, "$ref": "#x"}`, "/$defs/a/$ref", "$ref cycle"},
		{"draft-07 ref cycle", `{"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"a": {"$ref": "#/definitions/a"}}, "properties": {"x": {"$ref": "#/definitions/a"}}}`, "/definitions/a/$ref", "$ref cycle"},
		{"duplicate anchor", `{"$defs": {"a": {"$anchor": "x"}, "b": {"$anchor": "x"}}}`, "", "duplicate anchor"},
		{"lookahead", `{"pattern": "(?=a)"}`, "/pattern", "Go RE2 syntax"},
		{"too big", `{"description": "` + strings.Repeat("x", DefaultMaxBytes) + `"}`, "", "the limit is 262144 bytes"},
		{"too deep", deep, "/items/items", "nested deeper than 64 levels"},
		{"duplicate key", `{"type": "object", "type": "string"}`, "/type", `duplicate key "type"`},
		{"not json", `{"type": `, "", "unexpected end of input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(json.RawMessage(tt.schema), nil)
			var se *SchemaError
			if !errors.As(err, &se) {
				t.Fatalf("Compile = %v (%T), want *SchemaError", err, err)
			}
			p := se.Problems[0]
			if !strings.HasPrefix(p.Path, tt.path) || !strings.Contains(p.Message, tt.msg) {
				t.Errorf("Compile problem = %+v, want path %q and message containing %q", p, tt.path, tt.msg)
			}
		})
	}
}

func TestRecursionAllowed(t *testing.T) {
	// Recursion that descends into the value is fine: a tree of nodes.
	s := mustCompile(t, `{
		"$defs": {"node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "$anchor": "node"}},
		"$ref": "#node"
	}`)
	if err := s.ValidateJSON([]byte(`{"children": [{"children": []}, {}]}`)); err != nil {
		t.Errorf("ValidateJSON = %v", err)
	}
	if err := s.ValidateJSON([]byte(`{"children": [{"children": 1}]}`)); err == nil {
		t.Errorf("ValidateJSON(children: 1) = nil, want an error")
	}
}

func TestDrafts(t *testing.T) {
	tests := []struct {
		name, schema, in string
		valid            bool
	}{
		// 2020-12 (the default): prefixItems is the tuple form, items applies to the rest.
		{"2020 prefixItems ok", `{"prefixItems": [{"type": "string"}], "items": {"type": "integer"}}`, `["a", 1, 2]`, true},
		{"2020 prefixItems bad", `{"prefixItems": [{"type": "string"}], "items": {"type": "integer"}}`, `["a", "b"]`, false},
		{"2020 array items is invalid", `{"items": [{"type": "string"}]}`, ``, false},
		// draft-07: items as an array is the tuple form; prefixItems is an unknown keyword.
		{"07 items tuple ok", `{"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}], "additionalItems": false}`, `["a"]`, true},
		{"07 items tuple bad", `{"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}], "additionalItems": false}`, `["a", 1]`, false},
		{"07 prefixItems ignored", `{"$schema": "http://json-schema.org/draft-07/schema#", "prefixItems": [{"type": "string"}]}`, `[1]`, true},
		// draft-07 ignores siblings of $ref; 2020-12 applies them.
		{"07 ref siblings ignored", `{"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/definitions/s", "maxLength": 1}}}`, `{"a": "long"}`, true},
		{"2020 ref siblings apply", `{"$defs": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/s", "maxLength": 1}}}`, `{"a": "long"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile(json.RawMessage(tt.schema), nil)
			if tt.in == "" {
				if err == nil {
					t.Fatalf("Compile(%s) = nil, want an error", tt.schema)
				}
				return
			}
			if err != nil {
				t.Fatalf("Compile(%s) = %v", tt.schema, err)
			}
			err = s.ValidateJSON([]byte(tt.in))
			if (err == nil) != tt.valid {
				t.Errorf("ValidateJSON(%s) = %v, want valid=%v", tt.in, err, tt.valid)
			}
		})
	}
}

func TestFormatAnnotations(t *testing.T) {
	const schema = `{"properties": {"when": {"format": "date-time"}}}`
	s, err := Compile(json.RawMessage(schema), &Options{FormatAnnotations: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ValidateJSON([]byte(`{"when": "yesterday"}`)); err != nil {
		t.Errorf("with FormatAnnotations, ValidateJSON = %v, want nil", err)
	}
	if err := mustCompile(t, schema).ValidateJSON([]byte(`{"when": "yesterday"}`)); err == nil {
		t.Errorf("by default, ValidateJSON = nil, want a format error")
	}
}

func TestOptionsLimits(t *testing.T) {
	if _, err := Compile(json.RawMessage(`{"type": "object"}`), &Options{MaxBytes: 5}); err == nil {
		t.Errorf("Compile with MaxBytes 5 = nil, want an error")
	}
	if _, err := Compile(json.RawMessage(`{"items": {"items": {}}}`), &Options{MaxDepth: 2}); err == nil {
		t.Errorf("Compile with MaxDepth 2 = nil, want an error")
	}
}

func TestDecodeJSON(t *testing.T) {
	v, err := DecodeJSON([]byte(`{"a": [1, 2.5, "x", true, null], "b": {"c": 12345678901234567890}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"a": []any{json.Number("1"), json.Number("2.5"), "x", true, nil},
		"b": map[string]any{"c": json.Number("12345678901234567890")},
	}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Errorf("DecodeJSON mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range []string{``, `{`, `{"a":1}x`, `{"a":1,"a":2}`, "\"\xff\"", strings.Repeat("[", MaxValueDepth+1) + strings.Repeat("]", MaxValueDepth+1)} {
		_, err := DecodeJSON([]byte(bad))
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("DecodeJSON(%.20q) = %v, want *DecodeError", bad, err)
		}
	}
}

// TestConcurrentValidate hammers one schema from many goroutines (run with -race).
func TestConcurrentValidate(t *testing.T) {
	s := mustCompile(t, channelSchema)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 200 {
				in := fmt.Sprintf(`{"channel": "C%d", "limit": %d}`, i, j)
				err := s.ValidateJSON([]byte(in))
				if (err == nil) != (j >= 1 && j <= 200) {
					t.Errorf("ValidateJSON(%s) = %v", in, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkValidate(b *testing.B) {
	s := mustCompile(b, channelSchema)
	v, err := DecodeJSON([]byte(`{"channel": "C123", "limit": 50, "mode": "fast", "tags": ["a", "b"]}`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Validate(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateJSON(b *testing.B) {
	s := mustCompile(b, channelSchema)
	in := []byte(`{"channel": "C123", "limit": 50, "mode": "fast", "tags": ["a", "b"]}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.ValidateJSON(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateInvalid(b *testing.B) {
	s := mustCompile(b, channelSchema)
	in := []byte(`{"chanel": "C123", "limit": 500}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.ValidateJSON(in); err == nil {
			b.Fatal("want an error")
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(json.RawMessage(channelSchema), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// Attack (hostile agent, red team s9): numbers the JSON Schema library cannot or can barely turn
// into a big.Rat. 1e9999999 under "maximum", "minimum", "multipleOf" or "uniqueItems" made
// Validate panic on the caller's goroutine (math/big refuses the exponent, the library compares
// its nil result); 1e999999 under "type": "integer" cost tens of milliseconds each. Each is now
// refused with a message naming its path, quickly, and numbers at the bounds still validate.
func TestOutsizedNumbersRefused(t *testing.T) {
	s := mustCompile(t, `{"type":"object","properties":{
		"max": {"type": "number", "maximum": 5},
		"min": {"minimum": 1},
		"mul": {"type": "number", "multipleOf": 0.5},
		"ids": {"type": "array", "uniqueItems": true},
		"ints": {"type": "array", "items": {"type": "integer"}},
		"deep": {"type": "object", "properties": {"a/b": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}}}}}}`)
	digits := strings.Repeat("7", MaxNumberLength)
	for _, c := range []struct{ args, path string }{
		{`{"max": 1e9999999}`, "/max"},
		{`{"max": -1E+9999999}`, "/max"},
		{`{"min": 1e-9999999}`, "/min"},
		{`{"mul": 1e99999999999999999999}`, "/mul"},
		{`{"ids": [1, 1e9999999]}`, "/ids/1"},
		{`{"ints": [1, 2, 1e999999]}`, "/ints/2"},
		{`{"deep": {"a/b": [1, 1e401]}}`, "/deep/a~1b/1"},
		{`{"max": 1e00000000000000000401}`, "/max"},
		{`{"max": ` + digits + `7}`, "/max"},
		{`{"max": 0.` + digits + `}`, "/max"},
	} {
		err := s.ValidateJSON([]byte(c.args))
		var ve *Error
		if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Path != c.path || !strings.Contains(ve.Problems[0].Message, "is a number too large") {
			t.Errorf("%.60s: %v, want one problem at %s saying the number is too large", c.args, err, c.path)
		}
	}
	for _, ok := range []string{`{"max": 1e-400}`, `{"max": -1E+0400}`, `{"ints": [1e400]}`, `{"max": -` + digits[1:] + `}`, `{"min": 1.5, "mul": 2.5}`} {
		if err := s.ValidateJSON([]byte(ok)); err != nil {
			t.Errorf("%.60s: %v, want valid", ok, err)
		}
	}
	if err := s.ValidateJSON([]byte(`{"max": 1e400}`)); err == nil || !strings.Contains(err.Error(), "at most 5") {
		t.Errorf("1e400 against maximum 5: %v, want the maximum's message", err)
	}
}
