package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// strictManifest is a manifest whose tool has the output schema given, starting on line 11.
const strictManifest = `abi: 1
name: demo
version: 1.0.0
publisher: acme
description: Demo.
module: {path: demo.wasm}
tools:
  - name: history
    description: History.
    input_schema: {type: object}
    output_schema:
%s`

func strictErrors(t *testing.T, schema string) []*Error {
	t.Helper()
	_, err := Parse("demo.yaml", []byte(fmt.Sprintf(strictManifest, schema)))
	if err == nil {
		return nil
	}
	var list ErrorList
	if errors.As(err, &list) {
		return list
	}
	var one *Error
	if !errors.As(err, &one) {
		t.Fatalf("Parse error %T, want *Error or ErrorList: %v", err, err)
	}
	return []*Error{one}
}

// The mistake of manifests/slack.yaml:207: an unquoted description with commas in a flow
// mapping becomes keys with no value. Every validator ignored them; the manifest must not load.
func TestStrictSchemaUnquotedDescription(t *testing.T) {
	errs := strictErrors(t, `      type: object
      properties:
        messages:
          type: array
          items:
            type: object
            properties:
              subtype: {type: string, description: Set for odd messages, e.g. channel_join, bot_message.}
`)
	if len(errs) != 2 {
		t.Fatalf("got %d errors, want one per junk key: %v", len(errs), errs)
	}
	for i, key := range []string{`"bot_message."`, `"e.g. channel_join"`} {
		e := errs[i]
		if e.File != "demo.yaml" || e.Line != 19 || e.Path != "tools[0].output_schema.properties.messages.items.properties.subtype" {
			t.Errorf("error at %s:%d %s, want demo.yaml:19 at the subtype schema", e.File, e.Line, e.Path)
		}
		for _, want := range []string{key, "output schema of tool history", "quote"} {
			if !strings.Contains(e.Msg, want) {
				t.Errorf("message %q does not say %q", e.Msg, want)
			}
		}
	}
}

func TestStrictSchemaKeywords(t *testing.T) {
	for _, tc := range []struct {
		name, schema string
		key, path    string // "" key: the schema is valid
		hint         string
	}{
		{name: "typo", schema: "{type: object, properties: {name: {type: string, minLenght: 1}}}",
			key: "minLenght", path: "tools[0].output_schema.properties.name", hint: `did you mean "minLength"`},
		{name: "OpenAPI nullable", schema: "{type: object, properties: {a: {type: string, nullable: true}}}",
			key: "nullable", path: "tools[0].output_schema.properties.a", hint: "x-nullable"},
		{name: "under allOf", schema: "{type: object, allOf: [{required: [a]}, {bogus: 1}]}",
			key: "bogus", path: "tools[0].output_schema.allOf[1]"},
		{name: "under $defs and items", schema: "{type: object, properties: {l: {type: array, items: {$ref: '#/$defs/x'}}}, $defs: {x: {type: string, maxlength: 3}}}",
			key: "maxlength", path: "tools[0].output_schema.$defs.x", hint: `did you mean "maxLength"`},
		{name: "under additionalProperties", schema: "{type: object, additionalProperties: {type: string, colour: red}}",
			key: "colour", path: "tools[0].output_schema.additionalProperties"},
		{name: "draft-07 keyword in 2020-12", schema: "{type: object, dependencies: {a: [b]}}",
			key: "dependencies", path: "tools[0].output_schema", hint: "dependentRequired"},
		{name: "2020-12 keyword in draft-07", schema: "{$schema: 'http://json-schema.org/draft-07/schema#', type: object, $defs: {}}",
			key: "$defs", path: "tools[0].output_schema"},

		{name: "every annotation and x- extension", schema: `{type: object, title: T, description: D, $comment: c, deprecated: false,
      examples: [{}], default: {}, x-internal: {nullable: true}, properties: {
        s: {type: string, format: date-time, readOnly: true, writeOnly: false, contentEncoding: base64, contentMediaType: text/plain},
        e: {enum: [{bogus: 1}], const: {also: not a schema}, default: {junk: 1}, examples: [{x: 1}]}}}`},
		{name: "2020-12 applicators", schema: `{type: object, prefixItems: [true], unevaluatedProperties: false, dependentSchemas: {a: {required: [b]}},
      dependentRequired: {a: [b]}, patternProperties: {"^x": {minimum: 0}}, propertyNames: {maxLength: 9},
      if: {required: [a]}, then: {minProperties: 1}, else: {maxProperties: 9}, not: {required: [z]}}`},
		{name: "draft-07 with its own keywords", schema: `{$schema: 'http://json-schema.org/draft-07/schema#', type: object,
      definitions: {d: {type: string}}, dependencies: {a: [b], c: {required: [d]}}, properties: {l: {items: [true], additionalItems: false}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := strictErrors(t, "      "+tc.schema+"\n")
			if tc.key == "" {
				if len(errs) != 0 {
					t.Fatalf("a valid schema was refused: %v", errs)
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("got %v, want one error about %q", errs, tc.key)
			}
			e := errs[0]
			if e.Path != tc.path || e.Line == 0 || !strings.Contains(e.Msg, fmt.Sprintf("unknown keyword %q", tc.key)) ||
				!strings.Contains(e.Msg, tc.hint) {
				t.Errorf("error = %v; want at %s, naming %q with %q", e, tc.path, tc.key, tc.hint)
			}
		})
	}
}

func TestStrictSchemaDatabaseParams(t *testing.T) {
	_, err := Parse("db.yaml", []byte(`abi: 1
name: db
version: 1.0.0
publisher: acme
description: Demo.
module: {path: db.wasm}
database:
  functions:
    - name: find
      description: Find.
      sql: SELECT 1 WHERE $1 = 'x'
      params:
        - name: email
          schema: {type: string, minLen: 3}
tools:
  - name: find
    description: Find.
    function: find
    input_schema: {type: object}
`))
	var e *Error
	if !errors.As(err, &e) || e.Line != 14 || !strings.Contains(e.Msg, `"minLen"`) || !strings.Contains(e.Msg, "parameter email of database function find") {
		t.Errorf("Parse = %v, want an error at db.yaml:14 naming minLen and the parameter", err)
	}
}

// Every manifest we ship passes the strict check.
func TestShippedManifestsAreStrict(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "manifests", "*.yaml"))
	files = append(files, filepath.Join("..", "testdata", "hostile.yaml"), filepath.Join("testdata", "valid.yaml"))
	if len(files) < 4 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(f, data); err != nil {
			t.Errorf("%v", err)
		}
	}
}
