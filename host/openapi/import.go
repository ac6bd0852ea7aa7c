package openapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/openapiop"
)

// MaxTools is the most operations one import may turn into tools: the generic connector has
// that many operation slots (plugins/openapi), and a longer tool list is not one an agent can
// choose from.
const MaxTools = 128

// maxSchemaBytes is the manifest's limit on one tool schema (manifests/FORMAT.md).
const maxSchemaBytes = 256 << 10

// ErrNoSelection: Import was given no operations and no tags. Its message says how many
// operations the description has and how to choose.
var ErrNoSelection = errors.New("openapi: choose the operations to import")

// Selection says which operations become tools. An operation is chosen when any entry matches.
type Selection struct {
	// Operations are "METHOD /path" (as the description writes the path) or operationIds.
	Operations []string
	// Tags choose every operation with one of these tags.
	Tags []string
}

// ImportOptions configure Import. The zero value means the documented defaults; Name is
// required.
type ImportOptions struct {
	// Name is the connector name (^[a-z][a-z0-9_]{0,62}$).
	Name string
	// Version is the connector version (default 0.1.0).
	Version string
	// Publisher is the publisher name (default "local").
	Publisher string
	// Server is the base URL to use; "" means the description's first server. It must be one of
	// the description's servers (after filling variables with their defaults) unless Override.
	Server string
	// OverrideServer allows a Server that the description does not list.
	OverrideServer bool
	// AllowPrivateServers allows a server on a loopback, private, link-local or metadata
	// address. The host still refuses to dial one unless the grant's private_targets allow it.
	AllowPrivateServers bool
	// NoOutputSchemas leaves out the output schemas (a description whose response schemas are
	// wrong in practice makes every call fail output validation).
	NoOutputSchemas bool
	// NoOutputSchemaFor leaves out the output schemas of these tools only (tool names, or
	// operations written as in Selection.Operations).
	NoOutputSchemaFor []string
	// ModulePath is the manifest's module.path (default "openapi.wasm").
	ModulePath string
	// ModuleSHA256 pins the module (64 lowercase hex); "" leaves the manifest unpinned.
	ModuleSHA256 string
}

// Result is an imported connector.
type Result struct {
	// Manifest is the manifest YAML, validated with host/manifest.
	Manifest []byte
	// Tools are the tool names, in the order of the manifest.
	Tools []string
	// Notes are things the admin should know (an unsupported security scheme, a parameter
	// left to the credential).
	Notes []string
}

// OperationInfo describes one operation of a description.
type OperationInfo struct {
	Method, Path, OperationID, Summary string
	Tags                               []string
}

// Operations lists the description's operations, sorted by path and method.
func (s *Spec) Operations() []OperationInfo {
	var out []OperationInfo
	for _, path := range s.doc.Paths.InMatchingOrder() {
		item := s.doc.Paths.Value(path)
		for method, op := range item.Operations() {
			out = append(out, OperationInfo{Method: method, Path: path, OperationID: op.OperationID,
				Summary: cleanText(op.Summary, 100), Tags: op.Tags})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// chosen is one selected operation.
type chosen struct {
	info OperationInfo
	item *openapi3.PathItem
	op   *openapi3.Operation
}

func (s *Spec) selectOps(sel Selection) ([]chosen, error) {
	all := s.Operations()
	if len(sel.Operations) == 0 && len(sel.Tags) == 0 {
		tags := map[string]int{}
		for _, o := range all {
			for _, t := range o.Tags {
				tags[t]++
			}
		}
		return nil, fmt.Errorf("%w: %s has %d operations (%d tags); an agent works best with a few tools, so name them: --operations 'GET /path,operationId,…' or --tag TAG (list them with airlock openapi list)",
			ErrNoSelection, s.Source, len(all), len(tags))
	}
	want := map[string]bool{}
	for _, w := range sel.Operations {
		w = strings.TrimSpace(w)
		method, path, ok := strings.Cut(w, " ")
		if path = strings.TrimSpace(path); ok && strings.HasPrefix(path, "/") && isMethod(strings.ToUpper(method)) {
			w = strings.ToUpper(method) + " " + path
		}
		want[w] = true // an operationId may contain spaces (Petstore's "find pet by id")
	}
	tags := map[string]bool{}
	for _, t := range sel.Tags {
		tags[t] = true
	}
	seen := map[string]bool{}
	var out []chosen
	for _, o := range all {
		hit := want[o.Method+" "+o.Path] || o.OperationID != "" && want[o.OperationID]
		for _, t := range o.Tags {
			hit = hit || tags[t]
		}
		if !hit {
			continue
		}
		seen[o.Method+" "+o.Path], seen[o.OperationID] = true, true
		item := s.doc.Paths.Value(o.Path)
		out = append(out, chosen{info: o, item: item, op: item.GetOperation(o.Method)})
	}
	var missing []string
	for w := range want {
		if !seen[w] {
			missing = append(missing, w)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		return nil, fmt.Errorf("openapi: %s has no operation %s: write \"METHOD /path\" as the description writes the path, or an operationId (airlock openapi list shows them)",
			s.Source, strings.Join(quoteAll(missing), ", "))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("openapi: no operation of %s has the tag(s) %s", s.Source, strings.Join(sel.Tags, ", "))
	}
	if len(out) > MaxTools {
		return nil, fmt.Errorf("openapi: %d operations chosen, more than the %d one connector may have: choose fewer (an agent picks better from a short list)", len(out), MaxTools)
	}
	return out, nil
}

func isMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE":
		return true
	}
	return false
}

func quoteAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = strconv.Quote(s)
	}
	return out
}

