package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/host/internal/validate"
	"github.com/airlock-dev/airlock/internal/abi"
)

// Load reads and parses the manifest at path. Module paths resolve against its directory.
func Load(path string) (*Manifest, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// readFile reads at most MaxFileSize+1 bytes, so a huge file is refused without reading it all.
func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return data, nil
}

// Parse parses a manifest. filename names the file in errors and sets Dir (its directory); data
// is the YAML. The error is nil, an *Error or an ErrorList.
func Parse(filename string, data []byte) (*Manifest, error) {
	d, err := parseYAML(filename, data, "manifest")
	if err != nil {
		return nil, err
	}
	if errs := d.validateFormat(manifestSchema()); len(errs) > 0 {
		return nil, result(errs)
	}
	m, err := d.decodeManifest()
	if err != nil {
		return nil, err
	}
	m.Dir = filepath.Dir(filename)
	if errs := d.check(m); len(errs) > 0 {
		return nil, result(errs)
	}
	return m, nil
}

// decodeManifest turns a schema-valid document into a Manifest with defaults applied.
func (d *document) decodeManifest() (*Manifest, error) {
	// Settings are strings; a YAML number or boolean is taken as written.
	d.stringifyScalars("config", "default")
	data, err := json.Marshal(d.value)
	if err != nil {
		return nil, d.errorf(0, "", "%v", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		// The schema admits only what the structs accept, so this is a bug in the schema.
		return nil, d.errorf(0, "", "internal error: %v", err)
	}
	m.Limits = m.Limits.WithDefaults()
	for i := range m.Tools {
		t := &m.Tools[i]
		if t.Export == "" {
			t.Export = t.Name
			if t.Function != "" {
				t.Export = "run"
			}
		}
	}
	for i := range m.Network {
		r := &m.Network[i]
		if r.Scheme == "" {
			r.Scheme = "https"
		}
		if r.Port == 0 {
			r.Port = 443
			if r.Scheme == "http" {
				r.Port = 80
			}
		}
		if r.PathPrefix == "" {
			r.PathPrefix = "/"
		}
		if len(r.Methods) == 0 {
			r.Methods = []string{"GET"}
		}
	}
	for i := range m.Credentials {
		c := &m.Credentials[i]
		if c.Kind == KindAPIKey && c.In == "" {
			c.In = "header"
		}
	}
	return &m, nil
}

// stringifyScalars replaces the number or boolean at list[i].key (or, with key "", at
// list.key) by its text as written in the YAML file.
func (d *document) stringifyScalars(list, key string) {
	obj, _ := d.value.(map[string]any)
	items, _ := obj[list].([]any)
	for i, it := range items {
		m, _ := it.(map[string]any)
		if _, ok := m[key]; !ok {
			continue
		}
		if _, isString := m[key].(string); !isString {
			m[key] = d.nodes[jsonPointer([]string{list, strconv.Itoa(i), key})].Value
		}
	}
}

// check applies the rules a JSON Schema cannot express and compiles the tool schemas.
func (d *document) check(m *Manifest) []*Error {
	var errs []*Error
	add := func(path []string, format string, args ...any) {
		errs = append(errs, d.at(path, format, args...))
	}
	p := func(tokens ...any) []string {
		out := make([]string, len(tokens))
		for i, t := range tokens {
			out[i] = fmt.Sprint(t)
		}
		return out
	}

	if m.ABI != abi.Version {
		add(p("abi"), "the module was built for ABI version %d but this airlock implements version %d: rebuild the plugin with a matching pdk, or use an airlock that supports ABI %d", m.ABI, abi.Version, m.ABI)
	}
	if msg := checkModulePath(m.Module.Path); msg != "" {
		add(p("module", "path"), "%s", msg)
	}

	// Unique names.
	unique := func(list string, n int, field func(int) string, what string) {
		first := map[string]int{}
		for i := range n {
			v := field(i)
			if j, dup := first[v]; dup {
				add(p(list, i, what), "%s %q is already used by %s[%d]: names must be unique", what, v, list, j)
				continue
			}
			first[v] = i
		}
	}
	unique("tools", len(m.Tools), func(i int) string { return m.Tools[i].Name }, "name")
	unique("credentials", len(m.Credentials), func(i int) string { return m.Credentials[i].Name }, "name")
	unique("config", len(m.Config), func(i int) string { return m.Config[i].Name }, "name")
	exports := map[string]int{}
	for i, t := range m.Tools {
		if t.Function != "" {
			if _, ok := m.Function(t.Function); !ok {
				add(p("tools", i, "function"), "%q is not a function declared under database.functions (declared: %s)", t.Function, m.functionNames())
			}
			continue // function tools share the thin plugin's export
		}
		if j, dup := exports[t.Export]; dup && m.Tools[j].Name != t.Name {
			field := "export"
			if _, explicit := d.nodes[jsonPointer(p("tools", i, "export"))]; !explicit {
				field = "name"
			}
			add(p("tools", i, field), "export %q is already used by tools[%d] (%s): each tool needs its own export", t.Export, j, m.Tools[j].Name)
			continue
		}
		exports[t.Export] = i
	}

	bindUses(m, add)
	errs = append(errs, d.checkConfigValues(m)...)

	// Network rules and credentials.
	for i, r := range m.Network {
		if msg := checkHost(r.Host); msg != "" {
			add(p("network", i, "host"), "%s", msg)
		}
		if hasDotDot(r.PathPrefix) {
			add(p("network", i, "path_prefix"), "%q contains a '..' segment: write the prefix without it", r.PathPrefix)
		}
	}
	for i, c := range m.Credentials {
		switch {
		case IsOAuth(c.Kind) && c.OAuth == nil:
			add(p("credentials", i, "kind"), "kind %s needs an oauth section with at least token_url", c.Kind)
		case !IsOAuth(c.Kind) && c.OAuth != nil:
			add(p("credentials", i, "oauth"), "only the oauth2_* kinds use oauth: remove it, or set an OAuth kind")
		case c.OAuth != nil:
			for _, u := range []struct{ field, value string }{{"token_url", c.OAuth.TokenURL}, {"authorize_url", c.OAuth.AuthorizeURL}, {"revocation_url", c.OAuth.RevocationURL}} {
				if u.value == "" {
					continue
				}
				if msg := checkEndpoint(u.value); msg != "" {
					add(p("credentials", i, "oauth", u.field), "%s", msg)
				}
			}
			if c.Kind == KindOAuth2AuthorizationCode && c.OAuth.AuthorizeURL == "" {
				add(p("credentials", i, "oauth"), "kind oauth2_authorization_code needs authorize_url, where the user signs in")
			}
			if c.Kind != KindOAuth2AuthorizationCode && c.OAuth.AuthorizeURL != "" {
				add(p("credentials", i, "oauth", "authorize_url"), "only kind oauth2_authorization_code uses authorize_url: remove it")
			}
			if c.Kind != KindOAuth2AuthorizationCode && c.OAuth.RevocationURL != "" {
				add(p("credentials", i, "oauth", "revocation_url"), "only kind oauth2_authorization_code uses revocation_url (disconnecting an account revokes its tokens there): remove it")
			}
			if c.Kind != KindOAuth2JWTBearer && c.OAuth.Audience != "" {
				add(p("credentials", i, "oauth", "audience"), "only kind oauth2_jwt_bearer uses audience: remove it")
			}
		}
		if c.Kind != KindAPIKey {
			for _, field := range []string{"in", "param"} {
				if _, set := d.nodes[jsonPointer(p("credentials", i, field))]; set {
					add(p("credentials", i, field), "only kind api_key uses %s: remove it, or set kind: api_key", field)
				}
			}
		}
		for j, h := range c.Hosts {
			if msg := checkHost(h); msg != "" {
				add(p("credentials", i, "hosts", j), "%s", msg)
				continue
			}
			covered := false
			for _, r := range m.Network {
				if r.MatchHost(h) {
					covered = true
					break
				}
			}
			if !covered {
				add(p("credentials", i, "hosts", j), "host %q is not covered by any network rule: add a network rule for it, or remove it from the credential's hosts", h)
			}
		}
	}

	// Database functions.
	if m.Database != nil {
		unique := map[string]int{}
		for i := range m.Database.Functions {
			f := &m.Database.Functions[i]
			if j, dup := unique[f.Name]; dup {
				add(p("database", "functions", i, "name"), "name %q is already used by database.functions[%d]: names must be unique", f.Name, j)
			}
			unique[f.Name] = i
			seen := map[string]bool{}
			f.params = make([]*validate.Schema, len(f.Params))
			for j, prm := range f.Params {
				if seen[prm.Name] {
					add(p("database", "functions", i, "params", j, "name"), "parameter %q is declared twice", prm.Name)
				}
				seen[prm.Name] = true
				if len(prm.Schema) == 0 {
					continue
				}
				what := fmt.Sprintf("the schema of parameter %s of database function %s", prm.Name, f.Name)
				if strict := d.checkSchemaKeywords(p("database", "functions", i, "params", j, "schema"), what); len(strict) > 0 {
					errs = append(errs, strict...)
					continue
				}
				compiled, err := validate.Compile(prm.Schema, nil)
				if err != nil {
					add(p("database", "functions", i, "params", j, "schema"), "%v", err)
					continue
				}
				f.params[j] = compiled
			}
			if f.Mongo != nil {
				if f.Redis != nil {
					add(p("database", "functions", i), "declares both mongo and redis: a function is one SQL statement, one Redis command or one MongoDB operation")
				}
				errs = append(errs, d.checkMongo(i, f)...)
				continue
			}
			if f.Redis != nil {
				f.Redis.Command = strings.ToUpper(f.Redis.Command)
				for _, e := range f.RedisProblems() {
					add(p("database", "functions", i, "redis"), "%s", e)
				}
				continue
			}
			if f.SQL == "" {
				add(p("database", "functions", i), "declares none of sql, redis or mongo: a function is one SQL statement, one Redis command or one MongoDB operation")
				continue
			}
			if n := Statements(f.SQL); n != 1 {
				add(p("database", "functions", i, "sql"), "holds %d statements: a database function is exactly one statement (split it into several functions; a write that needs several steps belongs in one statement, e.g. a data-modifying WITH, or a database procedure)", n)
			}
			switch n := maxPlaceholder(f.SQL); {
			case n == len(f.Params):
			case n == 0:
				add(p("database", "functions", i, "sql"), "the statement uses no $N parameters but %d are declared under params: remove them, or use $1 … in the statement", len(f.Params))
			default:
				add(p("database", "functions", i, "sql"), "the statement uses parameters up to $%d but %d are declared under params: declare one entry per $N, in order", n, len(f.Params))
			}
		}
	}

	// Tool schemas.
	for i := range m.Tools {
		t := &m.Tools[i]
		for _, s := range []struct {
			field    string
			raw      json.RawMessage
			compiled **validate.Schema
		}{
			{"input_schema", t.InputSchema, &t.input},
			{"output_schema", t.OutputSchema, &t.output},
		} {
			if len(s.raw) == 0 {
				continue
			}
			base := p("tools", i, s.field)
			if ty, _ := lookup(valueAt(d.value, base), "/type").(string); ty != "object" {
				add(base, "must have type: object (tool arguments and results are JSON objects)")
				continue
			}
			what := fmt.Sprintf("the %s of tool %s", strings.ReplaceAll(s.field, "_", " "), t.Name)
			if strict := d.checkSchemaKeywords(base, what); len(strict) > 0 {
				errs = append(errs, strict...)
				continue
			}
			compiled, err := validate.Compile(s.raw, nil)
			var se *validate.SchemaError
			switch {
			case errors.As(err, &se):
				for _, prob := range se.Problems {
					path := append(append([]string(nil), base...), splitPointer(prob.Path)...)
					errs = append(errs, &Error{File: d.file, Line: d.line(path), Path: d.display(path), Msg: prob.Message})
				}
			case err != nil:
				add(base, "%v", err)
			default:
				*s.compiled = compiled
			}
		}
		if t.input == nil {
			continue
		}
		for j, ex := range t.Examples {
			if err := t.input.ValidateJSON(ex); err != nil {
				add(p("tools", i, "examples", j), "this example does not match the tool's input_schema (%v): fix the example or the schema", err)
			}
		}
	}
	return errs
}

// checkEndpoint returns why u is not an https URL an OAuth endpoint may have, or "".
func checkEndpoint(u string) string {
	parsed, err := url.Parse(u)
	switch {
	case err != nil || parsed.Host == "":
		return fmt.Sprintf("%q is not an absolute URL such as https://login.example.com/oauth/token", u)
	case parsed.Scheme != "https":
		return fmt.Sprintf("%q must use https (a test can route it to a local server with the grant's upstreams)", u)
	case parsed.User != nil || parsed.Fragment != "":
		return fmt.Sprintf("%q must not carry userinfo or a fragment", u)
	}
	return ""
}

func (m *Manifest) functionNames() string {
	if m.Database == nil || len(m.Database.Functions) == 0 {
		return "none"
	}
	var names []string
	for _, f := range m.Database.Functions {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

// checkModulePath returns why p is not a local, relative module path, or "".
func checkModulePath(p string) string {
	switch {
	case strings.Contains(p, `\`):
		return fmt.Sprintf("%q: use forward slashes", p)
	case path.IsAbs(p) || filepath.IsAbs(p) || (len(p) > 1 && p[1] == ':'):
		return fmt.Sprintf("%q is absolute: give the module's path relative to the manifest file", p)
	case hasDotDot(p):
		return fmt.Sprintf("%q contains '..': keep the module in the manifest's directory or below", p)
	case !filepath.IsLocal(filepath.FromSlash(p)):
		return fmt.Sprintf("%q is not a local path: give the module's path relative to the manifest file", p)
	}
	return ""
}

func hasDotDot(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

// checkHost returns why h is not an acceptable host pattern, or "".
func checkHost(h string) string {
	if strings.Contains(h, ":") || strings.Trim(h, "0123456789.") == "" {
		if _, err := netip.ParseAddr(h); err != nil {
			return fmt.Sprintf("%q is not a valid IP address", h)
		}
		return ""
	}
	if base, ok := strings.CutPrefix(h, "*."); ok && !strings.Contains(base, ".") {
		return fmt.Sprintf("%q is too broad: a wildcard must leave at least two labels, as in *.example.com", h)
	}
	return ""
}
