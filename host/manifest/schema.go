package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/airlock-dev/airlock/host/internal/validate"
	"github.com/airlock-dev/airlock/internal/suggest"
	"github.com/airlock-dev/airlock/manifests"
)

// formatSchema is a compiled format schema (manifest or grant) and its decoded document, which
// error messages consult for descriptions and the names of known keys.
type formatSchema struct {
	sch *jsonschema.Schema
	doc any
}

var (
	manifestSchema = sync.OnceValue(func() *formatSchema { return mustCompile("manifest.schema.json", manifests.Schema) })
	grantSchema    = sync.OnceValue(func() *formatSchema { return mustCompile("grant.schema.json", manifests.GrantSchema) })
)

func mustCompile(name string, data []byte) *formatSchema {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		panic(fmt.Sprintf("manifests/%s: %v", name, err))
	}
	c := jsonschema.NewCompiler()
	url := "airlock:///" + name
	if err := c.AddResource(url, doc); err != nil {
		panic(fmt.Sprintf("manifests/%s: %v", name, err))
	}
	sch, err := c.Compile(url)
	if err != nil {
		panic(fmt.Sprintf("manifests/%s: %v", name, err))
	}
	return &formatSchema{sch: sch, doc: doc}
}

var printer = message.NewPrinter(language.English)

// validateFormat checks d against fs and returns one *Error per problem.
func (d *document) validateFormat(fs *formatSchema) []*Error {
	err := fs.sch.Validate(d.value)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []*Error{d.errorf(0, "", "%v", err)}
	}
	validate.FixPropertyNames(ve, nil, d.value)
	var leaves []*jsonschema.ValidationError
	leavesOf(ve, &leaves)
	var errs []*Error
	for _, l := range leaves {
		errs = append(errs, d.describe(fs, l)...)
	}
	return errs
}

func leavesOf(e *jsonschema.ValidationError, out *[]*jsonschema.ValidationError) {
	_, names := e.ErrorKind.(*kind.PropertyNames)
	if len(e.Causes) == 0 || names {
		*out = append(*out, e)
		return
	}
	for _, c := range e.Causes {
		leavesOf(c, out)
	}
}

// describe turns one schema violation into errors phrased for someone editing the YAML.
func (d *document) describe(fs *formatSchema, e *jsonschema.ValidationError) []*Error {
	loc := e.InstanceLocation
	sub := lookup(fs.doc, fragment(e.SchemaURL)) // the subschema that failed
	val := valueAt(d.value, loc)
	one := func(format string, args ...any) []*Error {
		return []*Error{d.at(loc, format, args...)}
	}
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		var errs []*Error
		for _, m := range k.Missing {
			msg := fmt.Sprintf("missing required key %q", m)
			if desc := description(fs.doc, property(fs.doc, fragment(e.SchemaURL), m)); desc != "" {
				msg += " (" + desc + ")"
			}
			errs = append(errs, d.at(loc, "%s", msg))
		}
		return errs
	case *kind.AdditionalProperties:
		known := sortedKeys(asMap(asMap(sub)["properties"]))
		var errs []*Error
		for _, p := range k.Properties {
			msg := fmt.Sprintf("unknown key %q", p)
			if s := suggest.Closest(p, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else if len(known) > 0 {
				msg += " (valid keys: " + strings.Join(known, ", ") + ")"
			}
			path := append(append([]string(nil), loc...), p)
			errs = append(errs, &Error{File: d.file, Line: d.line(path), Path: d.display(loc), Msg: msg})
		}
		return errs
	case *kind.Type:
		return one("expected %s, got %s", expected(fs.doc, sub), valueKind(val))
	case *kind.Enum:
		var want []string
		for _, w := range k.Want {
			want = append(want, fmt.Sprint(w))
		}
		return one("must be one of %s (got %s)", strings.Join(want, ", "), show(k.Got))
	case *kind.Const:
		return one("must be %v (got %s)", k.Want, show(k.Got))
	case *kind.Pattern:
		msg := fmt.Sprintf("%s is not valid", show(k.Got))
		if desc := description(fs.doc, sub); desc != "" {
			msg += ": expected " + desc
		}
		return one("%s", msg)
	case *kind.Minimum:
		return one("must be at least %s (got %s)", ratString(k.Want), ratString(k.Got))
	case *kind.Maximum:
		return one("must be at most %s (got %s)", ratString(k.Want), ratString(k.Got))
	case *kind.ExclusiveMinimum:
		return one("must be greater than %s (got %s)", ratString(k.Want), ratString(k.Got))
	case *kind.MinItems:
		return one("must list at least %s (got %d)", plural(k.Want, "item"), k.Got)
	case *kind.MaxItems:
		return one("must list at most %s (got %d)", plural(k.Want, "item"), k.Got)
	case *kind.MinLength:
		if k.Want == 1 {
			return one("must not be empty")
		}
		return one("must be at least %s long (got %d)", plural(k.Want, "character"), k.Got)
	case *kind.MaxLength:
		return one("must be at most %s long (got %d)", plural(k.Want, "character"), k.Got)
	case *kind.MaxProperties:
		return one("must have at most %s (got %d)", plural(k.Want, "entry"), k.Got)
	case *kind.UniqueItems:
		return one("items %d and %d are the same: remove one", k.Duplicates[0], k.Duplicates[1])
	case *kind.PropertyNames:
		path := append(append([]string(nil), loc...), k.Property)
		return []*Error{{File: d.file, Line: d.line(path), Path: d.display(loc),
			Msg: fmt.Sprintf("%q is not a valid name: expected lowercase letters, digits and _, starting with a letter", k.Property)}}
	case *kind.FalseSchema:
		return one("not allowed here")
	}
	return one("%s", e.ErrorKind.LocalizedString(printer))
}

