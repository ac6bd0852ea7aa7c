package openapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/openapi"
	"github.com/airlock-dev/airlock/internal/fakeopenapi"
	"github.com/airlock-dev/airlock/internal/openapiop"
)

// The operations each round-trip test imports: every operation of Petstore, and a set of the
// Slack and OpenAI operations covering path, query and header parameters, form and JSON bodies,
// enums, nullable and 3.1 type lists.
var roundTrips = []struct {
	spec string
	ops  []string
}{
	{"petstore_expanded_3.0.yaml", []string{"GET /pets", "POST /pets", "find pet by id", "deletePet"}},
	{"slack_web_openapi_v2.json", []string{"chat_postMessage", "conversations_list", "conversations_history", "users_info", "reactions_add", "chat_delete", "conversations_create", "files_list"}},
	{"openai_openapi_3.1.yaml", []string{"listModels", "retrieveModel", "deleteModel", "createEmbedding", "createChatCompletion", "listFiles", "createModeration", "listPaginatedFineTuningJobs", "retrieveFineTuningJob", "createImage"}},
}

// independentDoc loads a description with kin-openapi directly, apart from the importer, for the
// request validator. Slack's Swagger 2.0 file writes `items` as a list in places, which no
// strict parser accepts; those are rewritten to anyOf here too.
func independentDoc(t *testing.T, path string) *openapi3.T {
	t.Helper()
	f, _ := independentDocs.LoadOrStore(path, sync.OnceValues(func() (*openapi3.T, error) { return loadIndependent(path) }))
	doc, err := f.(func() (*openapi3.T, error))()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

var independentDocs sync.Map // path -> func() (*openapi3.T, error)

func loadIndependent(path string) (*openapi3.T, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(path, "_v2") {
		doc, err := openapi3.NewLoader().LoadFromData(data)
		if err != nil {
			return nil, err
		}
		return doc, nil
	}
	var tree any
	if err := json.Unmarshal(data, &tree); err != nil {
		return nil, err
	}
	var fix func(any)
	fix = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if l, ok := c.([]any); ok && k == "items" {
					x[k] = map[string]any{"anyOf": l}
				}
				fix(x[k])
			}
		case []any:
			for _, c := range x {
				fix(c)
			}
		}
	}
	fix(tree)
	b, _ := json.Marshal(tree)
	var d2 openapi2.T
	if err := json.Unmarshal(b, &d2); err != nil {
		return nil, err
	}
	doc, err := openapi2conv.ToV3(&d2)
	if err != nil {
		return nil, err
	}
	return doc, nil
}

// TestRoundTrip: for each imported tool, arguments generated from its input schema are accepted
// by the host's validation, and the request the generic connector builds from them validates
// against the original operation with kin-openapi's openapi3filter. Arguments the schema does
// not allow are refused by the host's validation (the host runs it before any plugin).
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, rt := range roundTrips {
		t.Run(rt.spec, func(t *testing.T) {
			path := specPath(t, rt.spec)
			res, err := loadSpec(t, rt.spec).Import(openapi.Selection{Operations: rt.ops}, &openapi.ImportOptions{Name: "rt"})
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Parse("rt.yaml", res.Manifest)
			if err != nil {
				t.Fatal(err)
			}
			doc := independentDoc(t, path)
			router, err := gorillamux.NewRouter(doc)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Tools) != len(rt.ops) {
				t.Errorf("%d tools for %d operations", len(m.Tools), len(rt.ops))
			}
			for i := range m.Tools {
				tool := &m.Tools[i]
				op := operationOf(t, m, tool)
				var schema map[string]any
				if err := json.Unmarshal(tool.InputSchema, &schema); err != nil {
					t.Fatal(err)
				}
				for variant, full := range map[string]bool{"required only": false, "every property": true} {
					g := &gen{root: schema, full: full}
					args, _ := json.Marshal(g.value(schema, 0))
					if err := tool.ValidateInput(args); err != nil {
						t.Errorf("%s (%s): generated arguments %s rejected by the host: %v", tool.Name, variant, args, err)
						continue
					}
					req, err := openapiop.Build(op, args)
					if err != nil {
						t.Errorf("%s (%s): Build(%s) = %v", tool.Name, variant, args, err)
						continue
					}
					hreq := httpRequest(t, req)
					injectDeclaredCredential(hreq, doc, op)
					if _, _, err := fakeopenapi.ValidateRequest(router, hreq); err != nil {
						t.Errorf("%s (%s): request %s %s (body %.200s) does not validate against the description: %v",
							tool.Name, variant, req.Method, req.URL, req.Body, err)
					}
				}
				for _, bad := range invalidArguments(schema) {
					if err := tool.ValidateInput([]byte(bad)); err == nil {
						t.Errorf("%s: invalid arguments %s accepted by the host's validation", tool.Name, bad)
					}
				}
			}
		})
	}
}

