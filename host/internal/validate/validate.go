// Package validate compiles the JSON Schemas of tool inputs and outputs and checks values against
// them, with errors an agent can act on.
//
// Schemas come from third-party manifests, so compiling one is bounded and closed: the schema
// must be at most [DefaultMaxBytes] and [DefaultMaxDepth] deep before the compiler sees it,
// nothing is ever loaded from the network or the file system (a remote or file $ref is an error:
// put the definition under $defs), and a $ref cycle that would make validation loop is a compile
// error rather than a failure of every later call. Draft 2020-12 is the default; a schema may
// pick draft-07 with "$schema": "http://json-schema.org/draft-07/schema#".
//
// Formats are asserted, not mere annotations: "format": "date-time" rejects "yesterday". The
// checks are cheap, run only where a schema asks for them, and catch an agent's mistake before the
// plugin sends it upstream. Unknown formats are ignored. Patterns use Go's RE2 engine, which runs
// in linear time, so a hostile pattern cannot stall the host (lookarounds and backreferences are
// refused at compile time).
//
// Example:
//
//	s, err := validate.Compile(json.RawMessage(`{
//		"type": "object",
//		"required": ["channel"],
//		"properties": {
//			"channel": {"type": "string"},
//			"limit": {"type": "integer", "maximum": 200}
//		},
//		"additionalProperties": false
//	}`), nil)
//	if err != nil { ... } // *validate.SchemaError, with a JSON pointer per problem
//	err = s.ValidateJSON([]byte(`{"limit": 500, "chanel": "C1"}`))
//	fmt.Println(err)
//	// invalid arguments: "channel" is required; unknown field "chanel" (did you mean "channel"?); "limit" must be at most 200 (got 500)
//
// A compiled [*Schema] is immutable and safe for concurrent use.
package validate

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Defaults for [Options].
const (
	DefaultMaxBytes = 256 << 10 // 256 KiB
	DefaultMaxDepth = 64
)

// maxProblems bounds how many problems an [Error] lists, so a hostile or broken value cannot
// produce an unbounded message.
const maxProblems = 10

// Options tune [Compile]. A nil *Options or a zero field means the documented default.
type Options struct {
	// MaxBytes is the largest schema accepted, in bytes (default DefaultMaxBytes).
	MaxBytes int
	// MaxDepth is the deepest nesting of objects and arrays accepted in a schema
	// (default DefaultMaxDepth).
	MaxDepth int
	// FormatAnnotations, when true, treats "format" as an annotation only (the 2020-12 default).
	// By default airlock asserts formats; see the package documentation.
	FormatAnnotations bool
}

// schemaURL is the base URL of every compiled schema. A relative $ref resolves against it and
// is refused by the loader, as is any absolute one.
const schemaURL = "airlock:///schema.json"

// Schema is a compiled JSON Schema. It is immutable and safe for concurrent use; the zero value
// is not usable (use [Compile]).
type Schema struct {
	sch *jsonschema.Schema
	doc any // the decoded schema, for "did you mean" suggestions
	// types, when not 0, says the schema only constrains a value's JSON type (typesOnly): a
	// value of one of these types is valid without running the validator. Any other value
	// still goes through it, for its error message.
	types uint8
}

// Problem is one reason a value or schema is invalid.
type Problem struct {
	// Path is the JSON pointer (RFC 6901) of the offending value, e.g. /blocks/0/type; "" is the
	// whole value. For a missing required field it points at the missing field.
	Path string
	// Message is a sentence fragment an agent can act on, e.g. `"limit" must be at most 200 (got 500)`.
	Message string
}

// Error is a value that does not satisfy a schema. Its message is safe to show to an agent: it
// quotes at most a short prefix of offending string values and never more than 10 problems.
type Error struct {
	Problems []Problem
}

// Error returns "invalid arguments: " followed by [Error.Detail].
func (e *Error) Error() string { return "invalid arguments: " + e.Detail() }

