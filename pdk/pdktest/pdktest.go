// Package pdktest runs connector code natively, under go test, against a fake airlock host.
//
// A connector's tool functions (the func() error handed to pdk.Run) call pdk.Input, pdk.HTTP,
// pdk.Output and so on. Inside a WebAssembly module those reach the real host; in a native build
// they reach the [Host] of this package, which plays the host's part: it supplies the input and
// config, answers HTTP requests (from a function, or from an http.Handler such as a fake API,
// with a credential injected the way the host injects it), records requests and log lines, and
// decodes the result or tool error exactly as the host does.
//
//	func TestPostMessage(t *testing.T) {
//		h := pdktest.New(t)
//		h.Serve(fakeAPI)                                   // an http.Handler
//		h.SetCredential("bot_token", pdktest.Bearer("xoxb-test"))
//		h.SetInput(map[string]any{"channel": "C0GENERAL", "text": "hi"})
//		out, toolErr := h.Call(postMessage)
//		…
//	}
//
// The fake host is process-wide, like the real host's view of a plugin: [Host.Call] holds a
// package lock for the duration of the call, so tests using t.Parallel are safe but their calls
// run one at a time. Do not call Host.Call from inside a tool function or an HTTP handler
// (it would deadlock).
//
// The fake host works only in a native build; in a wasip1 build pdk talks to the real host and
// [Host.Call] fails the test.
package pdktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/pdk"
	"github.com/airlock-dev/airlock/pdk/internal/fakehost"
)

// callMu serialises calls: the fake host is a process-wide global, as pdk's native build has one
// host (fakehost.Set).
var callMu sync.Mutex

// Host is a fake airlock host for one test. Create it with [New]; its setters may be called
// between calls. Its methods are safe for concurrent use.
type Host struct {
	tb testing.TB

	mu       sync.Mutex
	input    []byte
	config   map[string]string
	creds    map[string]Credential
	handleFn func(pdk.HTTPRequest) pdk.HTTPResponse
	handler  http.Handler
	dbFn     func(pdk.DBRequest) pdk.DBResponse
	requests []pdk.HTTPRequest
	logs     []LogLine
}

// LogLine is a line the connector logged with pdk.Log.
type LogLine struct {
	Level   pdk.Level
	Message string
}

// New returns a fake host with input `{}`, no config, no credentials and no HTTP handler (every
// request is refused with egress_denied until one is set). Log lines are also reported with
// tb.Logf. tb may be nil outside a test (in an Example): misuse then panics and logs are only
// recorded.
func New(tb testing.TB) *Host {
	return &Host{tb: tb, input: []byte("{}")}
}

func (h *Host) helper() {
	if h.tb != nil {
		h.tb.Helper()
	}
}

func (h *Host) fatalf(format string, args ...any) {
	if h.tb == nil {
		panic(fmt.Sprintf(format, args...))
	}
	h.tb.Helper()
	h.tb.Fatalf(format, args...)
}

func (h *Host) errorf(format string, args ...any) {
	if h.tb == nil {
		panic(fmt.Sprintf(format, args...))
	}
	h.helper()
	h.tb.Errorf(format, args...)
}

// SetInput sets the next calls' arguments to v encoded as JSON (a json.RawMessage is used as
// is). The real host validates the arguments against the input schema first; this fake does
// not, so tests can also feed arguments the schema would reject.
func (h *Host) SetInput(v any) {
	h.helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.fatalf("pdktest: SetInput: %v", err)
	}
	h.mu.Lock()
	h.input = b
	h.mu.Unlock()
}

// SetConfig sets the grant's config values that pdk.Config returns.
func (h *Host) SetConfig(m map[string]string) {
	h.mu.Lock()
	h.config = make(map[string]string, len(m))
	for k, v := range m {
		h.config[k] = v
	}
	h.mu.Unlock()
}

// Credential says how a credential slot is injected into a request served by [Host.Serve]. It
// stands for the host's credential injection; the connector never sees the value.
type Credential func(*http.Request)

