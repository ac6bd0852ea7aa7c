package bundle

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"sync"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
)

// ProbeOptions configures [Probe]. Zero fields take the defaults documented on each.
type ProbeOptions struct {
	// Upstream is the fake upstream, scheme://host[:port] (an httptest server, a local mock):
	// every origin the manifest's network rules name is sent there. Required.
	Upstream string
	// Canary fills every static credential slot (bearer, api_key, basic). Default: a random
	// value "canary-…". OAuth slots are left unfilled (their calls report credential_unavailable).
	Canary string
	// StateDir is a scratch directory for the sandbox's compilation cache. Default: a temporary
	// directory removed when Probe returns.
	StateDir string
	// Secrets fill credential slots with real secrets instead of the canary: slot name →
	// reference, resolved by Source (for an upstream that checks its key). Static slots only.
	// The values are checked for echoes like the canary and never reported.
	Secrets map[string]string
	// Source resolves the references of Secrets. Required when Secrets is set.
	Source secret.Source
}

// Report is what [Probe] observed, tool by tool, next to what the manifest declares.
type Report struct {
	Connector string `json:"connector"`
	Version   string `json:"version"`
	// Declared are the destinations of the manifest's network rules (scheme://host:port/prefix METHODS).
	Declared []string `json:"declared"`
	// Unmapped are declared rules Probe could not send to the fake (wildcard hosts).
	Unmapped []string     `json:"unmapped,omitempty"`
	Tools    []ToolReport `json:"tools"`
	// CanaryEchoes counts the places the canary secret appeared (results, logs, audit); it must be 0.
	CanaryEchoes int `json:"canary_echoes"`
}

// ToolReport is one tool's run.
type ToolReport struct {
	Tool string `json:"tool"`
	// Arguments are the arguments used: one of the tool's examples (the manifest's
	// tools[].examples; one report per example), else made from the input schema (its examples,
	// defaults, enums or consts where given, otherwise minimal values).
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// Skipped says why the tool was not called ("" when it was).
	Skipped string `json:"skipped,omitempty"`
	// OK and Error are the call's result.
	OK    bool              `json:"ok"`
	Error *host.ResultError `json:"error,omitempty"`
	// Output says whether the result matched the output schema.
	Output string `json:"output,omitempty"`
	// Requests are the outbound requests the plugin attempted, allowed or not.
	Requests []ObservedRequest `json:"requests"`
	// CanaryEchoes lists where the canary secret appeared during this call.
	CanaryEchoes []string `json:"canary_echoes,omitempty"`
}

// ObservedRequest is an outbound request as the host's audit saw it.
type ObservedRequest struct {
	Method     string `json:"method"`
	URL        string `json:"url"`
	Outcome    string `json:"outcome"` // ok, error, denied
	Status     int    `json:"status,omitempty"`
	Credential string `json:"credential,omitempty"`
	Injected   bool   `json:"injected,omitempty"`
	Message    string `json:"message,omitempty"`
}

// canarySource resolves every "canary:" reference to the canary.
type canarySource struct{ v secret.Value }

func (c canarySource) Resolve(_ context.Context, ref string) (secret.Value, error) {
	if !strings.HasPrefix(ref, "canary:") {
		return secret.Value{}, fmt.Errorf("unknown reference %q", ref)
	}
	return c.v, nil
}

