package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v4"

	"github.com/airlock-dev/airlock/internal/suggest"
)

// defaultConfig is the configuration file read when neither --config nor $AIRLOCK_CONFIG names one.
const defaultConfig = "airlock.yaml"

// configPath returns the configuration file to read and whether it must exist. With no --config
// and no $AIRLOCK_CONFIG it is airlock.yaml in the working directory or, when that does not
// exist, airlock.yml; both at once is an error (which one would the admin be editing?). A file
// whose name is close (Airlock.yaml, airlock.yaml.txt, airlock.json) is reported once, as a
// warning: it is not read.
func (g *globals) configPath() (path string, required bool, err error) {
	if g.config != defaultConfig || os.Getenv("AIRLOCK_CONFIG") != "" {
		return g.config, true, nil
	}
	_, errYAML := os.Stat(defaultConfig)
	_, errYML := os.Stat("airlock.yml")
	switch {
	case errYAML == nil && errYML == nil:
		return "", false, errors.New("both airlock.yaml and airlock.yml are here: keep one (airlock reads airlock.yaml, or airlock.yml when it is alone)")
	case errYML == nil:
		return "airlock.yml", true, nil
	case errYAML == nil:
		return defaultConfig, true, nil
	}
	g.warnOnce.Do(func() {
		if near := nearConfigNames("."); len(near) > 0 && g.notice != nil {
			banner(g, g.notice, fmt.Sprintf("airlock: no airlock.yaml here, so no connector is configured; %s is not read: rename it to airlock.yaml, or pass --config %[1]s", near[0]), "found", near)
		}
	})
	return defaultConfig, false, nil
}

// nearConfigNames lists the files of dir whose names look like a misspelt airlock.yaml.
func nearConfigNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var near []string
	for _, e := range entries {
		name := strings.ToLower(e.Name())
		if e.IsDir() || e.Name() == defaultConfig || e.Name() == "airlock.yml" {
			continue
		}
		base := strings.TrimPrefix(name, ".")
		stem, _, _ := strings.Cut(base, ".")
		ext := strings.TrimPrefix(base, stem)
		if (stem == "airlock" || suggest.Closest(stem, []string{"airlock"}) != "") && ext != "" &&
			(strings.Contains(ext, ".y") || ext == ".json" || ext == ".toml" || ext == ".conf") {
			near = append(near, e.Name())
		}
	}
	return near
}

