package validate

import (
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/suggest"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var printer = message.NewPrinter(language.English)

// problems flattens a validation error tree into agent-readable problems. doc is the decoded
// schema (for suggestions) and v the validated value (to tell array indexes from keys); either
// may be nil.
func problems(ve *jsonschema.ValidationError, doc, v any) []Problem {
	FixPropertyNames(ve, nil, v)
	var out []Problem
	collect(ve, doc, v, &out)
	return dedupe(out)
}

func dedupe(out []Problem) []Problem {
	// Drop exact duplicates (the same problem reached through two branches).
	seen := map[Problem]bool{}
	uniq := out[:0]
	for _, p := range out {
		if !seen[p] {
			seen[p] = true
			uniq = append(uniq, p)
		}
	}
	return uniq
}

func collect(e *jsonschema.ValidationError, doc, v any, out *[]Problem) {
	switch k := e.ErrorKind.(type) {
	case *kind.AnyOf:
		collectAlternatives(e, doc, v, out)
		return
	case *kind.OneOf:
		if len(k.Subschemas) == 0 {
			collectAlternatives(e, doc, v, out)
			return
		}
	case *kind.PropertyNames:
		// The causes describe the name, not a value: one problem says it all.
		*out = append(*out, leaf(e, doc, v)...)
		return
	}
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			collect(c, doc, v, out)
		}
		return
	}
	*out = append(*out, leaf(e, doc, v)...)
}

// collectAlternatives reports a failed anyOf/oneOf. When every alternative failed only on its
// type, one "must be X or Y" problem says it best; otherwise the alternative that got furthest
// into the value (the deepest problem, then the fewest problems) is the one the caller most
// likely meant.
func collectAlternatives(e *jsonschema.ValidationError, doc, v any, out *[]Problem) {
	if len(e.Causes) == 0 {
		*out = append(*out, leaf(e, doc, v)...)
		return
	}
	var want []string
	var got string
	onlyTypes := true
	type branch struct {
		probs    []Problem
		depth    int
		onlyType bool
	}
	var branches []branch
	for _, c := range e.Causes {
		var leaves []*jsonschema.ValidationError
		leavesOf(c, &leaves)
		b := branch{onlyType: true}
		for _, l := range leaves {
			t, ok := l.ErrorKind.(*kind.Type)
			if ok && len(l.InstanceLocation) == len(e.InstanceLocation) {
				want = append(want, t.Want...)
				got = t.Got
			} else {
				onlyTypes = false
				b.onlyType = false
			}
			b.depth = max(b.depth, len(l.InstanceLocation))
		}
		collect(c, doc, v, &b.probs)
		branches = append(branches, b)
	}
	if onlyTypes && len(want) > 0 {
		*out = append(*out, Problem{
			Path:    pointer(e.InstanceLocation),
			Message: fmt.Sprintf("%s must be %s (got %s)", name(e.InstanceLocation, v), typeList(want), article(got)),
		})
		return
	}
	sort.SliceStable(branches, func(i, j int) bool {
		bi, bj := branches[i], branches[j]
		if bi.onlyType != bj.onlyType {
			return !bi.onlyType
		}
		if bi.depth != bj.depth {
			return bi.depth > bj.depth
		}
		return len(bi.probs) < len(bj.probs)
	})
	*out = append(*out, branches[0].probs...)
}

func leavesOf(e *jsonschema.ValidationError, out *[]*jsonschema.ValidationError) {
	if len(e.Causes) == 0 {
		*out = append(*out, e)
		return
	}
	for _, c := range e.Causes {
		leavesOf(c, out)
	}
}

