package openapi

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Bounds of one tool's schema.
const (
	maxDefs  = 256 // distinct referenced schemas in one tool's schema
	maxDepth = 24  // nesting of inline schemas (a $ref starts again at 0 in $defs)
)

// converter turns OpenAPI schemas into JSON Schema 2020-12. Component $refs become entries of
// $defs, referenced as #/$defs/NAME, so a recursive schema stays finite; inline nesting past
// maxDepth becomes {} (any value), which the host then does not constrain.
type converter struct {
	defs    map[string]any // $defs entries, by key
	keyOf   map[string]string
	request bool // readOnly properties dropped (request) or writeOnly ones (response)
	loosen  bool // response schemas: no required, no additionalProperties: false
	err     error
}

func newConverter(request bool) *converter {
	return &converter{defs: map[string]any{}, keyOf: map[string]string{}, request: request, loosen: !request}
}

var defKeyUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// ref returns the $defs reference for a named schema, converting it the first time.
func (c *converter) ref(sr *openapi3.SchemaRef) map[string]any {
	key, ok := c.keyOf[sr.Ref]
	if !ok {
		name := sr.Ref
		if i := strings.LastIndex(name, "/"); i >= 0 {
			name = name[i+1:]
		}
		name = defKeyUnsafe.ReplaceAllString(name, "_")
		if name == "" {
			name = "schema"
		}
		key = name
		for n := 2; c.defs[key] != nil; n++ {
			key = fmt.Sprintf("%s_%d", name, n)
		}
		if len(c.defs) >= maxDefs {
			if c.err == nil {
				c.err = fmt.Errorf("its schema references more than %d distinct schemas", maxDefs)
			}
			return map[string]any{}
		}
		c.keyOf[sr.Ref] = key
		c.defs[key] = map[string]any{} // placeholder: a cycle back to it now resolves
		c.defs[key] = c.value(sr.Value, 0)
	}
	return map[string]any{"$ref": "#/$defs/" + key}
}

// schema converts a schema or reference at the given inline depth.
func (c *converter) schema(sr *openapi3.SchemaRef, depth int) map[string]any {
	if sr == nil || sr.Value == nil {
		return map[string]any{}
	}
	if sr.Ref != "" {
		return c.ref(sr)
	}
	return c.value(sr.Value, depth)
}