// expected describes what a subschema accepts: "a list of strings", "a mapping", "an integer".
func expected(doc, sch any) string {
	s := resolve(doc, sch)
	if enum, ok := s["enum"].([]any); ok {
		var want []string
		for _, w := range enum {
			want = append(want, fmt.Sprint(w))
		}
		return "one of " + strings.Join(want, ", ")
	}
	var types []string
	switch t := s["type"].(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			types = append(types, fmt.Sprint(x))
		}
	}
	var words []string
	for _, t := range types {
		switch t {
		case "array":
			if items := resolve(doc, s["items"]); items != nil {
				if _, ok := items["type"]; ok {
					words = append(words, "a list of "+plainPlural(expected(doc, items)))
					continue
				}
				if _, ok := items["enum"]; ok {
					words = append(words, "a list of values, each "+expected(doc, items))
					continue
				}
			}
			words = append(words, "a list")
		case "object":
			words = append(words, "a mapping")
		case "integer":
			words = append(words, "an integer")
		default:
			words = append(words, "a "+t)
		}
	}
	switch len(words) {
	case 0:
		return "a different value"
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// plainPlural turns "a string" into "strings" and "a mapping" into "mappings".
func plainPlural(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "a "), "an ")
	if strings.Contains(s, " ") {
		return s
	}
	return s + "s"
}