// Detail joins the problems with "; ", for callers that validate something other than arguments
// (a tool's output) and phrase their own prefix.
func (e *Error) Detail() string {
	var sb strings.Builder
	for i, p := range e.Problems {
		if i == maxProblems {
			fmt.Fprintf(&sb, "; and %d more problems", len(e.Problems)-maxProblems)
			break
		}
		if i > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(p.Message)
	}
	return sb.String()
}

// SchemaError is a schema [Compile] refuses. Each problem's Path is a JSON pointer into the
// schema document.
type SchemaError struct {
	Problems []Problem
}

func (e *SchemaError) Error() string {
	var sb strings.Builder
	sb.WriteString("invalid JSON Schema: ")
	for i, p := range e.Problems {
		if i > 0 {
			sb.WriteString("; ")
		}
		if p.Path != "" {
			sb.WriteString("at " + p.Path + ": ")
		}
		sb.WriteString(p.Message)
	}
	return sb.String()
}

func schemaError(path, format string, args ...any) *SchemaError {
	return &SchemaError{Problems: []Problem{{Path: path, Message: fmt.Sprintf(format, args...)}}}
}

// Compile checks schema's size and depth, then compiles it. opts may be nil. Errors are
// *[SchemaError].
func Compile(schema json.RawMessage, opts *Options) (*Schema, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if len(schema) > o.MaxBytes {
		return nil, schemaError("", "the schema is %d bytes; the limit is %d bytes: simplify it or split the tool", len(schema), o.MaxBytes)
	}
	doc, err := decode(schema, o.MaxDepth)
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			if strings.HasPrefix(de.Msg, "nested deeper") {
				return nil, schemaError(de.Path, "the schema is nested deeper than %d levels: flatten it, or move repeated parts under $defs", o.MaxDepth)
			}
			return nil, schemaError(de.Path, "%s", de.Msg)
		}
		return nil, schemaError("", "%v", err)
	}
	switch doc.(type) {
	case map[string]any, bool:
	default:
		return nil, schemaError("", "a schema must be an object or a boolean")
	}

	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(refuseLoader{})
	if !o.FormatAnnotations {
		c.AssertFormat()
	}
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, schemaError("", "%v", err)
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		return nil, compileError(err, doc)
	}
	if p := findCycle(sch); p != nil {
		return nil, &SchemaError{Problems: []Problem{*p}}
	}
	return &Schema{sch: sch, doc: doc, types: typesOnly(doc)}, nil
}

// JSON types as bits of Schema.types.
const (
	typeNull uint8 = 1 << iota
	typeBoolean
	typeNumber
	typeString
	typeArray
	typeObject
	typeAny = typeNull | typeBoolean | typeNumber | typeString | typeArray | typeObject
)

var typeBits = map[string]uint8{"null": typeNull, "boolean": typeBoolean, "number": typeNumber,
	"string": typeString, "array": typeArray, "object": typeObject}

// typesOnly returns the JSON types a schema accepts when it says nothing else (true, {},
// {"type": "object"}, {"type": ["string", "null"]}, with at most a title, description or
// $comment beside), or 0 when it constrains anything more. "integer" is left to the validator
// (1.0 is an integer).
func typesOnly(doc any) uint8 {
	switch d := doc.(type) {
	case bool:
		if d {
			return typeAny
		}
		return 0
	case map[string]any:
		types := typeAny
		for k, v := range d {
			switch k {
			case "title", "description", "$comment":
			case "type":
				types = 0
				names, ok := v.([]any)
				if !ok {
					names = []any{v}
				}
				for _, n := range names {
					s, _ := n.(string)
					if typeBits[s] == 0 {
						return 0
					}
					types |= typeBits[s]
				}
			default:
				return 0
			}
		}
		return types
	}
	return 0
}