// Import turns the chosen operations into a connector manifest.
func (s *Spec) Import(sel Selection, opts *ImportOptions) (*Result, error) {
	o := ImportOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Version == "" {
		o.Version = "0.1.0"
	}
	if o.Publisher == "" {
		o.Publisher = "local"
	}
	if o.ModulePath == "" {
		o.ModulePath = "openapi.wasm"
	}
	if !regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`).MatchString(o.Name) {
		return nil, fmt.Errorf("openapi: connector name %q: use lowercase letters, digits and _, starting with a letter (at most 63)", o.Name)
	}
	ops, err := s.selectOps(sel)
	if err != nil {
		return nil, err
	}
	template, vars, bases, err := s.server(o)
	if err != nil {
		return nil, err
	}
	im := &importer{spec: s, opts: o, template: template, vars: vars, bases: bases, names: map[string]bool{}}
	for _, v := range vars {
		d := fmt.Sprintf("value of {%s} in the server URL %s", v.name, template)
		if len(v.values) > 1 {
			d += " (one of " + strings.Join(v.values, ", ") + ")"
		} else {
			d += " (only the default has a network rule; another value needs one added)"
		}
		im.cfg = append(im.cfg, manifest.ConfigKey{Name: v.key, Description: d, Default: v.def})
	}
	im.credentials()
	for i, c := range ops {
		if err := im.tool(i, c); err != nil {
			return nil, fmt.Errorf("openapi: %s %s: %w", c.info.Method, c.info.Path, err)
		}
	}
	return im.finish()
}

// maxServerCombinations bounds the concrete base URLs a templated server expands to.
const maxServerCombinations = 16

// serverVar is a {variable} of the server URL: the grant may set it (config server_NAME) to one
// of values, for which the manifest has network rules.
type serverVar struct {
	name, def, key string
	values         []string
}

// server picks the base URL, expands its variables and checks every address it can take.
func (s *Spec) server(o ImportOptions) (string, []serverVar, []*url.URL, error) {
	var listed []string
	pick, template := o.Server, ""
	var vars []serverVar
	for i, sv := range s.doc.Servers {
		u := sv.URL
		for name, v := range sv.Variables {
			u = strings.ReplaceAll(u, "{"+name+"}", v.Default)
		}
		listed = append(listed, u)
		if pick == "" && i == 0 || pick != "" && (pick == u || pick == sv.URL) {
			pick, template = u, sv.URL
			vars = nil
			for _, name := range sortedKeys(sv.Variables) {
				v := sv.Variables[name]
				if !strings.Contains(sv.URL, "{"+name+"}") {
					continue
				}
				values := v.Enum
				if len(values) == 0 {
					values = []string{v.Default}
				}
				vars = append(vars, serverVar{name: name, def: v.Default, key: "server_" + slotName(name), values: values})
			}
		}
	}
	switch {
	case pick == "":
		return "", nil, nil, fmt.Errorf("openapi: %s names no server: pass --server https://… with the API's base URL", s.Source)
	case template == "" && !o.OverrideServer:
		return "", nil, nil, fmt.Errorf("openapi: %s does not list the server %q (it lists %s): pass one of those, or --override-server to use another", s.Source, pick, strings.Join(quoteAll(listed), ", "))
	case template == "":
		template = pick
	}
	if u, err := url.Parse(pick); err == nil && !u.IsAbs() {
		// A relative server is resolved against the description's URL, with defaults filled.
		if s.base == nil {
			return "", nil, nil, fmt.Errorf("openapi: the server %q is relative and the description is a local file: pass --server https://… with the API's base URL", pick)
		}
		template, vars = s.base.ResolveReference(u).String(), nil
	}
	combos := []map[string]string{{}}
	for _, v := range vars {
		var next []map[string]string
		for _, c := range combos {
			for _, val := range v.values {
				m := map[string]string{v.name: val}
				for k, x := range c {
					m[k] = x
				}
				next = append(next, m)
			}
		}
		combos = next
		if len(combos) > maxServerCombinations {
			return "", nil, nil, fmt.Errorf("openapi: the server %q has more than %d combinations of variable values: pass --server with one concrete URL", template, maxServerCombinations)
		}
	}
	var bases []*url.URL
	for _, c := range combos {
		concrete := template
		for k, v := range c {
			if !serverValue.MatchString(v) {
				return "", nil, nil, fmt.Errorf("openapi: server variable %s value %q: want letters, digits, '.' and '-'", k, v)
			}
			concrete = strings.ReplaceAll(concrete, "{"+k+"}", v)
		}
		u, err := url.Parse(concrete)
		if err != nil {
			return "", nil, nil, fmt.Errorf("openapi: server %q is not a URL", concrete)
		}
		if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Contains(u.Path, "{") {
			return "", nil, nil, fmt.Errorf("openapi: server %q: want http(s)://host[:port][/path] with no user, query, fragment or unfilled {variable}", concrete)
		}
		if !o.AllowPrivateServers {
			if why := privateHost(u.Hostname()); why != "" {
				return "", nil, nil, fmt.Errorf("openapi: server %q is %s: a connector made from a description must not reach it (pass --allow-private-servers for an internal API; the grant must then list it in private_targets)", concrete, why)
			}
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		bases = append(bases, u)
	}
	return strings.TrimSuffix(template, "/"), vars, bases, nil
}

// serverValue is what a server variable may hold: it lands in a host name or a path segment.
var serverValue = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$`)

