// Package openapi turns chosen operations of an OpenAPI description (Swagger 2.0, OpenAPI 3.0 or
// 3.1; JSON or YAML; a file or an https URL) into an airlock connector: a manifest whose tools are
// those operations, run by the generic connector module (plugins/openapi). It is what
// `airlock openapi import` runs.
//
// Importing never takes the whole API: [Import] needs a selection (operations or tags) and
// refuses an empty one with [ErrNoSelection], which says how many operations there are and how
// to choose. Descriptions are untrusted input: a document over [Options.MaxBytes] is refused
// before parsing, external $refs are read only from the description's own origin (its directory
// for a file) with bounded count and size, schema $refs become $defs (so cycles are fine) with a
// bounded number per tool, and servers on loopback, private or metadata addresses are refused
// unless asked for.
//
// Example:
//
//	spec, err := openapi.Load(ctx, "petstore.yaml", nil)
//	if err != nil { … }
//	res, err := spec.Import(openapi.Selection{Operations: []string{"GET /pets", "findPetById"}},
//		&openapi.ImportOptions{Name: "petstore"})
//	// res.Manifest is the manifest YAML; res.Tools the tool names.
package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"
)

// Defaults of [Options].
const (
	DefaultMaxBytes    = 16 << 20 // one document
	DefaultMaxRefFiles = 32       // external documents one description may pull in
)

// Options configure [Load]. The zero value (or nil) means the documented defaults.
type Options struct {
	// MaxBytes bounds each document (the description and every external $ref target), in bytes
	// (default DefaultMaxBytes, 16 MiB).
	MaxBytes int64
	// MaxRefFiles bounds the external documents $refs may pull in (default DefaultMaxRefFiles).
	MaxRefFiles int
	// HTTPClient fetches https descriptions and their same-origin $refs (default: a client with
	// a 30-second timeout).
	HTTPClient *http.Client
}

// Spec is a loaded description. It is safe for concurrent use once loaded (Import only reads).
type Spec struct {
	doc *openapi3.T
	// Version is the description's own version field: "2.0", "3.0.x" or "3.1.x".
	Version string
	// Source is where it was read from.
	Source string
	base   *url.URL // for relative server URLs of a remote description
}

// Errors callers branch on.
var (
	// ErrTooLarge: a document exceeds Options.MaxBytes.
	ErrTooLarge = errors.New("openapi: description too large")
	// ErrForeignRef: a $ref points outside the description's origin.
	ErrForeignRef = errors.New("openapi: $ref outside the description's origin")
)

// Load reads and parses a description from a file path or an http(s) URL.
func Load(ctx context.Context, source string, opts *Options) (*Spec, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxRefFiles <= 0 {
		o.MaxRefFiles = DefaultMaxRefFiles
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30e9}
	}
	r := &reader{ctx: ctx, opts: o}
	loc, err := r.location(source)
	if err != nil {
		return nil, err
	}
	r.origin = loc
	data, err := r.read(loc, o.HTTPClient)
	if err != nil {
		return nil, err
	}
	// $refs are read with a client that follows no redirect off the description's origin.
	refClient := *o.HTTPClient
	refClient.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !sameOrigin(r.origin, req.URL) || len(via) >= 5 {
			return fmt.Errorf("%w: redirected to %s", ErrForeignRef, redact(req.URL))
		}
		return nil
	}
	r.refClient = &refClient
	return r.parse(data, loc, source)
}

// reader reads the description and its external $refs under the limits.
type reader struct {
	ctx       context.Context
	opts      Options
	origin    *url.URL
	refClient *http.Client
	mu        sync.Mutex
	files     int
}

func (r *reader) location(source string) (*url.URL, error) {
	if strings.HasPrefix(source, "https://") || strings.HasPrefix(source, "http://") {
		u, err := url.Parse(source)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("openapi: %q is not a valid URL", source)
		}
		return u, nil
	}
	abs, err := filepath.Abs(source)
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return &url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}, nil
}

// read returns one document, refusing it when it is over the size limit.
func (r *reader) read(u *url.URL, client *http.Client) ([]byte, error) {
	var rc io.ReadCloser
	switch u.Scheme {
	case "file":
		f, err := os.Open(filepath.FromSlash(u.Path))
		if err != nil {
			return nil, fmt.Errorf("openapi: %w", err)
		}
		rc = f
	case "http", "https":
		req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("openapi: %w", err)
		}
		req.Header.Set("Accept", "application/json, application/yaml, text/yaml, */*")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("openapi: fetching %s: %w", redact(u), err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("openapi: fetching %s: the server answered %s", redact(u), resp.Status)
		}
		rc = resp.Body
	default:
		return nil, fmt.Errorf("openapi: cannot read %s: only files and http(s) URLs", redact(u))
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, r.opts.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("openapi: reading %s: %w", redact(u), err)
	}
	if int64(len(data)) > r.opts.MaxBytes {
		return nil, fmt.Errorf("%w: %s is over %d MiB; split it or raise the limit (--max-bytes)", ErrTooLarge, redact(u), r.opts.MaxBytes>>20)
	}
	return data, nil
}