// typeOf is v's JSON type as a Schema.types bit (0 for a Go type DecodeJSON does not return).
func typeOf(v any) uint8 {
	switch v.(type) {
	case nil:
		return typeNull
	case bool:
		return typeBoolean
	case json.Number, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return typeNumber
	case string:
		return typeString
	case []any:
		return typeArray
	case map[string]any:
		return typeObject
	}
	return 0
}

// refuseLoader is the compiler's only loader: airlock loads no schema from the network or the
// file system. The draft metaschemas are embedded in the library and never reach it.
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, errors.New("airlock loads no remote or file schemas")
}

// compileError turns a compiler error into a *SchemaError with a JSON pointer where possible.
func compileError(err error, doc any) *SchemaError {
	var (
		sve  *jsonschema.SchemaValidationError
		lue  *jsonschema.LoadURLError
		anf  *jsonschema.AnchorNotFoundError
		jpnf *jsonschema.JSONPointerNotFoundError
		ire  *jsonschema.InvalidRegexError
		dae  *jsonschema.DuplicateAnchorError
		die  *jsonschema.DuplicateIDError
		ude  *jsonschema.UnsupportedDraftError
	)
	switch {
	case errors.As(err, &sve):
		var ve *jsonschema.ValidationError
		if errors.As(sve.Err, &ve) {
			// The problems are about the schema document, and SchemaError names each one's
			// location by its path, so drop the subject ("the value", "\"properties.x\"").
			probs := problems(ve, doc, doc)
			for i, p := range probs {
				subject := "the value"
				if p.Path != "" {
					subject = name(splitPointer(p.Path), doc)
				}
				if rest, ok := strings.CutPrefix(p.Message, subject+" "); ok {
					probs[i].Message = rest
				}
				if strings.Contains(p.Message, "must be a valid regex") {
					probs[i].Message += "; patterns use Go RE2 syntax, without lookarounds or backreferences"
				}
			}
			return &SchemaError{Problems: probs}
		}
	case errors.As(err, &lue):
		ref := strings.TrimPrefix(lue.URL, "airlock:///")
		path, _ := findRef(doc, nil, func(r string) bool {
			base, _, _ := strings.Cut(r, "#")
			return base != "" && strings.HasSuffix(lue.URL, base)
		})
		if strings.HasSuffix(path, "/$schema") {
			return schemaError(path, "unsupported $schema %q: use https://json-schema.org/draft/2020-12/schema (the default) or http://json-schema.org/draft-07/schema#", ref)
		}
		return schemaError(path, "$ref %q cannot be loaded: airlock loads no remote or file schemas; copy the definition under $defs and refer to it as #/$defs/name", ref)
	case errors.As(err, &anf):
		return refNotFound(doc, anf.Reference)
	case errors.As(err, &jpnf):
		return refNotFound(doc, jpnf.URL)
	case errors.As(err, &ire):
		return schemaError(fragment(ire.URL), "pattern %q is not valid Go RE2 syntax (no lookarounds or backreferences): %v", ire.Regex, ire.Err)
	case errors.As(err, &dae):
		return schemaError(dae.Ptr2, "duplicate anchor %q (also at %s)", dae.Anchor, dae.Ptr1)
	case errors.As(err, &die):
		return schemaError(die.Ptr2, "duplicate $id %q (also at %s)", die.ID, die.Ptr1)
	case errors.As(err, &ude):
		return schemaError("/$schema", "unsupported $schema: use https://json-schema.org/draft/2020-12/schema (the default) or http://json-schema.org/draft-07/schema#")
	}
	return schemaError("", "%v", err)
}

func refNotFound(doc any, url string) *SchemaError {
	_, frag, _ := strings.Cut(url, "#")
	path, ref := findRef(doc, nil, func(r string) bool {
		_, f, _ := strings.Cut(r, "#")
		return f == frag
	})
	if ref == "" {
		ref = "#" + frag
	}
	return schemaError(path, "$ref %q points to nothing in this schema", ref)
}