// privateHost says why a server host is not a public address ("" when it is).
func privateHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return "loopback (localhost)"
	}
	if h == "metadata.google.internal" || strings.HasSuffix(h, ".internal") {
		return "an internal name (cloud metadata)"
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return "a loopback address"
	case a.IsLinkLocalUnicast() || a == netip.MustParseAddr("fd00:ec2::254"):
		return "a link-local address (cloud metadata)"
	case a.IsPrivate():
		return "a private address"
	case a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast():
		return "not a unicast address"
	}
	return ""
}

// importer builds the manifest.
type importer struct {
	spec     *Spec
	opts     ImportOptions
	template string      // the server URL, with {variables}
	vars     []serverVar // its variables
	bases    []*url.URL  // every concrete server URL the variables allow
	names    map[string]bool
	// slots by security scheme name; unsupported schemes are absent.
	slots map[string]*manifest.Credential
	used  map[string]map[string]bool // slots some tool uses -> the scopes those tools need
	tools []manifest.Tool
	cfg   []manifest.ConfigKey
	rules map[string]map[string]bool // path prefix -> methods
	notes []string
}

var nameUnsafe = regexp.MustCompile(`[^a-z0-9]+`)
var camel = regexp.MustCompile(`([a-z0-9])([A-Z])`)

// toolName makes a manifest tool name (^[a-z][a-z0-9_]{0,62}$, which also meets the MCP,
// OpenAI and Anthropic rules ^[a-zA-Z0-9_-]{1,64}$) from the operationId, or from the method
// and path when there is none; unique within the connector.
func (im *importer) toolName(c chosen) string {
	base := c.op.OperationID
	if base == "" {
		base = strings.ToLower(c.info.Method) + "_" + c.info.Path
	}
	base = camel.ReplaceAllString(base, "${1}_${2}")
	base = strings.Trim(nameUnsafe.ReplaceAllString(strings.ToLower(base), "_"), "_")
	if base == "" || base[0] < 'a' || base[0] > 'z' {
		base = "op_" + base
	}
	if len(base) > 58 {
		base = strings.TrimRight(base[:58], "_")
	}
	name := base
	for n := 2; im.names[name]; n++ {
		name = base + "_" + strconv.Itoa(n)
	}
	im.names[name] = true
	return name
}