// readRef is the loader's reader for external $refs: same origin only, bounded in count.
func (r *reader) readRef(_ *openapi3.Loader, u *url.URL) ([]byte, error) {
	if !sameOrigin(r.origin, u) {
		return nil, fmt.Errorf("%w: %s (only $refs to %s are followed)", ErrForeignRef, redact(u), originOf(r.origin))
	}
	r.mu.Lock()
	r.files++
	n := r.files
	r.mu.Unlock()
	if n > r.opts.MaxRefFiles {
		return nil, fmt.Errorf("openapi: the description pulls in more than %d external documents", r.opts.MaxRefFiles)
	}
	return r.read(u, r.refClient)
}

// sameOrigin: a remote description's $refs must stay on its scheme, host and port; a file's
// must stay in its directory tree.
func sameOrigin(origin, u *url.URL) bool {
	if origin.Scheme == "file" {
		if u.Scheme != "file" && u.Scheme != "" {
			return false
		}
		dir := filepath.Dir(filepath.FromSlash(origin.Path))
		p := filepath.Clean(filepath.FromSlash(u.Path))
		return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
	}
	return u.Scheme == origin.Scheme && strings.EqualFold(u.Host, origin.Host)
}

func originOf(u *url.URL) string {
	if u.Scheme == "file" {
		return filepath.Dir(filepath.FromSlash(u.Path))
	}
	return u.Scheme + "://" + u.Host
}

// redact drops user info and the query from a URL shown in an error.
func redact(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment = nil, "", ""
	return c.String()
}

// parse detects the version and builds the OpenAPI 3 model (Swagger 2.0 is converted).
func (r *reader) parse(data []byte, loc *url.URL, source string) (*Spec, error) {
	version, isSwagger := probeVersion(data)
	loader := openapi3.NewLoader()
	loader.Context = r.ctx
	loader.IsExternalRefsAllowed = true
	loader.ReadFromURIFunc = r.readRef
	spec := &Spec{Source: source}
	if loc.Scheme != "file" {
		spec.base = loc
	}
	switch {
	case isSwagger && strings.HasPrefix(version, "2."):
		spec.Version = version
		doc2, err := decodeSwagger2(data)
		if err != nil {
			return nil, fmt.Errorf("openapi: %s: %w", source, err)
		}
		doc, err := openapi2conv.ToV3WithLoader(doc2, loader, loc)
		if err != nil {
			return nil, fmt.Errorf("openapi: converting %s from Swagger 2.0: %w", source, err)
		}
		spec.doc = doc
	case !isSwagger && (strings.HasPrefix(version, "3.0") || strings.HasPrefix(version, "3.1")):
		spec.Version = version
		doc, err := loader.LoadFromDataWithPath(data, loc)
		if err != nil {
			return nil, fmt.Errorf("openapi: %s: %w", source, err)
		}
		spec.doc = doc
	default:
		return nil, fmt.Errorf("openapi: %s says neither swagger: \"2.0\" nor openapi: \"3.0.x\"/\"3.1.x\" at the top: is it an OpenAPI description?", source)
	}
	if spec.doc.Paths == nil || spec.doc.Paths.Len() == 0 {
		return nil, fmt.Errorf("openapi: %s describes no paths", source)
	}
	return spec, nil
}

var (
	versionJSON = regexp.MustCompile(`"(swagger|openapi)"\s*:\s*"([0-9][0-9.]*)"`)
	versionYAML = regexp.MustCompile(`(?m)^(swagger|openapi):\s*['"]?([0-9][0-9.]*)`)
)

// probeVersion finds the swagger or openapi version field without decoding the document.
func probeVersion(data []byte) (version string, swagger bool) {
	m := versionYAML.FindSubmatch(data)
	if m == nil {
		m = versionJSON.FindSubmatch(data)
	}
	if m == nil {
		return "", false
	}
	return string(m[2]), string(m[1]) == "swagger"
}

// decodeSwagger2 decodes a Swagger 2.0 document, repairing a quirk common in published
// descriptions (Slack's among them): `items` written as a list of schemas, which Swagger 2.0
// does not allow, becomes `items: {anyOf: [...]}`, what the authors meant.
func decodeSwagger2(data []byte) (*openapi2.T, error) {
	var tree any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		return nil, err
	}
	tree = jsonCompatible(tree)
	fixItemsLists(tree)
	b, err := json.Marshal(tree)
	if err != nil {
		return nil, err
	}
	var doc openapi2.T
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	return &doc, nil
}

func fixItemsLists(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, child := range t {
			if list, ok := child.([]any); ok && k == "items" {
				t[k] = map[string]any{"anyOf": list}
			}
			fixItemsLists(t[k])
		}
	case []any:
		for _, child := range t {
			fixItemsLists(child)
		}
	}
}

// jsonCompatible turns YAML's map[any]any-free tree into one encoding/json accepts (yaml.v3
// decodes mappings as map[string]any already; non-string keys are stringified).
func jsonCompatible(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, c := range t {
			t[k] = jsonCompatible(c)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, c := range t {
			m[fmt.Sprint(k)] = jsonCompatible(c)
		}
		return m
	case []any:
		for i, c := range t {
			t[i] = jsonCompatible(c)
		}
		return t
	default:
		return v
	}
}