// leaf describes one error without causes.
func leaf(e *jsonschema.ValidationError, doc, v any) []Problem {
	loc := e.InstanceLocation
	at := func(format string, args ...any) []Problem {
		return []Problem{{Path: pointer(loc), Message: name(loc, v) + " " + fmt.Sprintf(format, args...)}}
	}
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		var ps []Problem
		for _, m := range k.Missing {
			p := append(append([]string(nil), loc...), m)
			ps = append(ps, Problem{Path: pointer(p), Message: name(p, v) + " is required"})
		}
		return ps
	case *kind.AdditionalProperties:
		known := propertyNames(doc, fragment(e.SchemaURL))
		var ps []Problem
		for _, f := range k.Properties {
			p := append(append([]string(nil), loc...), f)
			msg := "unknown field " + strconv.Quote(displayPath(p, v))
			if s := suggest.Closest(f, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else if len(known) > 0 && len(known) <= 12 {
				msg += " (known fields: " + strings.Join(known, ", ") + ")"
			}
			ps = append(ps, Problem{Path: pointer(p), Message: msg})
		}
		return ps
	case *kind.Type:
		return at("must be %s (got %s)", typeList(k.Want), article(k.Got))
	case *kind.Enum:
		if len(k.Want) == 1 {
			return at("must be %s (got %s)", display(k.Want[0]), display(k.Got))
		}
		return at("must be one of %s (got %s)", displayList(k.Want), display(k.Got))
	case *kind.Const:
		return at("must be %s (got %s)", display(k.Want), display(k.Got))
	case *kind.Minimum:
		return at("must be at least %s (got %s)", rat(k.Want), rat(k.Got))
	case *kind.Maximum:
		return at("must be at most %s (got %s)", rat(k.Want), rat(k.Got))
	case *kind.ExclusiveMinimum:
		return at("must be greater than %s (got %s)", rat(k.Want), rat(k.Got))
	case *kind.ExclusiveMaximum:
		return at("must be less than %s (got %s)", rat(k.Want), rat(k.Got))
	case *kind.MultipleOf:
		return at("must be a multiple of %s (got %s)", rat(k.Want), rat(k.Got))
	case *kind.MinLength:
		return at("must be at least %s long (got %d)", plural(k.Want, "character"), k.Got)
	case *kind.MaxLength:
		return at("must be at most %s long (got %d)", plural(k.Want, "character"), k.Got)
	case *kind.Pattern:
		return at("must match the pattern %s (got %s)", k.Want, display(k.Got))
	case *kind.MinItems:
		return at("must have at least %s (got %d)", plural(k.Want, "item"), k.Got)
	case *kind.MaxItems:
		return at("must have at most %s (got %d)", plural(k.Want, "item"), k.Got)
	case *kind.MinProperties:
		return at("must have at least %s (got %d)", plural(k.Want, "field"), k.Got)
	case *kind.MaxProperties:
		return at("must have at most %s (got %d)", plural(k.Want, "field"), k.Got)
	case *kind.UniqueItems:
		return at("must not contain duplicates (items %d and %d are equal)", k.Duplicates[0], k.Duplicates[1])
	case *kind.Format:
		return at("must be a valid %s (got %s)", k.Want, display(k.Got))
	case *kind.FalseSchema:
		return at("is not allowed")
	case *kind.Not:
		return at("is not allowed in this form")
	case *kind.PropertyNames:
		return at("has a field name that is not allowed: %q", truncate(k.Property))
	case *kind.DependentRequired:
		return at("needs %s when %q is present", strings.Join(quoteAll(k.Missing), ", "), k.Prop)
	case *kind.Dependency:
		return at("needs %s when %q is present", strings.Join(quoteAll(k.Missing), ", "), k.Prop)
	case *kind.AdditionalItems:
		return at("has too many items (the last %d are not allowed)", k.Count)
	case *kind.Contains:
		return at("must contain at least one matching item")
	case *kind.OneOf:
		return at("matches more than one of the allowed forms (%d and %d); make it match exactly one", k.Subschemas[0], k.Subschemas[1])
	case *kind.RefCycle:
		return at("cannot be validated: the schema has a $ref cycle")
	}
	return at("is invalid: %s", e.ErrorKind.LocalizedString(printer))
}

// name is how a message refers to the value at loc: `"limit"`, `"blocks[0].type"`, or
// "the value" for the root.
func name(loc []string, v any) string {
	if len(loc) == 0 {
		return "the value"
	}
	return strconv.Quote(displayPath(loc, v))
}