// Bearer injects `Authorization: Bearer token` (slot kind bearer).
func Bearer(token string) Credential {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// Basic injects HTTP basic authentication (slot kind basic).
func Basic(user, password string) Credential {
	return func(r *http.Request) { r.SetBasicAuth(user, password) }
}

// APIKeyHeader injects key in the header name (slot kind api_key, in: header).
func APIKeyHeader(name, key string) Credential {
	return func(r *http.Request) { r.Header.Set(name, key) }
}

// APIKeyQuery injects key as the query parameter param (slot kind api_key, in: query).
func APIKeyQuery(param, key string) Credential {
	return func(r *http.Request) {
		q := r.URL.Query()
		q.Set(param, key)
		r.URL.RawQuery = q.Encode()
	}
}

// SetCredential fills the credential slot named slot for requests served by [Host.Serve].
// A request naming a slot that is not filled is refused (code credential_unavailable,
// correctable), as the host refuses it.
func (h *Host) SetCredential(slot string, c Credential) {
	h.mu.Lock()
	if h.creds == nil {
		h.creds = make(map[string]Credential)
	}
	h.creds[slot] = c
	h.mu.Unlock()
}

// HandleHTTP answers every pdk.HTTP request with fn, which sees the request exactly as the
// connector sent it (credential as a slot name) and may return a refusal by setting Error. It
// replaces any handler set with [Host.Serve].
func (h *Host) HandleHTTP(fn func(pdk.HTTPRequest) pdk.HTTPResponse) {
	h.mu.Lock()
	h.handleFn, h.handler = fn, nil
	h.mu.Unlock()
}

// Serve answers every pdk.HTTP request with handler, in process (no network): whatever host
// the URL names, the handler serves it (pass an httptest.Server's Config.Handler to reuse a test
// server). Like the real host, Serve drops any Authorization header the connector set and
// injects the credential the request's slot names ([Host.SetCredential]). It replaces any
// function set with [Host.HandleHTTP].
func (h *Host) Serve(handler http.Handler) {
	h.mu.Lock()
	h.handler, h.handleFn = handler, nil
	h.mu.Unlock()
}

// HandleDB answers every pdk.DB request with fn.
func (h *Host) HandleDB(fn func(pdk.DBRequest) pdk.DBResponse) {
	h.mu.Lock()
	h.dbFn = fn
	h.mu.Unlock()
}

// Requests returns the HTTP requests the connector sent so far, as it sent them.
func (h *Host) Requests() []pdk.HTTPRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.requests)
}

// Logs returns the lines the connector logged so far.
func (h *Host) Logs() []LogLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.logs)
}

// Call runs fn as a tool call, the way an export does (pdk.Run), and returns what the host
// would get: the output bytes on success, or the tool error. A panic in fn comes back as a
// fatal tool error with code plugin_failed.
func (h *Host) Call(fn func() error) (output []byte, toolErr *pdk.Error) {
	h.helper()
	if !native {
		h.fatalf("pdktest: Host.Call works only in a native build (not GOOS=wasip1)")
	}
	callMu.Lock()
	defer callMu.Unlock()

	s := &session{h: h, blocks: make(map[uint64][]byte), next: 8}
	h.mu.Lock()
	s.inputOff = s.alloc(h.input)
	h.mu.Unlock()
	restore := fakehost.Set(s)
	code := pdk.Run(fn)
	restore()

	if code == 0 {
		if !s.outputSet {
			return nil, nil
		}
		return s.output, nil
	}
	if !s.errorSet {
		return nil, &pdk.Error{Code: pdk.CodePluginTrap, Category: pdk.CategoryFatal,
			Message: "the connector failed without saying why"}
	}
	return nil, decodeToolError(s.errText)
}

// CallJSON is [Host.Call] that decodes a successful output into out (failing the test when it
// is not valid JSON for out).
func (h *Host) CallJSON(fn func() error, out any) *pdk.Error {
	h.helper()
	b, toolErr := h.Call(fn)
	if toolErr != nil {
		return toolErr
	}
	if err := json.Unmarshal(b, out); err != nil {
		h.fatalf("pdktest: output %q is not valid JSON for %T: %v", b, out, err)
	}
	return nil
}