func (c *converter) value(s *openapi3.Schema, depth int) map[string]any {
	out := map[string]any{}
	if s == nil {
		return out
	}
	if depth > maxDepth {
		out["description"] = "(nested too deeply to describe here)"
		return out
	}
	if s.Always != nil {
		if !*s.Always {
			return map[string]any{"not": map[string]any{}}
		}
		return out
	}
	if s.Type != nil && len(*s.Type) > 0 {
		types := append([]string(nil), (*s.Type)...)
		types = filterTypes(types)
		if s.Nullable && !contains(types, "null") {
			types = append(types, "null")
		}
		if len(types) == 1 {
			out["type"] = types[0]
		} else if len(types) > 1 {
			out["type"] = types
		}
	}
	if s.Title != "" {
		out["title"] = cleanText(s.Title, 120)
	}
	if s.Description != "" {
		out["description"] = cleanText(s.Description, 300)
	}
	if s.Format != "" {
		out["format"] = s.Format
	}
	if len(s.Enum) > 0 {
		enum := append([]any(nil), s.Enum...)
		if s.Nullable && !containsAny(enum, nil) {
			enum = append(enum, nil)
		}
		out["enum"] = enum
	}
	if s.Const != nil {
		out["const"] = s.Const
	}
	if s.Default != nil {
		out["default"] = s.Default
	}
	if len(s.Examples) > 0 {
		out["examples"] = s.Examples
	} else if s.Example != nil {
		out["examples"] = []any{s.Example}
	}
	// numbers: OpenAPI 3.0's boolean exclusive bounds become 2020-12 numbers
	if s.Min != nil {
		if s.ExclusiveMin.Bool != nil && *s.ExclusiveMin.Bool {
			out["exclusiveMinimum"] = *s.Min
		} else {
			out["minimum"] = *s.Min
		}
	}
	if s.Max != nil {
		if s.ExclusiveMax.Bool != nil && *s.ExclusiveMax.Bool {
			out["exclusiveMaximum"] = *s.Max
		} else {
			out["maximum"] = *s.Max
		}
	}
	if s.ExclusiveMin.Value != nil {
		out["exclusiveMinimum"] = *s.ExclusiveMin.Value
	}
	if s.ExclusiveMax.Value != nil {
		out["exclusiveMaximum"] = *s.ExclusiveMax.Value
	}
	if s.MultipleOf != nil {
		out["multipleOf"] = *s.MultipleOf
	}
	if s.MinLength > 0 {
		out["minLength"] = s.MinLength
	}
	if s.MaxLength != nil {
		out["maxLength"] = *s.MaxLength
	}
	if s.Pattern != "" {
		// The host compiles patterns as Go RE2; an ECMA-only pattern (lookaround, backreference)
		// is dropped rather than refusing the tool.
		if _, err := regexp.Compile(s.Pattern); err == nil {
			out["pattern"] = s.Pattern
		}
	}
	if s.Items != nil {
		out["items"] = c.schema(s.Items, depth+1)
	}
	if len(s.PrefixItems) > 0 {
		out["prefixItems"] = c.list(s.PrefixItems, depth)
	}
	if s.MinItems > 0 {
		out["minItems"] = s.MinItems
	}
	if s.MaxItems != nil {
		out["maxItems"] = *s.MaxItems
	}
	if s.UniqueItems {
		out["uniqueItems"] = true
	}
	if len(s.Properties) > 0 {
		props := map[string]any{}
		var dropped []string
		for name, p := range s.Properties {
			if p != nil && p.Value != nil && (c.request && p.Value.ReadOnly || !c.request && p.Value.WriteOnly) {
				dropped = append(dropped, name)
				continue
			}
			props[name] = c.schema(p, depth+1)
		}
		out["properties"] = props
		if req := without(s.Required, dropped); len(req) > 0 && !c.loosen {
			out["required"] = req
		}
	} else if len(s.Required) > 0 && !c.loosen {
		out["required"] = s.Required
	}
	if s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has {
		if !c.loosen {
			out["additionalProperties"] = false
		}
	} else if s.AdditionalProperties.Schema != nil {
		out["additionalProperties"] = c.schema(s.AdditionalProperties.Schema, depth+1)
	}
	if s.MinProps > 0 {
		out["minProperties"] = s.MinProps
	}
	if s.MaxProps != nil {
		out["maxProperties"] = *s.MaxProps
	}
	if len(s.PatternProperties) > 0 {
		pp := map[string]any{}
		for pat, p := range s.PatternProperties {
			if _, err := regexp.Compile(pat); err == nil {
				pp[pat] = c.schema(p, depth+1)
			}
		}
		out["patternProperties"] = pp
	}
	for kw, list := range map[string]openapi3.SchemaRefs{"allOf": s.AllOf, "anyOf": s.AnyOf, "oneOf": s.OneOf} {
		if len(list) > 0 {
			out[kw] = c.list(list, depth)
		}
	}
	if s.Not != nil {
		out["not"] = c.schema(s.Not, depth+1)
	}
	for kw, sub := range map[string]*openapi3.SchemaRef{"if": s.If, "then": s.Then, "else": s.Else, "contains": s.Contains, "propertyNames": s.PropertyNames} {
		if sub != nil {
			out[kw] = c.schema(sub, depth+1)
		}
	}
	return out
}

func (c *converter) list(refs openapi3.SchemaRefs, depth int) []any {
	out := make([]any, 0, len(refs))
	for _, r := range refs {
		out = append(out, c.schema(r, depth+1))
	}
	return out
}

// filterTypes drops OpenAPI-only types (Swagger 2.0 "file") that JSON Schema has no name for.
func filterTypes(types []string) []string {
	out := types[:0]
	for _, t := range types {
		switch t {
		case "string", "number", "integer", "boolean", "array", "object", "null":
			out = append(out, t)
		case "file":
			out = append(out, "string")
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsAny(list []any, v any) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func without(list, drop []string) []string {
	var out []string
	for _, s := range list {
		if !contains(drop, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

var (
	htmlTag    = regexp.MustCompile(`<[^>]{0,200}>`)
	mdLink     = regexp.MustCompile(`\[([^\]]{1,200})\]\([^)]{0,500}\)`)
	whitespace = regexp.MustCompile(`\s+`)
)

// cleanText makes description text fit for an LLM: no HTML tags, markdown links reduced to
// their text, whitespace collapsed, cut at a sentence end near n characters.
func cleanText(s string, n int) string {
	s = htmlTag.ReplaceAllString(s, " ")
	s = mdLink.ReplaceAllString(s, "$1")
	for _, e := range [][2]string{{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", `"`}, {"&#39;", "'"}, {"&nbsp;", " "}, {"&amp;", "&"}} {
		s = strings.ReplaceAll(s, e[0], e[1])
	}
	s = strings.TrimSpace(whitespace.ReplaceAllString(s, " "))
	if len(s) <= n {
		return s
	}
	cut := s[:n]
	if i := strings.LastIndex(cut, ". "); i > n/2 {
		return cut[:i+1]
	}
	for len(cut) > 0 && cut[len(cut)-1]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut = cut[:len(cut)-1]
	}
	if len(cut) > 0 && cut[len(cut)-1] >= 0xC0 {
		cut = cut[:len(cut)-1]
	}
	return strings.TrimSpace(cut) + "…"
}