// Probe runs every tool of a verified bundle in a real, sandboxed host against a fake upstream,
// with a canary secret in every static credential slot, and reports what each call did: the
// requests it attempted (the host's egress policy still applies: the manifest's network rules
// decide, the fake only answers), whether its result matched the output schema, and any echo of
// the canary. Tools that run database functions are skipped. Destructive tools are called too:
// the upstream is a fake.
func Probe(ctx context.Context, v *Verified, opts ProbeOptions) (*Report, error) {
	up, err := url.Parse(opts.Upstream)
	if err != nil || (up.Scheme != "http" && up.Scheme != "https") || up.Host == "" || (up.Path != "" && up.Path != "/") {
		return nil, fmt.Errorf("bundle: probe: --upstream %q: give the fake's origin, like http://127.0.0.1:8099", opts.Upstream)
	}
	canary := opts.Canary
	if canary == "" {
		b := make([]byte, 12)
		rand.Read(b)
		canary = "canary-" + hex.EncodeToString(b)
	}
	dir := opts.StateDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "airlock-probe-"); err != nil {
			return nil, fmt.Errorf("bundle: probe: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	m := v.Manifest
	rep := &Report{Connector: m.Name, Version: m.Version}
	g := &manifest.Grant{
		Connector: m.Name, Tools: []string{manifest.All}, Scopes: []string{manifest.All}, Hosts: []string{manifest.All},
		Credentials: map[string]manifest.CredentialGrant{}, Upstreams: map[string]string{},
	}
	for _, r := range m.Network {
		rep.Declared = append(rep.Declared, fmt.Sprintf("%s://%s:%d%s %s", r.Scheme, r.Host, r.Port, r.PathPrefix, strings.Join(r.Methods, ",")))
		if strings.HasPrefix(r.Host, "*") {
			rep.Unmapped = append(rep.Unmapped, r.Host)
			continue
		}
		g.Upstreams[fmt.Sprintf("%s://%s:%d", r.Scheme, hostForURL(r.Host), r.Port)] = up.Scheme + "://" + up.Host
	}
	given := givenSource{}
	secrets := secret.Mux{"canary": canarySource{secret.New(canary)}, "given": given}
	echoes := []string{canary} // values whose appearance is an echo of a secret
	for _, c := range m.Credentials {
		if !manifest.IsOAuth(c.Kind) {
			g.Credentials[c.Name] = manifest.CredentialGrant{Secret: "canary:" + c.Name}
		}
	}
	for slot, ref := range opts.Secrets {
		c, ok := m.Credential(slot)
		switch {
		case !ok:
			return nil, fmt.Errorf("bundle: probe: --secret %s: the manifest has no credential slot %q (its slots: %s)", slot, slot, slotNames(m))
		case manifest.IsOAuth(c.Kind):
			return nil, fmt.Errorf("bundle: probe: --secret %s: %s is an OAuth slot; only static slots (bearer, api_key, basic) take a secret here", slot, slot)
		case opts.Source == nil:
			return nil, fmt.Errorf("bundle: probe: --secret %s: no secret source to resolve its reference", slot)
		}
		v, err := opts.Source.Resolve(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("bundle: probe: --secret %s: %w", slot, err)
		}
		echoes = append(echoes, v.Expose())
		given["given:"+slot] = v
		g.Credentials[slot] = manifest.CredentialGrant{Secret: "given:" + slot}
	}
	echoed := func(s string) bool {
		for _, e := range echoes {
			if e != "" && strings.Contains(s, e) {
				return true
			}
		}
		return false
	}
	logs := &lockedWriter{}
	rec := &audit.Memory{}
	h, err := host.New(host.Config{
		StateDir: dir, Audit: rec, Secrets: secrets,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PoolSize: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("bundle: probe: %w", err)
	}
	defer h.Close(context.Background())
	if err := h.LoadModule(ctx, m, v.Module, g); err != nil {
		return nil, fmt.Errorf("bundle: probe: the connector does not load: %w", err)
	}
	for i := range m.Tools {
		t := &m.Tools[i]
		if t.Function != "" {
			rep.Tools = append(rep.Tools, ToolReport{Tool: t.Name, Requests: []ObservedRequest{},
				Skipped: "runs database function " + t.Function + ": probe it against a real database"})
			continue
		}
		argSets := t.Examples
		if len(argSets) == 0 {
			args, err := ExampleArguments(t)
			if err != nil {
				rep.Tools = append(rep.Tools, ToolReport{Tool: t.Name, Arguments: args, Requests: []ObservedRequest{},
					Error:  &host.ResultError{Code: "invalid_arguments", Category: "correctable", Message: err.Error()},
					Output: "not checked (the tool was not called)"})
				continue
			}
			argSets = []json.RawMessage{args}
		}
		for _, args := range argSets {
			rep.Tools = append(rep.Tools, probeCall(ctx, h, m, t, args, rec, logs, echoed))
		}
	}
	for _, t := range rep.Tools {
		rep.CanaryEchoes += len(t.CanaryEchoes)
	}
	return rep, nil
}

// probeCall calls tool t with args and reports what the call did.
func probeCall(ctx context.Context, h *host.Host, m *manifest.Manifest, t *manifest.Tool, args json.RawMessage, rec *audit.Memory, logs *lockedWriter, echoed func(string) bool) ToolReport {
	tr := ToolReport{Tool: t.Name, Arguments: args, Requests: []ObservedRequest{}}
	_, logStart := logs.since(0)
	res := h.Call(ctx, host.CallRequest{Tool: m.Name + "." + t.Name, Arguments: args, Agent: "airlock-plugin-test", Confirmed: true})
	tr.OK, tr.Error = res.OK, res.Error
	switch {
	case len(t.OutputSchema) == 0:
		tr.Output = "no output_schema declared"
	case res.OK:
		tr.Output = "valid against output_schema"
	case res.Error != nil && res.Error.Code == "invalid_output":
		tr.Output = "INVALID: " + res.Error.Message
	default:
		tr.Output = "not checked (the call failed)"
	}
	for _, ev := range rec.Events() {
		if ev.RequestID != res.Meta.RequestID {
			continue
		}
		b, _ := json.Marshal(ev)
		if echoed(string(b)) {
			tr.CanaryEchoes = append(tr.CanaryEchoes, "audit record ("+ev.Kind+")")
		}
		if ev.Kind == audit.KindRequest {
			tr.Requests = append(tr.Requests, ObservedRequest{Method: ev.Method, URL: ev.URL, Outcome: ev.Outcome,
				Status: ev.Status, Credential: ev.Credential, Injected: ev.Injected, Message: ev.Message})
		}
	}
	if b, _ := json.Marshal(res); echoed(string(b)) {
		tr.CanaryEchoes = append(tr.CanaryEchoes, "tool result")
	}
	if newLogs, _ := logs.since(logStart); echoed(newLogs) {
		tr.CanaryEchoes = append(tr.CanaryEchoes, "host log")
	}
	return tr
}

// givenSource resolves "given:SLOT" to the real secret ProbeOptions.Secrets named for SLOT.
type givenSource map[string]secret.Value

func (g givenSource) Resolve(_ context.Context, ref string) (secret.Value, error) {
	v, ok := g[ref]
	if !ok {
		return secret.Value{}, fmt.Errorf("unknown reference %q", ref)
	}
	return v, nil
}

func slotNames(m *manifest.Manifest) string {
	var names []string
	for _, c := range m.Credentials {
		names = append(names, c.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func hostForURL(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// lockedWriter serialises writes from concurrent log calls and reads of what was written.
type lockedWriter struct {
	mu sync.Mutex
	w  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// since returns what was written after the first n bytes, and the new length.
func (l *lockedWriter) since(n int) (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.w.Bytes()[n:]), l.w.Len()
}

// ExampleArguments makes arguments for a tool from its input schema: the first of a schema's
// examples, else its const, default or first enum value, else a minimal value of its type
// (required properties only). The result is checked against the schema; when it does not match
// (a pattern the generator cannot satisfy) the error says to add examples.
func ExampleArguments(t *manifest.Tool) (json.RawMessage, error) {
	var schema any
	if err := json.Unmarshal(t.InputSchema, &schema); err != nil {
		return nil, fmt.Errorf("input_schema does not decode: %v", err)
	}
	v := example(schema, 0)
	if v == nil {
		v = map[string]any{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if err := t.ValidateInput(b); err != nil {
		return b, fmt.Errorf("could not make valid arguments from the input schema (%v): add \"examples\" to the schema (or to the properties it cannot satisfy)", err)
	}
	return b, nil
}

func example(s any, depth int) any {
	m, ok := s.(map[string]any)
	if !ok || depth > 16 {
		return nil
	}
	if ex, ok := m["examples"].([]any); ok && len(ex) > 0 {
		return ex[0]
	}
	for _, k := range []string{"const", "default"} {
		if v, ok := m[k]; ok {
			return v
		}
	}
	if e, ok := m["enum"].([]any); ok && len(e) > 0 {
		return e[0]
	}
	typ, _ := m["type"].(string)
	if ts, ok := m["type"].([]any); ok {
		for _, x := range ts {
			if s, _ := x.(string); s != "null" {
				typ = s
				break
			}
		}
	}
	if typ == "" {
		if _, ok := m["properties"]; ok {
			typ = "object"
		}
	}
	num := func(key string, def float64) float64 {
		if f, ok := m[key].(float64); ok {
			return f
		}
		return def
	}
	switch typ {
	case "object":
		out := map[string]any{}
		props, _ := m["properties"].(map[string]any)
		req, _ := m["required"].([]any)
		for _, r := range req {
			name, _ := r.(string)
			out[name] = example(props[name], depth+1)
			if out[name] == nil {
				out[name] = "example"
			}
		}
		return out
	case "array":
		n := int(num("minItems", 0))
		out := make([]any, 0, n)
		for range n {
			out = append(out, example(m["items"], depth+1))
		}
		return out
	case "integer":
		return int64(max(num("minimum", 1), num("exclusiveMinimum", 0)+1))
	case "number":
		return max(num("minimum", 1), num("exclusiveMinimum", 0)+1)
	case "boolean":
		return false
	case "string":
		switch m["format"] {
		case "date-time":
			return "2024-01-01T00:00:00Z"
		case "date":
			return "2024-01-01"
		case "email":
			return "user@example.com"
		case "uri", "url":
			return "https://example.com/"
		case "uuid":
			return "00000000-0000-4000-8000-000000000000"
		}
		s := "example"
		if p, ok := m["pattern"].(string); ok {
			if g, ok := fromPattern(p); ok {
				return g
			}
		}
		if n := int(num("minLength", 0)); n > len(s) {
			s += strings.Repeat("x", n-len(s))
		}
		if n := int(num("maxLength", -1)); n >= 0 && n < len(s) {
			s = s[:n]
		}
		return s
	}
	return nil
}

// fromPattern makes a short string matching a regular expression, when it can: the first
// alternative, the first character of each class, each repetition at its minimum.
func fromPattern(pattern string) (string, bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", false
	}
	var b strings.Builder
	var gen func(*syntax.Regexp, int) bool
	gen = func(r *syntax.Regexp, depth int) bool {
		if depth > 32 || b.Len() > 4096 {
			return false
		}
		switch r.Op {
		case syntax.OpLiteral:
			b.WriteString(string(r.Rune))
		case syntax.OpCharClass:
			if len(r.Rune) == 0 {
				return false
			}
			b.WriteRune(r.Rune[0])
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			b.WriteByte('a')
		case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
			syntax.OpStar, syntax.OpQuest:
		case syntax.OpWordBoundary, syntax.OpNoWordBoundary:
			return false
		case syntax.OpCapture, syntax.OpPlus:
			return gen(r.Sub[0], depth+1)
		case syntax.OpRepeat:
			for range r.Min {
				if !gen(r.Sub[0], depth+1) {
					return false
				}
			}
		case syntax.OpConcat:
			for _, sub := range r.Sub {
				if !gen(sub, depth+1) {
					return false
				}
			}
		case syntax.OpAlternate:
			return gen(r.Sub[0], depth+1)
		default:
			return false
		}
		return true
	}
	if !gen(re, 0) {
		return "", false
	}
	ok, err := regexp.MatchString(pattern, b.String())
	return b.String(), err == nil && ok
}

// Failed reports whether the probe found a problem: a call that failed (or a tool that could
// not be called for want of valid arguments), a result that does not match its output schema, a
// request outside the manifest's network rules, or an echo of a secret.
func (r *Report) Failed() bool {
	if r.CanaryEchoes > 0 {
		return true
	}
	for _, t := range r.Tools {
		if t.Skipped == "" && !t.OK || strings.HasPrefix(t.Output, "INVALID") {
			return true
		}
		for _, q := range t.Requests {
			if q.Outcome == "denied" {
				return true
			}
		}
	}
	return false
}

// String renders the report for a terminal.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", r.Connector, r.Version)
	fmt.Fprintf(&b, "declared destinations:\n")
	for _, d := range r.Declared {
		fmt.Fprintf(&b, "  %s\n", d)
	}
	for _, u := range r.Unmapped {
		fmt.Fprintf(&b, "  (not probed: wildcard host %s cannot be sent to the fake)\n", u)
	}
	for _, t := range r.Tools {
		fmt.Fprintf(&b, "\ntool %s\n", t.Tool)
		if t.Skipped != "" {
			fmt.Fprintf(&b, "  skipped: %s\n", t.Skipped)
			continue
		}
		fmt.Fprintf(&b, "  arguments: %s\n", t.Arguments)
		if t.OK {
			fmt.Fprintf(&b, "  result: ok\n")
		} else if t.Error != nil {
			fmt.Fprintf(&b, "  result: error %s (%s): %s\n", t.Error.Code, t.Error.Category, t.Error.Message)
		}
		fmt.Fprintf(&b, "  output: %s\n", t.Output)
		if len(t.Requests) == 0 {
			fmt.Fprintf(&b, "  requests: none\n")
		}
		for _, q := range t.Requests {
			line := fmt.Sprintf("  request: %s %s -> %s", q.Method, q.URL, q.Outcome)
			if q.Status != 0 {
				line += " " + strconv.Itoa(q.Status)
			}
			if q.Credential != "" {
				line += fmt.Sprintf(" [credential %s injected=%v]", q.Credential, q.Injected)
			}
			if q.Outcome == "denied" && q.Message != "" {
				line += ": NOT DECLARED: " + q.Message
			}
			fmt.Fprintln(&b, line)
		}
		for _, e := range t.CanaryEchoes {
			fmt.Fprintf(&b, "  SECRET ECHO: the canary secret appeared in the %s\n", e)
		}
	}
	if r.CanaryEchoes == 0 {
		fmt.Fprintf(&b, "\nno echo of the canary secret\n")
	} else {
		fmt.Fprintf(&b, "\n%d echoes of the canary secret: report this as a security bug\n", r.CanaryEchoes)
	}
	var failed, denied, calls int
	for _, t := range r.Tools {
		if t.Skipped != "" {
			continue
		}
		calls++
		if !t.OK {
			failed++
		}
		for _, q := range t.Requests {
			if q.Outcome == "denied" {
				denied++
			}
		}
	}
	switch {
	case r.Failed():
		fmt.Fprintf(&b, "FAIL: %d of %d calls failed, %d requests outside the manifest, %d secret echoes\n", failed, calls, denied, r.CanaryEchoes)
	default:
		fmt.Fprintf(&b, "PASS: %d calls\n", calls)
	}
	return b.String()
}