// findRef returns the pointer and value of the first $ref/$dynamicRef/$schema string in doc
// (in sorted key order) that match accepts.
func findRef(v any, path []string, match func(string) bool) (string, string) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if s, ok := v[k].(string); ok && (k == "$ref" || k == "$dynamicRef" || k == "$schema") && match(s) {
				return pointer(append(path, k)), s
			}
		}
		for _, k := range keys {
			if p, r := findRef(v[k], append(path, k), match); r != "" {
				return p, r
			}
		}
	case []any:
		for i, e := range v {
			if p, r := findRef(e, append(path, fmt.Sprint(i)), match); r != "" {
				return p, r
			}
		}
	}
	return "", ""
}

// fragment returns the JSON pointer in a schema location such as airlock:///schema.json#/a/b.
func fragment(loc string) string {
	_, f, _ := strings.Cut(loc, "#")
	return f
}

// findCycle reports a cycle of in-place applicators ($ref, allOf, anyOf, oneOf, not, if/then/else,
// dependentSchemas …) that do not descend into the value: validating such a schema would revisit
// the same schema at the same place forever. The library detects this too, but only while
// validating a value that reaches the cycle; refusing it at compile time tells the publisher.
func findCycle(root *jsonschema.Schema) *Problem {
	// Every schema reachable from the root, in a stable order.
	var all []*jsonschema.Schema
	seen := map[*jsonschema.Schema]bool{root: true}
	for queue := []*jsonschema.Schema{root}; len(queue) > 0; {
		s := queue[0]
		queue = queue[1:]
		all = append(all, s)
		next := descending(s)
		for _, e := range inPlace(s) {
			next = append(next, e.s)
		}
		for _, n := range next {
			if !seen[n] {
				seen[n] = true
				queue = append(queue, n)
			}
		}
	}
	// A cycle in the graph of in-place edges, by depth-first search.
	const (
		visiting = 1
		done     = 2
	)
	state := map[*jsonschema.Schema]int{}
	var visit func(s *jsonschema.Schema) *Problem
	visit = func(s *jsonschema.Schema) *Problem {
		state[s] = visiting
		for _, e := range inPlace(s) {
			switch state[e.s] {
			case visiting:
				return &Problem{Path: e.via, Message: fmt.Sprintf("$ref cycle: %s leads back to %s without descending into the value, so validation would never end; make the recursion go through properties or items", e.via, orRoot(fragment(e.s.Location)))}
			case 0:
				if p := visit(e.s); p != nil {
					return p
				}
			}
		}
		state[s] = done
		return nil
	}
	for _, s := range all {
		if state[s] == 0 {
			if p := visit(s); p != nil {
				return p
			}
		}
	}
	return nil
}

func orRoot(ptr string) string {
	if ptr == "" {
		return "the root"
	}
	return ptr
}

type edge struct {
	s   *jsonschema.Schema
	via string
}

// inPlace lists the subschemas applied to the same instance location as s.
func inPlace(s *jsonschema.Schema) []edge {
	loc := fragment(s.Location)
	var out []edge
	add := func(sub *jsonschema.Schema, kw string) {
		if sub != nil {
			out = append(out, edge{sub, loc + "/" + kw})
		}
	}
	add(s.Ref, "$ref")
	add(s.RecursiveRef, "$recursiveRef")
	if s.DynamicRef != nil {
		add(s.DynamicRef.Ref, "$dynamicRef")
	}
	add(s.Not, "not")
	add(s.If, "if")
	add(s.Then, "then")
	add(s.Else, "else")
	for i, sub := range s.AllOf {
		add(sub, fmt.Sprintf("allOf/%d", i))
	}
	for i, sub := range s.AnyOf {
		add(sub, fmt.Sprintf("anyOf/%d", i))
	}
	for i, sub := range s.OneOf {
		add(sub, fmt.Sprintf("oneOf/%d", i))
	}
	for _, k := range sortedKeys(s.DependentSchemas) {
		add(s.DependentSchemas[k], "dependentSchemas/"+k)
	}
	for _, k := range sortedKeys(s.Dependencies) {
		if sub, ok := s.Dependencies[k].(*jsonschema.Schema); ok {
			add(sub, "dependencies/"+k)
		}
	}
	return out
}