// credentials makes one slot per supported security scheme.
func (im *importer) credentials() {
	im.slots, im.used = map[string]*manifest.Credential{}, map[string]map[string]bool{}
	if im.spec.doc.Components == nil {
		return
	}
	var hosts []string
	for _, b := range im.bases {
		if !contains(hosts, b.Hostname()) {
			hosts = append(hosts, b.Hostname())
		}
	}
	for _, name := range sortedKeys(im.spec.doc.Components.SecuritySchemes) {
		ref := im.spec.doc.Components.SecuritySchemes[name]
		if ref == nil || ref.Value == nil {
			continue
		}
		ss := ref.Value
		slot := &manifest.Credential{Name: slotName(name), Hosts: hosts,
			Description: cleanText(ss.Description, 300)}
		switch {
		case ss.Type == "apiKey" && (ss.In == "header" || ss.In == "query"):
			slot.Kind, slot.In, slot.Param = manifest.KindAPIKey, ss.In, ss.Name
		case ss.Type == "http" && strings.EqualFold(ss.Scheme, "bearer"):
			slot.Kind = manifest.KindBearer
		case ss.Type == "http" && strings.EqualFold(ss.Scheme, "basic"):
			slot.Kind = manifest.KindBasic
		case ss.Type == "oauth2" && ss.Flows != nil:
			f := ss.Flows
			switch {
			case f.AuthorizationCode != nil && strings.HasPrefix(f.AuthorizationCode.TokenURL, "https://") && strings.HasPrefix(f.AuthorizationCode.AuthorizationURL, "https://"):
				slot.Kind = manifest.KindOAuth2AuthorizationCode
				slot.OAuth = &manifest.OAuth{TokenURL: f.AuthorizationCode.TokenURL, AuthorizeURL: f.AuthorizationCode.AuthorizationURL}
			case f.ClientCredentials != nil && strings.HasPrefix(f.ClientCredentials.TokenURL, "https://"):
				slot.Kind = manifest.KindOAuth2ClientCredentials
				slot.OAuth = &manifest.OAuth{TokenURL: f.ClientCredentials.TokenURL}
			default:
				// No flow the host runs (implicit, password, or no https token URL): the admin
				// supplies an access token, injected as a bearer.
				slot.Kind = manifest.KindBearer
				im.notes = append(im.notes, fmt.Sprintf("security scheme %s: no OAuth flow the host can run (it needs an https tokenUrl); the slot %s takes an access token as a bearer secret", name, slot.Name))
			}
		case ss.Type == "openIdConnect":
			slot.Kind = manifest.KindBearer
			im.notes = append(im.notes, fmt.Sprintf("security scheme %s (OpenID Connect): the slot %s takes an access token as a bearer secret", name, slot.Name))
		default:
			im.notes = append(im.notes, fmt.Sprintf("security scheme %s (%s %s%s) is not supported by the host: operations needing only it get no credential", name, ss.Type, ss.In, ss.Scheme))
			continue
		}
		if slot.Description == "" {
			slot.Description = "credential for the " + name + " security scheme"
		}
		im.slots[name] = slot
	}
}

func slotName(s string) string {
	s = camel.ReplaceAllString(s, "${1}_${2}")
	s = strings.Trim(nameUnsafe.ReplaceAllString(strings.ToLower(s), "_"), "_")
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		s = "cred_" + s
	}
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

// security picks the operation's credential slot and its OAuth scopes: the first requirement
// alternative the host can satisfy with one slot.
func (im *importer) security(op *openapi3.Operation) (slot *manifest.Credential, scheme string, scopes []string, public bool) {
	reqs := im.spec.doc.Security
	if op.Security != nil {
		reqs = *op.Security
	}
	if len(reqs) == 0 {
		return nil, "", nil, true
	}
	for _, alt := range reqs {
		if len(alt) == 0 {
			return nil, "", nil, true // {} means "no authentication" is an alternative
		}
		if len(alt) != 1 {
			continue
		}
		for name, sc := range alt {
			if s, ok := im.slots[name]; ok {
				return s, name, sc, false
			}
		}
	}
	return nil, "", nil, false
}

// isAuthParam: a parameter that carries the credential (the host injects it; the agent never
// supplies it): the Authorization header, an apiKey scheme's own parameter, or a parameter the
// description calls an authentication token (Slack's `token`).
func (im *importer) isAuthParam(p *openapi3.Parameter) bool {
	if p.In == "header" && strings.EqualFold(p.Name, "Authorization") {
		return true
	}
	for _, s := range im.slots {
		if s.Kind == manifest.KindAPIKey && s.In == p.In && strings.EqualFold(s.Param, p.Name) {
			return true
		}
	}
	d := strings.ToLower(p.Description)
	return (p.Name == "token" || p.Name == "access_token") && (strings.Contains(d, "authentication") || strings.Contains(d, "token"))
}