// decodeConfig decodes the configuration file data into cfg. Mistakes are reported as
// FILE:LINE: what to change — a YAML syntax error at the line it is on, an unknown key with the
// known key it is closest to, a value of the wrong kind with the kind wanted — never with Go
// type names.
func decodeConfig(file string, data []byte, cfg *fileConfig) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return configSyntaxError(file, data, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file: the defaults
	}
	c := configChecker{file: file}
	c.check(doc.Content[0], reflect.TypeFor[fileConfig](), "")
	if len(c.errs) > 0 {
		slices.SortStableFunc(c.errs, func(a, b configError) int { return a.line - b.line })
		msgs := make([]string, len(c.errs))
		for i, e := range c.errs {
			msgs[i] = e.msg
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	if err := doc.Content[0].Decode(cfg); err != nil {
		return configSyntaxError(file, data, err)
	}
	return nil
}

// configSyntaxError turns the YAML library's error into FILE:LINE: messages.
func configSyntaxError(file string, data []byte, err error) error {
	var le *yaml.LoadError
	var les *yaml.LoadErrors
	switch {
	case errors.As(err, &le):
		msg, line := le.Message, le.Mark.Line
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		line = min(line, len(lines)) // the end of the file is on its last line, not past it
		if le.ContextMsg != "" && le.ContextMark.Line != le.Mark.Line && le.ContextMark.Line > 0 {
			msg += fmt.Sprintf(" (%s that starts on line %d)", strings.TrimPrefix(le.ContextMsg, "while "), le.ContextMark.Line)
		}
		if line >= 1 && strings.Contains(lines[line-1], "\t") {
			msg += ": this line has a tab; indent YAML with spaces"
		}
		return fmt.Errorf("%s:%d: not valid YAML: %s", file, line, msg)
	case errors.As(err, &les):
		var msgs []string
		for _, e := range les.Errors {
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s", file, e.Mark.Line, e.Message))
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	return fmt.Errorf("%s: not valid YAML: %w", file, err)
}

// configChecker checks a YAML node tree against the Go type it will be decoded into, in the
// words of the file (keys, lists, numbers), collecting every mistake.
type configChecker struct {
	file string
	errs []configError
}

type configError struct {
	line int
	msg  string
}

func (c *configChecker) errorf(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	c.errs = append(c.errs, configError{n.Line, fmt.Sprintf("%s:%d: %s", c.file, n.Line, msg)})
}

func (c *configChecker) check(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value: the default
	}
	switch {
	case t == reflect.TypeFor[time.Duration]():
		if _, err := time.ParseDuration(n.Value); n.Kind != yaml.ScalarNode || err != nil {
			c.errorf(n, path, "want a duration such as 30s, 10m or 1h30m, got %s", describeNode(n))
		}
	case t.Kind() == reflect.Struct:
		keys, types, required := yamlKeys(t)
		if n.Kind != yaml.MappingNode {
			c.errorf(n, path, "want keys (%s), got %s", strings.Join(keys, ", "), describeNode(n))
			return
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if first, dup := seen[k.Value]; dup {
				c.errorf(k, path, "key %q appears twice (first on line %d): keep one", k.Value, first)
				continue
			}
			seen[k.Value] = k.Line
			if v.Tag == "!!null" && slices.Contains(required, k.Value) {
				c.errorf(k, path, "%s needs a value", k.Value)
				continue
			}
			ft, ok := types[k.Value]
			if !ok {
				msg := fmt.Sprintf("unknown key %q", k.Value)
				if s := suggest.Closest(k.Value, keys); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				} else {
					msg += " (known keys: " + strings.Join(keys, ", ") + "; see 'airlock help tools')"
				}
				c.errorf(k, path, "%s", msg)
				continue
			}
			c.check(v, ft, strings.TrimPrefix(path+"."+k.Value, "."))
		}
		for _, r := range required {
			if _, ok := seen[r]; !ok {
				c.errorf(n, path, "missing key %q", r)
			}
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.errorf(n, path, "want a list (items on lines starting with -, or [a, b]), got %s", describeNode(n))
			return
		}
		for i, item := range n.Content {
			c.check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			c.errorf(n, path, "want a string, got %s", describeNode(n))
		}
	case t.Kind() == reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			c.errorf(n, path, "want true or false, got %s", describeNode(n))
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			c.errorf(n, path, "want a whole number, got %s", describeNode(n))
		}
	}
}

// yamlKeys returns a struct's YAML keys in declaration order, their types, and the keys a
// `required:"true"` tag marks.
func yamlKeys(t reflect.Type) (keys []string, types map[string]reflect.Type, required []string) {
	types = map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		keys = append(keys, name)
		types[name] = f.Type
		if f.Tag.Get("required") == "true" {
			required = append(required, name)
		}
	}
	return keys, types, required
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "keys"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// whyNoTools says why a host on this configuration has no tool, for 'airlock serve'.
func (g *globals) whyNoTools(cfg *fileConfig) string {
	if len(cfg.Connectors) > 0 {
		return "no tool of the configured connectors is granted (see 'airlock grants')"
	}
	path, _, _ := g.configPath()
	if _, err := os.Stat(path); err != nil {
		dir, _ := os.Getwd()
		return fmt.Sprintf("there is no configuration file (no %s in %s, no --config, no $AIRLOCK_CONFIG) and no connector is granted in the state store", path, dir)
	}
	return fmt.Sprintf("%s names no connector and no connector is granted in the state store", path)
}