// descending lists the subschemas applied to values inside the instance.
func descending(s *jsonschema.Schema) []*jsonschema.Schema {
	var out []*jsonschema.Schema
	add := func(sub *jsonschema.Schema) {
		if sub != nil {
			out = append(out, sub)
		}
	}
	for _, k := range sortedKeys(s.Properties) {
		add(s.Properties[k])
	}
	for _, sub := range s.PatternProperties {
		add(sub)
	}
	if sub, ok := s.AdditionalProperties.(*jsonschema.Schema); ok {
		add(sub)
	}
	add(s.PropertyNames)
	add(s.UnevaluatedProperties)
	switch items := s.Items.(type) {
	case *jsonschema.Schema:
		add(items)
	case []*jsonschema.Schema:
		out = append(out, items...)
	}
	if sub, ok := s.AdditionalItems.(*jsonschema.Schema); ok {
		add(sub)
	}
	out = append(out, s.PrefixItems...)
	add(s.Items2020)
	add(s.Contains)
	add(s.UnevaluatedItems)
	add(s.ContentSchema)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Validate checks v, a value as returned by [DecodeJSON] (json.Number for numbers; float64 and
// the integer types work too), against the schema. It returns nil or an *[Error].
func (s *Schema) Validate(v any) error {
	if s.types&typeOf(v) != 0 {
		return nil
	}
	if steps, found := outsizedNumber(v); found {
		slices.Reverse(steps)
		return &Error{Problems: []Problem{{Path: pointer(steps), Message: fmt.Sprintf(
			"%s is a number too large, too small or too long to check: use at most %d characters and an exponent between -%d and %d",
			name(steps, v), MaxNumberLength, MaxNumberExponent, MaxNumberExponent)}}}
	}
	err := s.sch.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &Error{Problems: []Problem{{Message: err.Error()}}}
	}
	probs := problems(ve, s.doc, v)
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Path < probs[j].Path })
	if len(probs) == 0 {
		probs = []Problem{{Message: "the value does not match the schema"}}
	}
	return &Error{Problems: probs}
}

// MaxNumberLength and MaxNumberExponent bound the numbers [Schema.Validate] checks (the length
// of the number as written, and its exponent). The JSON Schema library turns every number a
// schema constrains into a big.Rat: an exponent math/big refuses (1e9999999) made it panic, on
// the caller's goroutine, and one just below that (1e999999) cost 35 ms of CPU, a million digits
// two seconds, so a few bytes of arguments from an agent could stop or stall the host. No
// connector reads such a number as a float64 anyway; a value outside these bounds is refused
// with a message saying so.
const (
	MaxNumberLength   = 400
	MaxNumberExponent = 400
)

// outsizedNumber reports whether v holds a number outside [MaxNumberLength] and
// [MaxNumberExponent] (or a float that is not finite), and the steps of its JSON pointer,
// innermost first. It allocates only when it finds one.
func outsizedNumber(v any) (steps []string, found bool) {
	switch x := v.(type) {
	case json.Number:
		return nil, !numberInBounds(string(x))
	case float64:
		return nil, math.IsInf(x, 0) || math.IsNaN(x)
	case float32:
		return nil, math.IsInf(float64(x), 0) || math.IsNaN(float64(x))
	case []any:
		for i, e := range x {
			if steps, found := outsizedNumber(e); found {
				return append(steps, strconv.Itoa(i)), true
			}
		}
	case map[string]any:
		for k, e := range x {
			if steps, found := outsizedNumber(e); found {
				return append(steps, k), true
			}
		}
	}
	return nil, false
}