// valueKind names the kind of a decoded YAML value.
func valueKind(v any) string {
	switch v := v.(type) {
	case nil:
		return "nothing (null)"
	case bool:
		return "a boolean"
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return "an integer"
		}
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

func show(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) > 80 {
			v = v[:80] + "…"
		}
		return strconv.Quote(v)
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

func ratString(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "y") {
		return strconv.Itoa(n) + " " + strings.TrimSuffix(word, "y") + "ies"
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// lookup returns the value at a JSON pointer in doc.
func lookup(doc any, ptr string) any {
	cur := doc
	for _, tok := range splitPointer(ptr) {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

func valueAt(v any, loc []string) any { return lookup(v, jsonPointer(loc)) }

// resolve follows a local $ref (one level is all the format schemas use) and returns the
// subschema as a map, nil if it is none.
func resolve(doc, sch any) map[string]any {
	s := asMap(sch)
	for range 4 {
		ref, ok := s["$ref"].(string)
		if !ok || !strings.HasPrefix(ref, "#") {
			break
		}
		target := asMap(lookup(doc, ref[1:]))
		merged := map[string]any{}
		for k, v := range target {
			merged[k] = v
		}
		for k, v := range s {
			if k != "$ref" {
				merged[k] = v // siblings (a more specific description) win
			}
		}
		s = merged
	}
	return s
}

// property returns the subschema of property name in the schema at ptr, or in the nearest
// enclosing schema that declares it (a required in an if/then names its parent's properties).
func property(doc any, ptr, name string) any {
	for {
		if p, ok := asMap(resolve(doc, lookup(doc, ptr))["properties"])[name]; ok {
			return p
		}
		i := strings.LastIndex(ptr, "/")
		if i < 0 {
			return nil
		}
		ptr = ptr[:i]
	}
}

func description(doc, sch any) string {
	desc, _ := resolve(doc, sch)["description"].(string)
	return desc
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fragment(loc string) string {
	_, f, _ := strings.Cut(loc, "#")
	return f
}

// Tool schemas are strict: every key of a schema object must be a keyword of its JSON Schema
// draft, or an extension starting with "x-". Validators ignore unknown keywords, so a typo
// ("minLenght") or YAML that went wrong silently loosens a schema; strict validators (and some
// agent platforms) refuse the whole tool. The classic case is a flow mapping with an unquoted
// comma: {type: string, description: Set for odd messages, e.g. bot_message.} gives the keys
// "e.g. bot_message." with no value.

// keywords2020 are the keywords of the JSON Schema 2020-12 vocabularies (core, applicator,
// unevaluated, validation, meta-data, format-annotation, content), plus "definitions", which the
// 2020-12 meta-schema still describes.
var keywords2020 = keywordSet(
	"$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary", "$comment", "$defs", "definitions",
	"prefixItems", "items", "contains", "additionalProperties", "properties", "patternProperties",
	"dependentSchemas", "propertyNames", "if", "then", "else", "allOf", "anyOf", "oneOf", "not",
	"unevaluatedItems", "unevaluatedProperties",
	"type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
	"maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxContains", "minContains",
	"maxProperties", "minProperties", "required", "dependentRequired",
	"title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples",
	"format", "contentEncoding", "contentMediaType", "contentSchema",
)

// keywordsDraft7 are the keywords of draft-07, which a schema picks with its $schema.
var keywordsDraft7 = keywordSet(
	"$schema", "$id", "$ref", "$comment", "definitions",
	"items", "additionalItems", "contains", "additionalProperties", "properties", "patternProperties",
	"dependencies", "propertyNames", "if", "then", "else", "allOf", "anyOf", "oneOf", "not",
	"type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
	"maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems",
	"maxProperties", "minProperties", "required",
	"title", "description", "default", "readOnly", "writeOnly", "examples",
	"format", "contentEncoding", "contentMediaType",
)

func keywordSet(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// Where subschemas sit, by keyword (the same in both drafts where a keyword exists in both).
var (
	subschema    = keywordSet("additionalProperties", "propertyNames", "items", "additionalItems", "contains", "not", "if", "then", "else", "unevaluatedItems", "unevaluatedProperties", "contentSchema")
	subschemaMap = keywordSet("properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies")
	subschemaArr = keywordSet("allOf", "anyOf", "oneOf", "prefixItems", "items")
)

// checkSchemaKeywords reports every unknown keyword in the schema at path (a tool's
// input_schema or output_schema, or a database parameter's schema), naming what and the key.
func (d *document) checkSchemaKeywords(path []string, what string) []*Error {
	root := valueAt(d.value, path)
	known, draft := keywords2020, "JSON Schema 2020-12"
	if s, _ := asMap(root)["$schema"].(string); strings.Contains(s, "draft-07") {
		known, draft = keywordsDraft7, "JSON Schema draft-07"
	}
	var errs []*Error
	var walk func(v any, loc []string)
	walk = func(v any, loc []string) {
		obj, ok := v.(map[string]any)
		if !ok {
			return // a boolean schema, or a value the compiler reports as not a schema
		}
		for _, k := range sortedKeys(obj) {
			val := obj[k]
			at := append(loc[:len(loc):len(loc)], k)
			if !known[k] {
				if !strings.HasPrefix(k, "x-") {
					errs = append(errs, &Error{File: d.file, Line: d.line(at), Path: d.display(loc),
						Msg: unknownKeyword(k, val, what, draft, known)})
				}
				continue // an extension's value is not a schema
			}
			switch {
			case subschemaMap[k]:
				m, _ := val.(map[string]any)
				for _, name := range sortedKeys(m) {
					walk(m[name], append(at[:len(at):len(at)], name))
				}
			case subschemaArr[k] && isList(val):
				for i, s := range val.([]any) {
					walk(s, append(at[:len(at):len(at)], strconv.Itoa(i)))
				}
			case subschema[k]:
				walk(val, at)
			}
		}
	}
	walk(root, path)
	return errs
}

func isList(v any) bool { _, ok := v.([]any); return ok }

func unknownKeyword(k string, val any, what, draft string, known map[string]bool) string {
	msg := fmt.Sprintf("unknown keyword %q in %s (allowed: %s keywords and x- extensions)", k, what, draft)
	switch {
	case val == nil && strings.ContainsAny(k, " ."):
		// A key with no value that reads like prose is the tail of an unquoted text.
		msg += ": it has no value and reads like text; an unquoted description containing \", \" inside {…} " +
			"is split into keys at each comma, so quote that text"
	case k == "dependencies" || k == "additionalItems":
		msg += fmt.Sprintf(": %q is draft-07; in 2020-12 use dependentRequired/dependentSchemas or prefixItems/items, or declare \"$schema\": \"http://json-schema.org/draft-07/schema#\"", k)
	default:
		if s := suggest.Closest(k, sortedKeys(known)); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		} else {
			msg += ": remove it, or rename it x-" + k + " if it is meant as an extension"
		}
	}
	return msg
}
