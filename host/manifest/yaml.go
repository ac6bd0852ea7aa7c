package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize is the largest manifest or grant file accepted, in bytes (1 MiB).
const MaxFileSize = 1 << 20

// maxYAMLDepth bounds the nesting of a manifest: the file's own structure plus a tool schema of
// validate.DefaultMaxDepth levels fits well within it.
const maxYAMLDepth = 100

// document is a YAML file converted to JSON-compatible values (nil, bool, json.Number, string,
// []any, map[string]any), remembering the YAML node of every value for error lines.
type document struct {
	file  string
	value any
	nodes map[string]*yaml.Node // JSON pointer -> value node
	keys  map[string]*yaml.Node // JSON pointer -> key node (mapping values only)
	errs  []*Error
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML reads one YAML document strictly. It returns errors (never a partial document) when
// the file is too big, not UTF-8, not YAML, holds several documents, or uses anchors, aliases,
// merge keys, custom tags or duplicate keys.
func parseYAML(file string, data []byte, what string) (*document, error) {
	d := &document{file: file, nodes: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
	if len(data) > MaxFileSize {
		return nil, d.errorf(0, "", "the file is %d bytes; a %s may be at most %d bytes (1 MiB)", len(data), what, MaxFileSize)
	}
	if !utf8.Valid(data) {
		return nil, d.errorf(0, "", "the file is not valid UTF-8")
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, d.errorf(0, "", "the file contains a NUL byte")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, d.errorf(0, "", "the file is empty: expected a %s (see manifests/FORMAT.md)", what)
		}
		return nil, d.yamlError(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, d.yamlError(err)
	default:
		return nil, d.errorf(next.Line, "", "a second YAML document (after ---): keep one %s per file", what)
	}
	n := &root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil, d.errorf(n.Line, "", "expected a mapping of keys such as name: and tools:, got %s", nodeKind(n))
	}
	d.value = d.convert(n, nil, nil, 0)
	if err := result(d.errs); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *document) yamlError(err error) error {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return d.errorf(line, "", "not valid YAML: %s", msg)
}

func (d *document) errorf(line int, path, format string, args ...any) *Error {
	return &Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)}
}

func (d *document) fail(n *yaml.Node, path []string, format string, args ...any) {
	if len(d.errs) < maxErrors+1 {
		d.errs = append(d.errs, d.errorf(n.Line, d.display(path), format, args...))
	}
}

// convert turns n into a JSON-compatible value, recording nodes by pointer.
func (d *document) convert(n, key *yaml.Node, path []string, depth int) any {
	ptr := jsonPointer(path)
	d.nodes[ptr] = n
	if key != nil {
		d.keys[ptr] = key
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.fail(n, path, "YAML anchors (&name) and aliases (*name) are not allowed: write the value out in full")
		return nil
	}
	if depth > maxYAMLDepth {
		d.fail(n, path[:4], "nested deeper than %d levels", maxYAMLDepth)
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		obj := make(map[string]any, len(n.Content)/2)
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Anchor != "" {
				d.fail(k, path, "a mapping key must be a plain string")
				continue
			}
			if k.ShortTag() == "!!merge" {
				d.fail(k, path, "merge keys (<<) are not allowed: write the keys out in full")
				continue
			}
			if first, dup := seen[k.Value]; dup {
				d.fail(k, path, "duplicate key %q (first at line %d): remove one", k.Value, first.Line)
				continue
			}
			seen[k.Value] = k
			obj[k.Value] = d.convert(v, k, append(path, k.Value), depth+1)
		}
		return obj
	case yaml.SequenceNode:
		arr := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			arr = append(arr, d.convert(e, nil, append(path, strconv.Itoa(i)), depth+1))
		}
		return arr
	case yaml.ScalarNode:
		return d.scalar(n, path)
	}
	d.fail(n, path, "unexpected YAML node")
	return nil
}

func (d *document) scalar(n *yaml.Node, path []string) any {
	switch tag := n.ShortTag(); tag {
	case "!!str", "!!timestamp":
		return n.Value
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			d.fail(n, path, "%q is not a boolean", n.Value)
		}
		return b
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return json.Number(strconv.FormatInt(i, 10))
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			return json.Number(strconv.FormatUint(u, 10))
		}
		d.fail(n, path, "integer %s is out of range", n.Value)
		return nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			d.fail(n, path, "%s is not a finite number", n.Value)
			return nil
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
	default:
		d.fail(n, path, "YAML tag %s is not allowed: write a plain string, number, boolean, list or mapping", tag)
		return nil
	}
}

// line returns the line for a JSON pointer given as tokens: the key's line for a mapping value,
// the value's line otherwise, falling back to the nearest ancestor that exists.
func (d *document) line(path []string) int {
	for i := len(path); i >= 0; i-- {
		ptr := jsonPointer(path[:i])
		if k, ok := d.keys[ptr]; ok {
			return k.Line
		}
		if n, ok := d.nodes[ptr]; ok {
			return n.Line
		}
	}
	return 0
}

// display renders tokens as tools[1].input_schema, telling list indexes from keys by the nodes.
func (d *document) display(path []string) string {
	var sb strings.Builder
	for i, tok := range path {
		parent := d.nodes[jsonPointer(path[:i])]
		if parent != nil && parent.Kind == yaml.SequenceNode {
			sb.WriteString("[" + tok + "]")
			continue
		}
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(tok)
	}
	return sb.String()
}

// at is fail by path: an error at the line of path.
func (d *document) at(path []string, format string, args ...any) *Error {
	return d.errorf(d.line(path), d.display(path), format, args...)
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
	}
	return "an alias"
}

func jsonPointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		sb.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return sb.String()
}

func splitPointer(ptr string) []string {
	if ptr == "" {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	for i, p := range parts {
		p = strings.ReplaceAll(p, "~1", "/")
		parts[i] = strings.ReplaceAll(p, "~0", "~")
	}
	return parts
}
