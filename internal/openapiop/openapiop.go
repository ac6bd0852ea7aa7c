// Package openapiop is the operation table that `airlock openapi import` writes into a manifest
// and the generic OpenAPI connector (plugins/openapi) reads back, and the request builder that
// turns one tool call's arguments into the HTTP request the operation describes. It imports only
// the standard library, so the connector's WebAssembly module stays small.
//
// A manifest made by the importer gives each tool its own export (op0, op1, …) and a config key
// of the same name whose default is the tool's [Operation] as JSON:
//
//	config:
//	  - name: op0
//	    default: '{"method":"GET","server":"https://petstore.example.com/api","path":"/pets/{id}",
//	               "params":[{"name":"id","in":"path","arg":"id"}]}'
//
// Example:
//
//	req, err := openapiop.Build(op, []byte(`{"id":42}`))
//	// req.Method == "GET", req.URL == "https://petstore.example.com/api/pets/42"
package openapiop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Operation is one API operation as the generic connector runs it.
type Operation struct {
	// Method is the HTTP method in upper case.
	Method string `json:"method"`
	// Server is the base URL the path is appended to (scheme://host[:port][/prefix], no
	// trailing slash, no query).
	Server string `json:"server"`
	// Variables are Server's {variables}, each filled from a config key (ExpandServer).
	Variables []ServerVariable `json:"variables,omitempty"`
	// Path is the path template relative to Server, e.g. /pets/{id}.
	Path string `json:"path"`
	// Params are the operation's path, query, header and cookie parameters.
	Params []Param `json:"params,omitempty"`
	// Body says how the request body is sent; nil means no body.
	Body *Body `json:"body,omitempty"`
	// Credential names the manifest credential slot the host injects ("" for none).
	Credential string `json:"credential,omitempty"`
	// Pagination says how to find the next page, when the description (or an admin editing
	// the manifest) declares one; nil means the operation is not paginated.
	Pagination *Pagination `json:"pagination,omitempty"`
}

// Pagination kinds.
const (
	// PageCursor: the response body holds the next cursor at Field; pass it as Arg.
	PageCursor = "cursor"
	// PageLink: the Link header's rel="next" URL holds the next page's query parameters.
	PageLink = "link"
	// PageOffset: the next page starts at Arg (offset) + LimitArg (limit) when the page was full.
	PageOffset = "offset"
)

// Pagination is how an operation pages.
type Pagination struct {
	Kind string `json:"kind"`
	// Arg is the argument that takes the cursor or offset.
	Arg string `json:"arg,omitempty"`
	// Field is the path of the next cursor in the response body (cursor), e.g.
	// ["response_metadata", "next_cursor"].
	Field []string `json:"field,omitempty"`
	// More is the path of a boolean saying whether more pages exist (has_more); when it is
	// false there is no next page whatever Field holds.
	More []string `json:"more,omitempty"`
	// LimitArg is the page-size argument (offset).
	LimitArg string `json:"limit_arg,omitempty"`
}

// Next returns the arguments to add to args for the next page, or nil when there is none (or
// it cannot be told). body is the decoded JSON response, headers the response headers.
func (op *Operation) Next(args []byte, body any, headers map[string][]string) map[string]any {
	p := op.Pagination
	if p == nil {
		return nil
	}
	switch p.Kind {
	case PageCursor:
		if more, ok := lookup(body, p.More).(bool); len(p.More) > 0 && (!ok || !more) {
			return nil
		}
		switch v := lookup(body, p.Field).(type) {
		case string:
			if v != "" {
				return map[string]any{p.Arg: v}
			}
		case float64:
			return map[string]any{p.Arg: v}
		}
	case PageLink:
		for _, h := range headerValues(headers, "Link") {
			for _, part := range strings.Split(h, ",") {
				target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
				if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) && !strings.Contains(params, "rel=next") {
					continue
				}
				u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
				if err != nil {
					return nil
				}
				next := map[string]any{}
				q := u.Query()
				for _, prm := range op.Params {
					if prm.In == "query" && q.Has(prm.Name) {
						next[prm.Arg] = q.Get(prm.Name)
					}
				}
				if len(next) > 0 {
					return next
				}
			}
		}
	case PageOffset:
		var in map[string]any
		dec := json.NewDecoder(bytes.NewReader(args))
		dec.UseNumber()
		if dec.Decode(&in) != nil {
			return nil
		}
		limit, err1 := number(in[p.LimitArg])
		offset, _ := number(in[p.Arg])
		if err1 != nil || limit <= 0 || pageLen(body) < int(limit) {
			return nil
		}
		return map[string]any{p.Arg: offset + limit}
	}
	return nil
}