// tool turns one operation into a tool, its config key and its network needs.
func (im *importer) tool(i int, c chosen) error {
	name := im.toolName(c)
	op := openapiop.Operation{Method: c.info.Method, Server: im.template, Path: c.info.Path}
	for _, v := range im.vars {
		op.Variables = append(op.Variables, openapiop.ServerVariable{Name: v.name, Config: v.key})
	}
	conv := newConverter(true)
	props := map[string]any{}
	var required []string
	params := map[string]*openapi3.Parameter{}
	var order []string
	for _, list := range []openapi3.Parameters{c.item.Parameters, c.op.Parameters} { // operation overrides path item
		for _, pr := range list {
			if pr == nil || pr.Value == nil {
				continue
			}
			key := pr.Value.In + " " + pr.Value.Name
			if _, dup := params[key]; !dup {
				order = append(order, key)
			}
			params[key] = pr.Value
		}
	}
	argOf := map[string]string{}
	for _, key := range order {
		p := params[key]
		if im.isAuthParam(p) {
			im.notef("%s: parameter %s (%s) carries the credential: the host injects it, agents do not supply it", name, p.Name, p.In)
			continue
		}
		arg := p.Name
		if _, clash := argOf[arg]; clash || arg == "body" {
			arg = p.In + "_" + p.Name
		}
		argOf[arg] = key
		var sch map[string]any
		switch {
		case p.Schema != nil:
			sch = conv.schema(p.Schema, 1)
		case len(p.Content) > 0:
			for _, mt := range p.Content {
				sch = conv.schema(mt.Schema, 1)
				break
			}
		default:
			sch = map[string]any{"type": "string"}
		}
		if p.Description != "" {
			sch = withDescription(sch, cleanText(p.Description, 300))
		}
		if p.In == "path" {
			sch = pathSafe(sch)
		}
		props[arg] = sch
		if p.Required || p.In == "path" {
			required = append(required, arg)
		}
		op.Params = append(op.Params, openapiop.Param{Name: p.Name, In: p.In, Arg: arg, Style: p.Style, Explode: p.Explode})
	}
	if rb := c.op.RequestBody; rb != nil && rb.Value != nil {
		media, mt := pickMedia(rb.Value.Content, openapiop.MediaJSON, openapiop.MediaForm)
		if mt == nil {
			im.notef("%s: its request body (%s) is neither JSON nor a form: the tool sends none", name, strings.Join(sortedKeys(rb.Value.Content), ", "))
		} else {
			sch := conv.schema(mt.Schema, 1)
			if dropped := im.dropAuthProperties(sch); dropped != "" {
				im.notef("%s: body field %s carries the credential: the host injects it, agents do not supply it", name, dropped)
			}
			if rb.Value.Description != "" {
				sch = withDescription(sch, cleanText(rb.Value.Description, 300))
			}
			props["body"] = sch
			if rb.Value.Required {
				required = append(required, "body")
			}
			op.Body = &openapiop.Body{MediaType: media, Arg: "body"}
		}
	}
	in := map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
		"additionalProperties": false, "properties": props,
	}
	if len(required) > 0 {
		sort.Strings(required)
		in["required"] = required
	}
	if len(conv.defs) > 0 {
		in["$defs"] = conv.defs
	}
	if conv.err != nil {
		return fmt.Errorf("input schema: %w", conv.err)
	}
	inJSON, err := marshalSchema("input", in)
	if err != nil {
		return err
	}
	t := manifest.Tool{Name: name, Export: "op" + strconv.Itoa(i), Description: im.description(c),
		Annotations: annotations(c.info.Method), InputSchema: inJSON}
	if !im.opts.NoOutputSchemas && !im.skipOutput(name, c) {
		if out, err := im.outputSchema(c.op); err != nil {
			return err
		} else if out != nil {
			t.OutputSchema = out
		}
	}
	op.Pagination = pagination(c.op, op.Params)
	slot, _, scopes, public := im.security(c.op)
	switch {
	case slot != nil:
		op.Credential = slot.Name
		if im.used[slot.Name] == nil {
			im.used[slot.Name] = map[string]bool{}
		}
		t.Scopes = dedupe(scopes)
		for _, sc := range t.Scopes {
			im.used[slot.Name][sc] = true
		}
	case !public:
		im.notef("%s: needs a security scheme the host does not support; it is sent without a credential", name)
	}
	// Bind the tool to what it uses (manifest uses:): its one slot, and every server host. With
	// one slot or one host the manifest's default already says so.
	if len(im.slots) > 1 {
		t.Uses.Credentials = []string{}
		if slot != nil {
			t.Uses.Credentials = []string{slot.Name}
		}
	}
	if hosts := im.hosts(); len(hosts) > 1 {
		t.Uses.Network = hosts
	}
	opJSON, err := json.Marshal(op)
	if err != nil {
		return err
	}
	im.cfg = append(im.cfg, manifest.ConfigKey{Name: t.Export, Description: "operation of tool " + name + " (written by airlock openapi import)", Default: string(opJSON)})
	im.tools = append(im.tools, t)
	im.rule(c.info.Method, c.info.Path)
	return nil
}

// Names that mark pagination in descriptions (compared in lower case without _ and -).
var (
	cursorParams = []string{"cursor", "pagetoken", "nexttoken", "startingafter", "after", "continuationtoken", "marker", "pagecursor"}
	cursorFields = []string{"nextcursor", "nextpagetoken", "nexttoken", "lastid", "nextmarker", "cursor", "continuationtoken"}
	moreFields   = []string{"hasmore", "more", "hasnextpage"}
	offsetParams = []string{"offset", "skip"}
	limitParams  = []string{"limit", "count", "perpage", "pagesize", "maxresults"}
)

func squash(s string) string {
	return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
}