// numberInBounds reports whether the JSON number n is at most MaxNumberLength bytes long and
// its exponent, if any (leading zeros allowed, as JSON allows them), at most MaxNumberExponent
// in magnitude.
func numberInBounds(n string) bool {
	if len(n) > MaxNumberLength {
		return false
	}
	i := strings.IndexAny(n, "eE")
	if i < 0 {
		return true
	}
	exp := strings.TrimLeft(strings.TrimLeft(n[i+1:], "+-"), "0")
	if len(exp) > 3 {
		return false
	}
	e, err := strconv.Atoi("0" + exp)
	return err == nil && e <= MaxNumberExponent
}

// ValidateJSON decodes data with [DecodeJSON] and validates the result. Malformed JSON is
// reported as an *[Error] too, so callers handle one error type.
func (s *Schema) ValidateJSON(data []byte) error {
	return s.validateJSON(data, false)
}

// ValidateInputJSON is [Schema.ValidateJSON] for a tool's arguments. It also refuses a key that
// is not a declared property of its object but equals one when case is ignored ("TEXT" beside
// or instead of "text"), in objects the schema declares properties for (through properties and
// items; not through $ref or combinators). A plugin that reads its arguments with Go's
// encoding/json, as the Extism Go PDK's users do, matches keys ignoring case, and the last one
// wins: it would act on a value the schema never checked (an undeclared key is only an
// additional property to the validator) and that an approver may have taken for an extra.
func (s *Schema) ValidateInputJSON(data []byte) error {
	return s.validateJSON(data, true)
}

func (s *Schema) validateJSON(data []byte, input bool) error {
	// The arguments of a tool without parameters, against a types-only schema: nothing to decode.
	if s.types&typeObject != 0 && string(trimJSONSpace(data)) == "{}" {
		return nil
	}
	v, err := DecodeJSON(data)
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			return &Error{Problems: []Problem{{Path: de.Path, Message: "not valid JSON: " + de.Msg}}}
		}
		return &Error{Problems: []Problem{{Message: "not valid JSON"}}}
	}
	if input {
		if steps, key, declared, found := caseVariant(v, s.doc); found {
			slices.Reverse(steps)
			return &Error{Problems: []Problem{{Path: pointer(append(steps, key)), Message: fmt.Sprintf(
				"%q differs from the declared property %q only by case: send %q alone (a connector may read either one)",
				key, declared, declared)}}}
		}
	}
	return s.Validate(v)
}

// caseVariant finds in v, described by the schema sch, an object key that is not one of the
// object's declared properties but equals one ignoring case (strings.EqualFold, as encoding/json
// matches). It returns the steps of the JSON pointer of the object holding it, innermost first
// (as outsizedNumber), the key and the property (the least such key of its object). It
// allocates only for the path of what it finds.
func caseVariant(v, sch any) (steps []string, key, declared string, found bool) {
	m, _ := sch.(map[string]any)
	if m == nil {
		return nil, "", "", false
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := m["properties"].(map[string]any)
		if len(props) == 0 {
			return nil, "", "", false
		}
		for k := range v {
			if _, ok := props[k]; ok {
				continue
			}
			for p := range props {
				if strings.EqualFold(k, p) && (!found || k < key) {
					key, declared, found = k, p, true
				}
			}
		}
		if found {
			return nil, key, declared, true
		}
		for k, val := range v {
			if steps, key, declared, found := caseVariant(val, props[k]); found {
				return append(steps, k), key, declared, true
			}
		}
	case []any:
		for i, e := range v {
			if steps, key, declared, found := caseVariant(e, m["items"]); found {
				return append(steps, strconv.Itoa(i)), key, declared, true
			}
		}
	}
	return nil, "", "", false
}

// trimJSONSpace returns data without the JSON whitespace (space, tab, CR, LF) around it.
func trimJSONSpace(data []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
	for len(data) > 0 && isSpace(data[0]) {
		data = data[1:]
	}
	for len(data) > 0 && isSpace(data[len(data)-1]) {
		data = data[:len(data)-1]
	}
	return data
}