func operationOf(t *testing.T, m *manifest.Manifest, tool *manifest.Tool) *openapiop.Operation {
	t.Helper()
	for _, k := range m.Config {
		if k.Name == tool.Export {
			var op openapiop.Operation
			if err := json.Unmarshal([]byte(k.Default), &op); err != nil {
				t.Fatal(err)
			}
			return &op
		}
	}
	t.Fatalf("tool %s: no config key %s", tool.Name, tool.Export)
	return nil
}

func httpRequest(t *testing.T, r *openapiop.Request) *http.Request {
	t.Helper()
	req, err := http.NewRequest(r.Method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("http.NewRequest(%s %s): %v", r.Method, r.URL, err)
	}
	for k, v := range r.Headers {
		req.Header[http.CanonicalHeaderKey(k)] = v
	}
	return req
}

// injectDeclaredCredential stands in for the host's credential injection where a description
// declares the credential as an ordinary parameter (Slack's required `token`), which the importer
// leaves to the host: the validator needs it present.
func injectDeclaredCredential(req *http.Request, doc *openapi3.T, op *openapiop.Operation) {
	item := doc.Paths.Find(op.Path)
	if item == nil {
		return
	}
	o := item.GetOperation(op.Method)
	if o == nil {
		return
	}
	for _, p := range o.Parameters {
		if p.Value == nil || p.Value.Name != "token" || !p.Value.Required {
			continue
		}
		switch p.Value.In {
		case "header":
			req.Header.Set("token", "host-injected")
		case "query":
			q := req.URL.Query()
			q.Set("token", "host-injected")
			req.URL.RawQuery = q.Encode()
		}
	}
}

// invalidArguments are argument objects the schema must refuse: an unknown property, each
// required property missing, and a required property of the wrong type.
func invalidArguments(schema map[string]any) []string {
	out := []string{`{"no_such_argument_xyz":1}`, `[]`}
	req, _ := schema["required"].([]any)
	props, _ := schema["properties"].(map[string]any)
	for _, r := range req {
		name := r.(string)
		g := &gen{root: schema}
		full := g.value(schema, 0).(map[string]any)
		delete(full, name)
		b, _ := json.Marshal(full)
		out = append(out, string(b))
		if p, ok := props[name].(map[string]any); ok {
			if typ, _ := p["type"].(string); typ == "string" || typ == "integer" || typ == "object" {
				full[name] = []any{true}
				b, _ := json.Marshal(full)
				out = append(out, string(b))
			}
		}
	}
	return out
}

// gen makes a value a JSON Schema accepts: const, enum, default or example first, else the
// smallest value of the type meeting its bounds; objects get their required properties (every
// property when full, at the top level).
type gen struct {
	root map[string]any
	full bool
}

func (g *gen) value(s map[string]any, depth int) any {
	if depth > 12 {
		return nil
	}
	if ref, ok := s["$ref"].(string); ok {
		defs, _ := g.root["$defs"].(map[string]any)
		target, _ := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		return g.value(target, depth+1)
	}
	if v, ok := s["const"]; ok {
		return v
	}
	if enum, ok := s["enum"].([]any); ok {
		for _, v := range enum {
			if v != nil {
				return v
			}
		}
	}
	if v, ok := s["default"]; ok && v != nil {
		return v
	}
	if ex, ok := s["examples"].([]any); ok && len(ex) > 0 && ex[0] != nil {
		if _, isObj := ex[0].(map[string]any); !isObj {
			return ex[0]
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		merged := map[string]any{}
		for _, sub := range all {
			if m, ok := g.value(sub.(map[string]any), depth+1).(map[string]any); ok {
				for k, v := range m {
					merged[k] = v
				}
			}
		}
		if obj, ok := g.object(s, depth).(map[string]any); ok {
			for k, v := range obj {
				merged[k] = v
			}
		}
		return merged
	}
	for _, kw := range []string{"oneOf", "anyOf"} {
		if alts, ok := s[kw].([]any); ok && len(alts) > 0 {
			return g.value(alts[0].(map[string]any), depth+1)
		}
	}
	typ := s["type"]
	if list, ok := typ.([]any); ok {
		typ = nil
		for _, x := range list {
			if x != "null" {
				typ = x
				break
			}
		}
	}
	switch typ {
	case "string":
		return g.str(s)
	case "integer":
		return int64(number(s))
	case "number":
		return number(s)
	case "boolean":
		return true
	case "array":
		items, _ := s["items"].(map[string]any)
		n := 1
		if min, ok := s["minItems"].(float64); ok && int(min) > n {
			n = int(min)
		}
		out := make([]any, n)
		for i := range out {
			out[i] = g.value(items, depth+1)
			if str, ok := out[i].(string); ok && i > 0 {
				out[i] = fmt.Sprintf("%s%d", str, i) // uniqueItems
			}
		}
		return out
	case "null":
		return nil
	default:
		return g.object(s, depth)
	}
}

func (g *gen) object(s map[string]any, depth int) any {
	props, _ := s["properties"].(map[string]any)
	out := map[string]any{}
	want := map[string]bool{}
	for _, r := range asList(s["required"]) {
		want[r.(string)] = true
	}
	if g.full && depth == 0 {
		for k := range props {
			want[k] = true
		}
	}
	names := make([]string, 0, len(want))
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p, _ := props[k].(map[string]any)
		out[k] = g.value(p, depth+1)
	}
	return out
}