// decodeToolError reads an error_set text the way the host does (internal/abi, "Calling
// convention"): a JSON ToolError, or else plain text treated as a correctable message.
func decodeToolError(b []byte) *pdk.Error {
	if e, ok := abi.DecodeToolError(b); ok {
		return e
	}
	return &pdk.Error{Code: pdk.CodePluginError, Category: pdk.CategoryCorrectable, Message: string(b)}
}

// session is the fake host during one call: Extism memory and the call's output and error.
type session struct {
	h *Host

	blocks   map[uint64][]byte
	next     uint64
	inputOff uint64

	output    []byte
	outputSet bool
	errText   []byte
	errorSet  bool
}

var _ fakehost.Host = (*session)(nil)

// alloc copies b into a new block. Like the host, it answers 0 ("none") for an empty block.
func (s *session) alloc(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	off := s.next
	s.next += uint64(len(b)) + 8
	s.blocks[off] = bytes.Clone(b)
	return off
}

func (s *session) InputLength() uint64 { return uint64(len(s.blocks[s.inputOff])) }

func (s *session) InputRead(dst []byte) int64 {
	return int64(copy(dst, s.blocks[s.inputOff]))
}

func (s *session) Length(off uint64) uint64 { return uint64(len(s.blocks[off])) }

func (s *session) MemRead(off uint64, dst []byte) int64 {
	b, ok := s.blocks[off]
	if !ok || len(dst) > len(b) {
		return -1
	}
	return int64(copy(dst, b))
}

func (s *session) MemWrite(src []byte) uint64 { return s.alloc(src) }

func (s *session) Free(off uint64) {
	if off == s.inputOff {
		return
	}
	delete(s.blocks, off)
}

func (s *session) OutputSet(off, n uint64) {
	b, ok := s.blocks[off]
	if !ok && n > 0 {
		s.h.errorf("pdktest: output_set(%d, %d) names no block", off, n)
		return
	}
	s.output, s.outputSet = bytes.Clone(b[:min(n, uint64(len(b)))]), true
}

func (s *session) ErrorSet(off uint64) {
	s.errText, s.errorSet = bytes.Clone(s.blocks[off]), true
}

func (s *session) Config(key uint64) uint64 {
	k, ok := s.blocks[key]
	if !ok {
		return 0
	}
	s.h.mu.Lock()
	v, ok := s.h.config[string(k)]
	s.h.mu.Unlock()
	if !ok {
		return 0
	}
	return s.alloc([]byte(v))
}

func (s *session) Log(level int64, msg uint64) {
	b, ok := s.blocks[msg]
	if !ok {
		return
	}
	line := LogLine{Level: pdk.Level(level), Message: string(b)}
	s.h.mu.Lock()
	s.h.logs = append(s.h.logs, line)
	s.h.mu.Unlock()
	if s.h.tb != nil {
		s.h.tb.Logf("plugin log [%d]: %s", level, line.Message)
	}
}

func (s *session) HTTP(off uint64) uint64 {
	b, ok := s.blocks[off]
	if !ok {
		return 0
	}
	var req pdk.HTTPRequest
	var resp pdk.HTTPResponse
	if err := json.Unmarshal(b, &req); err != nil {
		resp.Error = &pdk.Error{Code: pdk.CodeBadRequest, Category: pdk.CategoryFatal,
			Message: "the HTTP request envelope is not valid JSON"}
	} else {
		raw := req.RawBody
		req.RawBody = false // pdk.HTTP's wire detail, not the connector's request: not recorded
		resp = s.h.serveHTTP(req)
		req.RawBody = raw
	}
	if len(req.ResponseHeaders) > 0 && resp.Headers != nil {
		resp.Headers = abi.KeepHeaders(resp.Headers, req.ResponseHeaders)
	}
	if req.RawBody {
		return s.alloc(abi.AppendHTTPResponseRaw(nil, &resp)) // as the host answers (ABI.md)
	}
	out, err := json.Marshal(resp)
	if err != nil {
		s.h.errorf("pdktest: encode HTTP response: %v", err)
		return 0
	}
	return s.alloc(out)
}