func number(v any) (float64, error) {
	switch n := v.(type) {
	case json.Number:
		return n.Float64()
	case nil:
		return 0, nil
	}
	return 0, errors.New("not a number")
}

// pageLen is the length of the body's first array: the body itself or its first array field.
func pageLen(body any) int {
	switch b := body.(type) {
	case []any:
		return len(b)
	case map[string]any:
		for _, k := range sortedKeys(b) {
			if a, ok := b[k].([]any); ok {
				return len(a)
			}
		}
	}
	return 0
}

func lookup(v any, path []string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func headerValues(h map[string][]string, key string) []string {
	for k, v := range h {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// ServerVariable is a {variable} of Operation.Server whose value is the config key Config (the
// manifest holds the description's default; a grant may set another value, which reaches the
// network only where the manifest has a rule for it).
type ServerVariable struct {
	Name   string `json:"name"`
	Config string `json:"config"`
}

// serverValue is what a server variable may hold: it lands in a host name or a path segment.
var serverValue = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$`)

// ExpandServer fills op.Server's variables with the values lookup returns (pdk.Config in the
// connector). A value that is missing or not a run of letters, digits, '.' and '-' is refused.
func (op *Operation) ExpandServer(lookup func(key string) (string, bool)) error {
	for _, v := range op.Variables {
		val, ok := lookup(v.Config)
		if !ok || !serverValue.MatchString(val) || strings.Contains(val, "..") {
			return fmt.Errorf("server variable %s (config %s) must be set to letters, digits, '.' and '-'", v.Name, v.Config)
		}
		op.Server = strings.ReplaceAll(op.Server, "{"+v.Name+"}", val)
	}
	return nil
}

// Param is one parameter of an operation.
type Param struct {
	// Name is the parameter's name on the wire.
	Name string `json:"name"`
	// In is path, query, header or cookie.
	In string `json:"in"`
	// Arg is the tool argument holding the value (Name unless two parameters share a name).
	Arg string `json:"arg"`
	// Style is the OpenAPI serialisation style; "" means the default for In (simple for path
	// and header, form for query and cookie).
	Style string `json:"style,omitempty"`
	// Explode is the OpenAPI explode flag; nil means the default for Style (true for form).
	Explode *bool `json:"explode,omitempty"`
}

// Body is how an operation sends its request body.
type Body struct {
	// MediaType is application/json or application/x-www-form-urlencoded.
	MediaType string `json:"media_type"`
	// Arg is the tool argument holding the body ("body").
	Arg string `json:"arg"`
}

// Media types the builder writes.
const (
	MediaJSON = "application/json"
	MediaForm = "application/x-www-form-urlencoded"
)

// Request is the HTTP request an operation's arguments produce.
type Request struct {
	Method  string
	URL     string
	Headers map[string][]string
	Body    []byte
}

// ArgumentError is a tool argument the builder cannot put into a request; Message is safe to
// show an agent.
type ArgumentError struct {
	Arg     string
	Message string
}

func (e *ArgumentError) Error() string { return fmt.Sprintf("argument %s: %s", e.Arg, e.Message) }

// Build turns a tool call's arguments (a JSON object, already validated by the host against the
// tool's input schema) into the operation's HTTP request.
//
// Path parameters are expanded as RFC 6570 simple string expansion: every byte outside the
// unreserved set is percent-encoded, so "/", "?", "#", "%", CR and LF stay inside their path
// segment; a value that would make a whole segment "." or ".." is refused, because URL
// normalisation would otherwise move the request to another path.
func Build(op *Operation, args []byte) (*Request, error) {
	var in map[string]json.RawMessage
	if len(bytes.TrimSpace(args)) > 0 {
		if err := json.Unmarshal(args, &in); err != nil {
			return nil, &ArgumentError{Arg: "(arguments)", Message: "the arguments must be a JSON object"}
		}
	}
	req := &Request{Method: op.Method, Headers: map[string][]string{}}
	path := op.Path
	var query []string
	var cookies []string
	for _, p := range op.Params {
		raw, ok := in[p.Arg]
		if !ok || string(raw) == "null" {
			if p.In == "path" {
				return nil, &ArgumentError{Arg: p.Arg, Message: "is required (it is part of the URL path)"}
			}
			continue
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, &ArgumentError{Arg: p.Arg, Message: "is not valid JSON"}
		}
		switch p.In {
		case "path":
			seg, err := pathValue(p, v)
			if err != nil {
				return nil, err
			}
			path = strings.ReplaceAll(path, "{"+p.Name+"}", seg)
		case "query":
			q, err := queryValue(p, v)
			if err != nil {
				return nil, err
			}
			query = append(query, q...)
		case "header":
			s, err := simple(p, v, false)
			if err != nil {
				return nil, err
			}
			if strings.ContainsAny(s, "\r\n\x00") {
				return nil, &ArgumentError{Arg: p.Arg, Message: "must not contain line breaks or NUL (it is sent as an HTTP header)"}
			}
			req.Headers[p.Name] = []string{s}
		case "cookie":
			s, err := simple(p, v, false)
			if err != nil {
				return nil, err
			}
			cookies = append(cookies, p.Name+"="+url.QueryEscape(s))
		}
	}
	if strings.Contains(path, "{") {
		return nil, &ArgumentError{Arg: "(path)", Message: "the operation's path has a parameter the tool does not declare: re-import the connector"}
	}
	u := strings.TrimSuffix(op.Server, "/") + path
	if len(query) > 0 {
		u += "?" + strings.Join(query, "&")
	}
	req.URL = u
	if len(cookies) > 0 {
		req.Headers["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if op.Body != nil {
		raw, ok := in[op.Body.Arg]
		if ok && string(raw) != "null" {
			b, err := encodeBody(op.Body, raw)
			if err != nil {
				return nil, err
			}
			req.Body = b
			req.Headers["Content-Type"] = []string{op.Body.MediaType}
		}
	}
	return req, nil
}

// pathValue expands one path parameter (styles simple, label and matrix).
func pathValue(p Param, v any) (string, error) {
	style := p.Style
	explode := p.Explode != nil && *p.Explode
	var s string
	switch style {
	case "", "simple":
		var err error
		if s, err = simple(p, v, true); err != nil {
			return "", err
		}
	case "label":
		parts, err := flatten(p, v, explode, true)
		if err != nil {
			return "", err
		}
		sep := ","
		if explode {
			sep = "."
		}
		s = "." + strings.Join(parts, sep)
	case "matrix":
		parts, err := flatten(p, v, explode, true)
		if err != nil {
			return "", err
		}
		if explode {
			s = ";" + p.Name + "=" + strings.Join(parts, ";"+p.Name+"=")
		} else {
			s = ";" + p.Name + "=" + strings.Join(parts, ",")
		}
	default:
		return "", &ArgumentError{Arg: p.Arg, Message: fmt.Sprintf("uses the path style %q, which this connector does not support", style)}
	}
	if s == "" {
		return "", &ArgumentError{Arg: p.Arg, Message: "must not be empty (it is a segment of the URL path)"}
	}
	if s == "." || s == ".." {
		return "", &ArgumentError{Arg: p.Arg, Message: `must not be "." or ".." (it is a segment of the URL path)`}
	}
	return s, nil
}

// simple is the simple style: scalars as text, arrays and objects comma-separated. With
// escape, each part is percent-encoded as RFC 6570 simple expansion does.
func simple(p Param, v any, escape bool) (string, error) {
	explode := p.Explode != nil && *p.Explode
	if m, ok := v.(map[string]any); ok && explode {
		var parts []string
		for _, k := range sortedKeys(m) {
			s, err := scalar(p, m[k])
			if err != nil {
				return "", err
			}
			parts = append(parts, esc(k, escape)+"="+esc(s, escape))
		}
		return strings.Join(parts, ","), nil
	}
	parts, err := flatten(p, v, false, escape)
	if err != nil {
		return "", err
	}
	return strings.Join(parts, ","), nil
}

// flatten lists the parts of a value: a scalar is one part, an array its items, an object its
// keys and values alternating (explode: key=value pairs).
func flatten(p Param, v any, explode, escape bool) ([]string, error) {
	switch t := v.(type) {
	case []any:
		parts := make([]string, 0, len(t))
		for _, item := range t {
			s, err := scalar(p, item)
			if err != nil {
				return nil, err
			}
			parts = append(parts, esc(s, escape))
		}
		return parts, nil
	case map[string]any:
		var parts []string
		for _, k := range sortedKeys(t) {
			s, err := scalar(p, t[k])
			if err != nil {
				return nil, err
			}
			if explode {
				parts = append(parts, esc(k, escape)+"="+esc(s, escape))
			} else {
				parts = append(parts, esc(k, escape), esc(s, escape))
			}
		}
		return parts, nil
	default:
		s, err := scalar(p, v)
		if err != nil {
			return nil, err
		}
		return []string{esc(s, escape)}, nil
	}
}

// queryValue serialises one query parameter into name=value pairs, already escaped.
func queryValue(p Param, v any) ([]string, error) {
	explode := p.Explode == nil || *p.Explode
	style := p.Style
	if style == "" {
		style = "form"
	}
	name := url.QueryEscape(p.Name)
	switch style {
	case "form":
		_, isArray := v.([]any)
		m, isObject := v.(map[string]any)
		switch {
		case (isArray || isObject) && !explode: // name=a,b or name=k,v,k2,v2
			parts, err := flatten(p, v, false, false)
			if err != nil {
				return nil, err
			}
			return []string{name + "=" + joinEscaped(parts, ",")}, nil
		case isObject: // exploded: each key is a parameter
			var out []string
			for _, k := range sortedKeys(m) {
				s, err := scalar(p, m[k])
				if err != nil {
					return nil, err
				}
				out = append(out, url.QueryEscape(k)+"="+url.QueryEscape(s))
			}
			return out, nil
		default: // a scalar, or an exploded array: name=a&name=b
			parts, err := flatten(p, v, false, false)
			if err != nil {
				return nil, err
			}
			out := make([]string, len(parts))
			for i, s := range parts {
				out[i] = name + "=" + url.QueryEscape(s)
			}
			return out, nil
		}
	case "spaceDelimited", "pipeDelimited":
		sep := "%20"
		if style == "pipeDelimited" {
			sep = "|"
		}
		parts, err := flatten(p, v, false, false)
		if err != nil {
			return nil, err
		}
		if _, isArray := v.([]any); isArray && explode {
			var out []string
			for _, s := range parts {
				out = append(out, name+"="+url.QueryEscape(s))
			}
			return out, nil
		}
		for i := range parts {
			parts[i] = url.QueryEscape(parts[i])
		}
		return []string{name + "=" + strings.Join(parts, sep)}, nil
	case "deepObject":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, &ArgumentError{Arg: p.Arg, Message: "must be an object (it is sent as " + p.Name + "[key]=value)"}
		}
		var out []string
		for _, k := range sortedKeys(m) {
			s, err := scalar(p, m[k])
			if err != nil {
				return nil, err
			}
			out = append(out, url.QueryEscape(p.Name+"["+k+"]")+"="+url.QueryEscape(s))
		}
		return out, nil
	default:
		return nil, &ArgumentError{Arg: p.Arg, Message: fmt.Sprintf("uses the query style %q, which this connector does not support", style)}
	}
}

func joinEscaped(parts []string, sep string) string {
	for i := range parts {
		parts[i] = url.QueryEscape(parts[i])
	}
	return strings.Join(parts, sep)
}

// scalar renders a JSON scalar as parameter text; nested arrays or objects are JSON.
func scalar(p Param, v any) (string, error) {
	switch t := v.(type) {
	case string:
		return t, nil
	case json.Number:
		return t.String(), nil
	case bool:
		return strconv.FormatBool(t), nil
	case nil:
		return "", nil
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return "", &ArgumentError{Arg: p.Arg, Message: "cannot be serialised"}
		}
		return string(b), nil
	}
}

// esc percent-encodes every byte outside RFC 3986's unreserved set (RFC 6570 simple expansion).
func esc(s string, escape bool) string {
	if !escape {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// encodeBody writes the body argument in the operation's media type.
func encodeBody(b *Body, raw json.RawMessage) ([]byte, error) {
	switch b.MediaType {
	case MediaJSON:
		return raw, nil
	case MediaForm:
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return nil, &ArgumentError{Arg: b.Arg, Message: "must be an object (it is sent as a form)"}
		}
		form := url.Values{}
		p := Param{Arg: b.Arg}
		for _, k := range sortedKeys(m) {
			if arr, ok := m[k].([]any); ok {
				for _, item := range arr {
					s, err := scalar(p, item)
					if err != nil {
						return nil, err
					}
					form.Add(k, s)
				}
				continue
			}
			s, err := scalar(p, m[k])
			if err != nil {
				return nil, err
			}
			form.Set(k, s)
		}
		return []byte(form.Encode()), nil
	default:
		return nil, errors.New("openapiop: unsupported body media type " + b.MediaType)
	}
}