// number is 1 moved into [minimum, maximum].
func number(s map[string]any) float64 {
	n := 1.0
	if min, ok := s["minimum"].(float64); ok && min > n {
		n = min
	}
	if max, ok := s["maximum"].(float64); ok && max < n {
		n = max
	}
	return n
}

func asList(v any) []any { l, _ := v.([]any); return l }

func (g *gen) str(s map[string]any) string {
	var v string
	switch s["format"] {
	case "date-time":
		v = "2026-01-02T03:04:05Z"
	case "date":
		v = "2026-01-02"
	case "email":
		v = "agent@example.com"
	case "uri", "url":
		v = "https://example.com/x"
	case "uuid":
		v = "0b5a6a52-9cf3-4a5b-8f0e-8d1bd1c7f0a1"
	default:
		v = "abc"
	}
	if min, ok := s["minLength"].(float64); ok && len(v) < int(min) {
		v += strings.Repeat("x", int(min)-len(v))
	}
	if max, ok := s["maxLength"].(float64); ok && len(v) > int(max) {
		v = v[:int(max)]
	}
	return v
}

// TestRoundTripThroughHost runs the OpenAI round trip through the whole path: host validation,
// the generic connector in its sandbox, egress with the bearer token injected, and a fake API
// that validates each request against the description (destructive tools wait for a human's
// approval and are left to TestRoundTrip).
func TestRoundTripThroughHost(t *testing.T) {
	const file = "openai_openapi_3.1.yaml"
	var ops []string
	for _, rt := range roundTrips {
		if rt.spec == file {
			ops = rt.ops
		}
	}
	path := specPath(t, file)
	fake := fakeopenapi.New(independentDoc(t, path), "https://api.openai.com", func(*fakeopenapi.Request) (int, any) {
		return 200, map[string]any{}
	})
	t.Cleanup(fake.Close)
	t.Setenv("AIRLOCK_OPENAPI_TEST_TOKEN", "sk-canary-5e1f")
	h, _, res := importAndLoad(t, path, openapi.Selection{Operations: ops}, openapi.ImportOptions{Name: "openai"}, `
connector: openai
tools: ["*"]
hosts: ["*"]
credentials: {api_key_auth: "env:AIRLOCK_OPENAPI_TEST_TOKEN"}
upstreams: {"https://api.openai.com": "`+fake.URL+`"}
`)
	m, err := manifest.Parse("openai.yaml", res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	for i := range m.Tools {
		tool := &m.Tools[i]
		if tool.Annotations.Destructive {
			continue
		}
		var schema map[string]any
		json.Unmarshal(tool.InputSchema, &schema)
		args, _ := json.Marshal((&gen{root: schema, full: true}).value(schema, 0))
		r := call(h, "openai."+tool.Name, string(args))
		calls++
		if !r.OK {
			t.Errorf("%s(%s) = %+v", tool.Name, args, r.Error)
		}
	}
	acc := fake.Accepted()
	if len(acc) != calls {
		t.Errorf("the fake accepted %d of %d requests; rejected:\n%s", len(acc), calls, strings.Join(fake.Rejected(), "\n"))
	}
	for _, a := range acc {
		if a.Header.Get("Authorization") != "Bearer sk-canary-5e1f" {
			t.Errorf("%s: the bearer token was not injected", a.OperationID)
		}
	}
}