// displayPath renders loc as a.b[0].c, using v to tell array indexes from object keys.
func displayPath(loc []string, v any) string {
	var sb strings.Builder
	cur := v
	for i, tok := range loc {
		if arr, ok := cur.([]any); ok {
			sb.WriteString("[" + tok + "]")
			if n, err := strconv.Atoi(tok); err == nil && n >= 0 && n < len(arr) {
				cur = arr[n]
			} else {
				cur = nil
			}
			continue
		}
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(tok)
		if obj, ok := cur.(map[string]any); ok {
			cur = obj[tok]
		} else {
			cur = nil
		}
	}
	return sb.String()
}

// propertyNames returns the sorted names under "properties" of the schema at ptr in doc.
func propertyNames(doc any, ptr string) []string {
	cur := doc
	for _, tok := range splitPointer(ptr) {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[tok]
		case []any:
			n, err := strconv.Atoi(tok)
			if err != nil || n < 0 || n >= len(c) {
				return nil
			}
			cur = c[n]
		default:
			return nil
		}
	}
	obj, _ := cur.(map[string]any)
	props, _ := obj["properties"].(map[string]any)
	return sortedKeys(props)
}

func typeList(types []string) string {
	var words []string
	seen := map[string]bool{}
	for _, t := range types {
		if !seen[t] {
			seen[t] = true
			words = append(words, article(t))
		}
	}
	switch len(words) {
	case 0:
		return "a different type"
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func article(jsonType string) string {
	switch jsonType {
	case "integer", "object", "array":
		return "an " + jsonType
	case "null":
		return "null"
	}
	return "a " + jsonType
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

func rat(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// display renders a JSON value briefly: strings quoted and truncated, containers by kind.
func display(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(truncate(v))
	case json.Number:
		return truncate(v.String())
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	default:
		return truncate(fmt.Sprint(v))
	}
}

func displayList(vs []any) string {
	const maxShown = 20
	var parts []string
	for i, v := range vs {
		if i == maxShown {
			parts = append(parts, fmt.Sprintf("… (%d more)", len(vs)-maxShown))
			break
		}
		parts = append(parts, display(v))
	}
	return strings.Join(parts, ", ")
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

// truncate shortens s to 40 runes, so an error never echoes a large value.
func truncate(s string) string {
	const maxRunes = 40
	if utf8.RuneCountInString(s) <= maxRunes {
		return s
	}
	n := 0
	for i := range s {
		if n == maxRunes {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// FixPropertyNames gives each propertyNames error under e the location of its object in v (the
// value e is about): the library validates the name as a value of its own, so the error's
// location is empty. The object is the first one under the parent error's location that has
// the offending key. The manifest checker (host/manifest) uses it on its own documents.
func FixPropertyNames(e *jsonschema.ValidationError, parent []string, v any) {
	if k, ok := e.ErrorKind.(*kind.PropertyNames); ok {
		if loc, found := findKey(valueAtPath(v, parent), k.Property, parent); found {
			e.InstanceLocation = loc
		} else {
			e.InstanceLocation = parent
		}
	}
	for _, c := range e.Causes {
		FixPropertyNames(c, e.InstanceLocation, v)
	}
}

func valueAtPath(v any, path []string) any {
	for _, tok := range path {
		switch c := v.(type) {
		case map[string]any:
			v = c[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// findKey returns the path of the first object in v (depth first, keys sorted) with key.
func findKey(v any, key string, path []string) ([]string, bool) {
	switch c := v.(type) {
	case map[string]any:
		if _, ok := c[key]; ok {
			return path, true
		}
		for _, k := range sortedKeys(c) {
			if p, ok := findKey(c[k], key, append(path[:len(path):len(path)], k)); ok {
				return p, true
			}
		}
	case []any:
		for i, e := range c {
			if p, ok := findKey(e, key, append(path[:len(path):len(path)], strconv.Itoa(i))); ok {
				return p, true
			}
		}
	}
	return nil, false
}