func (s *session) DB(off uint64) uint64 {
	b, ok := s.blocks[off]
	if !ok {
		return 0
	}
	var req pdk.DBRequest
	var resp pdk.DBResponse
	s.h.mu.Lock()
	fn := s.h.dbFn
	s.h.mu.Unlock()
	switch err := json.Unmarshal(b, &req); {
	case err != nil:
		resp.Error = &pdk.Error{Code: pdk.CodeBadRequest, Category: pdk.CategoryFatal,
			Message: "the database request envelope is not valid JSON"}
	case fn == nil:
		resp.Error = &pdk.Error{Code: pdk.CodeEgressDenied, Category: pdk.CategoryFatal,
			Message: "this connector has no database functions (pdktest: no HandleDB)"}
	default:
		resp = fn(req)
	}
	out, err := json.Marshal(resp)
	if err != nil {
		s.h.errorf("pdktest: encode DB response: %v", err)
		return 0
	}
	return s.alloc(out)
}

func (h *Host) serveHTTP(req pdk.HTTPRequest) pdk.HTTPResponse {
	h.mu.Lock()
	h.requests = append(h.requests, cloneRequest(req))
	fn, handler := h.handleFn, h.handler
	cred, credOK := h.creds[req.Credential]
	h.mu.Unlock()

	switch {
	case fn != nil:
		return fn(req)
	case handler == nil:
		return refuse(pdk.CodeEgressDenied, "no upstream is configured in this test (pdktest: call Serve or HandleHTTP)")
	case req.Credential != "" && !credOK:
		return pdk.HTTPResponse{Error: &pdk.Error{Code: pdk.CodeCredential, Category: pdk.CategoryCorrectable,
			Message: fmt.Sprintf("the credential %s has no secret configured; ask an admin to fill it in the grant", req.Credential)}}
	}

	ctx := context.Background()
	if req.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	r, err := http.NewRequestWithContext(ctx, req.Method, req.URL, bytes.NewReader(req.Body))
	// As the host: a malformed URL is correctable (it may come from the arguments); another
	// scheme, or userinfo hiding the real host, is denied.
	switch {
	case err == nil && r.URL.Scheme != "" && r.URL.Scheme != "http" && r.URL.Scheme != "https":
		return refuse(pdk.CodeEgressDenied, "the URL's scheme is not http or https, the only ones the connector may use")
	case err == nil && r.URL.User != nil:
		return refuse(pdk.CodeEgressDenied, "the URL contains userinfo (a name or password before '@'); name a credential slot instead")
	case err != nil || r.URL.Host == "":
		return pdk.HTTPResponse{Error: &pdk.Error{Code: pdk.CodeBadRequest, Category: pdk.CategoryCorrectable,
			Message: "the request URL is not an absolute http or https URL, such as https://api.example.com/v1/items"}}
	}
	for k, v := range req.Headers {
		if strings.EqualFold(k, "Authorization") || strings.EqualFold(k, "Host") {
			continue
		}
		r.Header[http.CanonicalHeaderKey(k)] = slices.Clone(v)
	}
	if cred != nil {
		cred(r)
	}
	r.RequestURI = r.URL.RequestURI()
	r.RemoteAddr = "192.0.2.1:1234"
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, r)
	res := rec.Result()
	return pdk.HTTPResponse{Status: res.StatusCode, Headers: res.Header, Body: rec.Body.Bytes()}
}

func refuse(code, msg string) pdk.HTTPResponse {
	return pdk.HTTPResponse{Error: &pdk.Error{Code: code, Category: pdk.CategoryFatal, Message: msg}}
}

func cloneRequest(r pdk.HTTPRequest) pdk.HTTPRequest {
	r.Body = bytes.Clone(r.Body)
	if r.Headers != nil {
		h := make(map[string][]string, len(r.Headers))
		for k, v := range r.Headers {
			h[k] = slices.Clone(v)
		}
		r.Headers = h
	}
	return r
}

// Response is a convenience for [Host.HandleHTTP] functions: a response with the given status
// and a JSON body (v encoded with encoding/json; a []byte or string is used as is).
func Response(status int, v any) pdk.HTTPResponse {
	var body []byte
	switch v := v.(type) {
	case []byte:
		body = v
	case string:
		body = []byte(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("pdktest: Response: %v", err))
		}
		body = b
	}
	return pdk.HTTPResponse{Status: status, Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: body}
}