// pagination recognises how an operation pages: a cursor parameter with a next-cursor field in
// the 2xx JSON response, a Link response header, or offset and limit parameters.
func pagination(op *openapi3.Operation, params []openapiop.Param) *openapiop.Pagination {
	query := map[string]string{}
	for _, p := range params {
		if p.In == "query" {
			query[squash(p.Name)] = p.Arg
		}
	}
	find := func(names []string) string {
		for _, n := range names {
			if a, ok := query[n]; ok {
				return a
			}
		}
		return ""
	}
	var body *openapi3.Schema
	var link bool
	if op.Responses != nil {
		for _, code := range sortedKeys(op.Responses.Map()) {
			r := op.Responses.Value(code)
			if code[0] != '2' || r == nil || r.Value == nil {
				continue
			}
			for name := range r.Value.Headers {
				link = link || strings.EqualFold(name, "Link")
			}
			if _, mt := pickMedia(r.Value.Content, openapiop.MediaJSON); mt != nil && mt.Schema != nil && body == nil {
				body = mt.Schema.Value
			}
			break
		}
	}
	if arg := find(cursorParams); arg != "" && body != nil {
		if field := findField(body, cursorFields, 0); field != nil {
			p := &openapiop.Pagination{Kind: openapiop.PageCursor, Arg: arg, Field: field}
			if more := findField(body, moreFields, 2); more != nil {
				p.More = more
			}
			return p
		}
	}
	if link && len(query) > 0 {
		return &openapiop.Pagination{Kind: openapiop.PageLink}
	}
	if off, lim := find(offsetParams), find(limitParams); off != "" && lim != "" {
		return &openapiop.Pagination{Kind: openapiop.PageOffset, Arg: off, LimitArg: lim}
	}
	return nil
}

// findField returns the path of the first property (breadth first, at most 3 levels deep, the
// top level before depth start is skipped) whose squashed name is in names.
func findField(s *openapi3.Schema, names []string, maxDepth int) []string {
	if maxDepth == 0 {
		maxDepth = 3
	}
	type node struct {
		s    *openapi3.Schema
		path []string
	}
	queue := []node{{s, nil}}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if n.s == nil || len(n.path) >= maxDepth {
			continue
		}
		schemas := []*openapi3.Schema{n.s}
		// allOf/anyOf/oneOf alternatives, and Slack's repaired `items` lists, describe the
		// same object
		for _, list := range []openapi3.SchemaRefs{n.s.AllOf, n.s.AnyOf, n.s.OneOf, {n.s.Items}} {
			for _, sub := range list {
				if sub != nil && sub.Value != nil {
					schemas = append(schemas, sub.Value)
					for _, alt := range sub.Value.AnyOf {
						if alt != nil {
							schemas = append(schemas, alt.Value)
						}
					}
				}
			}
		}
		for _, sc := range schemas {
			if sc == nil {
				continue
			}
			for _, name := range sortedKeys(sc.Properties) {
				path := append(append([]string(nil), n.path...), name)
				if slices.Contains(names, squash(name)) {
					return path
				}
				if p := sc.Properties[name]; p != nil {
					queue = append(queue, node{p.Value, path})
				}
			}
		}
	}
	return nil
}

// skipOutput: the admin asked to leave out this tool's output schema.
func (im *importer) skipOutput(name string, c chosen) bool {
	for _, w := range im.opts.NoOutputSchemaFor {
		if w == name || w == c.info.OperationID || w == c.info.Method+" "+c.info.Path {
			return true
		}
	}
	return false
}

func (im *importer) notef(format string, args ...any) {
	im.notes = append(im.notes, fmt.Sprintf(format, args...))
}

// dropAuthProperties removes from an inline body schema the field that carries the credential
// (Swagger 2.0 descriptions such as Slack's declare `token` as a form field), and returns its name.
func (im *importer) dropAuthProperties(sch map[string]any) string {
	props, _ := sch["properties"].(map[string]any)
	for name, p := range props {
		desc, _ := p.(map[string]any)["description"].(string)
		if !im.isAuthParam(&openapi3.Parameter{Name: name, In: "body", Description: desc}) {
			continue
		}
		delete(props, name)
		if req, ok := sch["required"].([]string); ok {
			sch["required"] = without(req, []string{name})
			if len(sch["required"].([]string)) == 0 {
				delete(sch, "required")
			}
		}
		return name
	}
	return ""
}

// pathSafe keeps a path parameter's schema but requires a non-empty value: an empty segment
// would change the path. The builder escapes everything else.
func pathSafe(sch map[string]any) map[string]any {
	if sch["type"] == "string" {
		if _, ok := sch["minLength"]; !ok {
			sch["minLength"] = 1
		}
	}
	return sch
}

// withDescription sets a description on a schema; a bare $ref gets it beside the $ref (2020-12
// allows siblings of $ref).
func withDescription(sch map[string]any, d string) map[string]any {
	if _, ok := sch["description"]; !ok && d != "" {
		sch["description"] = d
	}
	return sch
}

// pickMedia returns the first of want the content offers (JSON also as application/*+json).
func pickMedia(content openapi3.Content, want ...string) (string, *openapi3.MediaType) {
	for _, w := range want {
		for _, k := range sortedKeys(content) {
			mt := strings.ToLower(strings.TrimSpace(strings.Split(k, ";")[0]))
			if mt == w || w == openapiop.MediaJSON && strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json") {
				return w, content[k]
			}
		}
	}
	return "", nil
}

// outputSchema is the tool result's schema: {status, data} with data from the first 2xx JSON
// response, loosened (no required, no additionalProperties: false), since published response
// schemas are often stricter than what the API sends.
func (im *importer) outputSchema(op *openapi3.Operation) (json.RawMessage, error) {
	if op.Responses == nil {
		return nil, nil
	}
	codes := sortedKeys(op.Responses.Map())
	for _, code := range codes {
		if !(len(code) == 3 && code[0] == '2' || code == "2XX") {
			continue
		}
		r := op.Responses.Value(code)
		if r == nil || r.Value == nil {
			continue
		}
		_, mt := pickMedia(r.Value.Content, openapiop.MediaJSON)
		if mt == nil || mt.Schema == nil {
			continue
		}
		conv := newConverter(false)
		data := conv.schema(mt.Schema, 1)
		if conv.err != nil {
			return nil, fmt.Errorf("output schema: %w", conv.err)
		}
		out := map[string]any{
			"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
			"required": []string{"status"},
			"properties": map[string]any{
				"status": map[string]any{"type": "integer", "description": "the HTTP status the API answered"},
				"data":   data,
				"next":   map[string]any{"type": "object", "description": "present when another page exists: call again with these arguments added"},
			},
		}
		if len(conv.defs) > 0 {
			out["$defs"] = conv.defs
		}
		return marshalSchema("output", out)
	}
	return nil, nil
}

func marshalSchema(which string, v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s schema: %w", which, err)
	}
	if len(b) > maxSchemaBytes {
		return nil, fmt.Errorf("its %s schema is %d KiB, over the %d KiB a manifest allows per schema: choose another operation, or import without output schemas (--no-output-schemas)", which, len(b)>>10, maxSchemaBytes>>10)
	}
	return b, nil
}

func (im *importer) description(c chosen) string {
	var parts []string
	if s := cleanText(c.op.Summary, 200); s != "" {
		parts = append(parts, strings.TrimSuffix(s, ".")+".")
	}
	summary := strings.TrimSuffix(cleanText(c.op.Summary, 200), ".")
	if d := cleanText(c.op.Description, 800); d != "" && (summary == "" || !strings.HasPrefix(d, summary)) {
		parts = append(parts, d)
	}
	if len(parts) == 0 {
		parts = append(parts, c.info.Method+" "+c.info.Path+".")
	}
	if c.op.Deprecated {
		parts = append(parts, "(Deprecated by the API.)")
	}
	return strings.Join(parts, " ")
}

// annotations per method: GET/HEAD read-only and idempotent, PUT idempotent, DELETE
// destructive and idempotent; every tool reaches an outside API (open world). The manifest may
// be edited to override them.
func annotations(method string) manifest.Annotations {
	a := manifest.Annotations{OpenWorld: true}
	switch method {
	case "GET", "HEAD", "OPTIONS":
		a.ReadOnly, a.Idempotent = true, true
	case "PUT":
		a.Idempotent = true
	case "DELETE":
		a.Destructive, a.Idempotent = true, true
	}
	return a
}

// rule records that the tool reaches server path + the operation path's literal prefix (up to
// its first template) with method.
func (im *importer) rule(method, path string) {
	if im.rules == nil {
		im.rules = map[string]map[string]bool{}
	}
	prefix := path
	if i := strings.Index(prefix, "{"); i >= 0 {
		prefix = prefix[:i]
	}
	if im.rules[prefix] == nil {
		im.rules[prefix] = map[string]bool{}
	}
	im.rules[prefix][method] = true
}

// network merges the recorded prefixes into rules: one per prefix, methods as used; a prefix
// covered by a shorter one with every method it needs is dropped.
// hosts are the distinct host names of the servers, sorted.
func (im *importer) hosts() []string {
	set := map[string]bool{}
	for _, b := range im.bases {
		set[b.Hostname()] = true
	}
	return sortedKeys(set)
}

func (im *importer) network() []manifest.Rule {
	var out []manifest.Rule
	for _, b := range im.bases {
		port := 0
		if p := b.Port(); p != "" {
			port, _ = strconv.Atoi(p)
		}
		rules := map[string]map[string]bool{}
		for p, methods := range im.rules {
			full := b.Path + p
			if !strings.HasPrefix(full, "/") {
				full = "/" + full
			}
			rules[full] = methods
		}
		prefixes := sortedKeys(rules)
		for _, p := range prefixes {
			covered := false
			for _, q := range prefixes {
				if q != p && strings.HasPrefix(p, q) && strings.HasSuffix(q, "/") && superset(rules[q], rules[p]) {
					covered = true
					break
				}
			}
			if !covered {
				out = append(out, manifest.Rule{Scheme: b.Scheme, Host: b.Hostname(), Port: port, PathPrefix: sanitizePrefix(p), Methods: sortedKeys(rules[p])})
			}
		}
	}
	return out
}

// sanitizePrefix keeps a prefix the manifest accepts (no "..", "?", "#", "\" or spaces): the
// part before the first such character, ending at a "/".
func sanitizePrefix(p string) string {
	if i := strings.IndexAny(p, "?#\\ "); i >= 0 {
		p = p[:i]
		p = p[:strings.LastIndex(p, "/")+1]
	}
	if strings.Contains(p, "/..") {
		p = p[:strings.Index(p, "/..")+1]
	}
	if p == "" {
		p = "/"
	}
	return p
}

func superset(a, b map[string]bool) bool {
	for k := range b {
		if !a[k] {
			return false
		}
	}
	return true
}

func (im *importer) finish() (*Result, error) {
	m := manifest.Manifest{
		ABI: abi.Version, Name: im.opts.Name, Version: im.opts.Version, Publisher: im.opts.Publisher,
		Description: im.connectorDescription(),
		Module:      manifest.Module{Path: im.opts.ModulePath, SHA256: im.opts.ModuleSHA256},
		Network:     im.network(), Config: im.cfg, Tools: im.tools,
	}
	for _, name := range sortedKeys(im.slots) {
		s := im.slots[name]
		if im.used[s.Name] == nil {
			continue
		}
		if s.OAuth != nil {
			s.OAuth.Scopes = sortedKeys(im.used[s.Name])
		}
		m.Credentials = append(m.Credentials, *s)
	}
	b, err := manifestYAML(&m, im.spec)
	if err != nil {
		return nil, err
	}
	if _, err := manifest.Parse(im.opts.Name+".yaml", b); err != nil {
		return nil, fmt.Errorf("openapi: the manifest made from %s does not validate (please report this): %w", im.spec.Source, err)
	}
	res := &Result{Manifest: b, Notes: im.notes}
	for _, t := range im.tools {
		res.Tools = append(res.Tools, t.Name)
	}
	return res, nil
}

func (im *importer) connectorDescription() string {
	info := im.spec.doc.Info
	d := ""
	if info != nil {
		d = strings.TrimSpace(info.Title)
		if s := cleanText(info.Description, 400); s != "" {
			d += ": " + s
		}
	}
	if d == "" {
		d = "REST API"
	}
	return cleanText(d+" (imported from an OpenAPI description by airlock openapi import)", 1000)
}

// manifestYAML renders the manifest as YAML with a header saying where it came from. Schemas
// and operation tables are written as JSON-style flow values inside the YAML.
func manifestYAML(m *manifest.Manifest, spec *Spec) ([]byte, error) {
	type network struct {
		Scheme     string   `json:"scheme"`
		Host       string   `json:"host"`
		Port       int      `json:"port,omitempty"`
		PathPrefix string   `json:"path_prefix"`
		Methods    []string `json:"methods"`
	}
	var rules []network
	for _, r := range m.Network {
		rules = append(rules, network{r.Scheme, r.Host, r.Port, r.PathPrefix, r.Methods})
	}
	doc := struct {
		ABI         int                   `json:"abi"`
		Name        string                `json:"name"`
		Version     string                `json:"version"`
		Publisher   string                `json:"publisher"`
		Description string                `json:"description"`
		Module      manifest.Module       `json:"module"`
		Credentials []manifest.Credential `json:"credentials,omitempty"`
		Network     []network             `json:"network"`
		Config      []manifest.ConfigKey  `json:"config"`
		Tools       []manifest.Tool       `json:"tools"`
	}{m.ABI, m.Name, m.Version, m.Publisher, m.Description, m.Module, m.Credentials, rules, m.Config, m.Tools}
	j, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var node yaml.Node
	if err := yaml.Unmarshal(j, &node); err != nil {
		return nil, err
	}
	blockStyle(&node, 0)
	b, err := yaml.Marshal(&node)
	if err != nil {
		return nil, err
	}
	header := fmt.Sprintf("# Made by airlock openapi import from %s (%s %s).\n# The tools run on the generic connector (plugins/openapi); config op<N> is tool N's operation.\n# Review the network rules, credential slots and annotations before granting.\n",
		spec.Source, map[bool]string{true: "Swagger", false: "OpenAPI"}[strings.HasPrefix(spec.Version, "2")], spec.Version)
	return append([]byte(header), b...), nil
}

// blockStyle turns the JSON-decoded node tree into block YAML down to the tools' schemas,
// which stay in flow style (compact, and read as JSON Schema).
func blockStyle(n *yaml.Node, depth int) {
	n.Style = 0
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 1 {
			key := n.Content[i-1].Value
			if key == "input_schema" || key == "output_schema" || key == "oauth" {
				c.Style = yaml.FlowStyle
				continue
			}
		}
		if c.Kind == yaml.ScalarNode {
			c.Style = 0
			switch {
			case c.Tag != "!!str":
			case strings.HasPrefix(c.Value, "{") && !strings.ContainsAny(c.Value, "\n'"):
				c.Style = yaml.SingleQuotedStyle // an operation table: JSON reads best unescaped
			case strings.ContainsAny(c.Value, "\n") || needsQuotes(c.Value):
				c.Style = yaml.DoubleQuotedStyle
			}
			continue
		}
		blockStyle(c, depth+1)
	}
}

func needsQuotes(s string) bool {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return true
	}
	_, isString := v.(string)
	return !isString || v != s
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func dedupe(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
