package main

import (
	"os"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/pdk"
	"github.com/airlock-dev/airlock/pdk/pdktest"
)

const getPet = `{"method":"GET","server":"https://api.example.com/v1","path":"/pets/{id}","params":[{"name":"id","in":"path","arg":"id"}],"credential":"key"}`

// TestStatusMapping: upstream answers become results or errors in the category taxonomy, with
// the upstream's own words from problem+json or a JSON error body.
func TestStatusMapping(t *testing.T) {
	tests := []struct {
		status   int
		headers  map[string][]string
		body     string
		code     string
		category pdk.Category
		says     string
	}{
		{404, nil, `{"type":"about:blank","title":"Not Found","detail":"no pet 9"}`, "not_found", pdk.CategoryCorrectable, "no pet 9"},
		{400, nil, `{"message":"limit must be at most 100"}`, "rejected", pdk.CategoryCorrectable, "limit must be at most 100"},
		{422, nil, `{"error":{"message":"name is required"}}`, "rejected", pdk.CategoryCorrectable, "name is required"},
		{403, nil, `{}`, "forbidden", pdk.CategoryCorrectable, "ask an admin"},
		{401, nil, `{"error":"invalid_token"}`, "unauthorized", pdk.CategoryFatal, "credential"},
		{409, nil, ``, "conflict", pdk.CategoryCorrectable, "409"},
		{429, map[string][]string{"Retry-After": {"7"}}, ``, pdk.CodeRateLimited, pdk.CategoryRetryable, "later"},
		{503, nil, `<html>down</html>`, pdk.CodeUpstreamError, pdk.CategoryRetryable, "503"},
	}
	for _, tt := range tests {
		h := pdktest.New(t)
		h.SetConfig(map[string]string{"op3": getPet})
		h.SetInput(map[string]any{"id": 9})
		h.HandleHTTP(func(req pdk.HTTPRequest) pdk.HTTPResponse {
			return pdk.HTTPResponse{Status: tt.status, Headers: tt.headers, Body: []byte(tt.body)}
		})
		_, toolErr := h.Call(func() error { return call(3) })
		if toolErr == nil || toolErr.Code != tt.code || toolErr.Category != tt.category || !strings.Contains(toolErr.Message, tt.says) {
			t.Errorf("status %d %s: error = %+v, want %s/%s saying %q", tt.status, tt.body, toolErr, tt.code, tt.category, tt.says)
		}
		if tt.status == 429 && toolErr != nil && toolErr.RetryAfterMS != 7000 {
			t.Errorf("429 Retry-After 7: retry_after_ms = %d", toolErr.RetryAfterMS)
		}
		reqs := h.Requests()
		if len(reqs) != 1 || reqs[0].URL != "https://api.example.com/v1/pets/9" || reqs[0].Credential != "key" {
			t.Errorf("requests = %+v", reqs)
		}
	}
}

func TestResultDecoding(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
		want   string
	}{
		{200, `[{"id":1}]`, `{"status":200,"data":[{"id":1}]}`},
		{201, `plain text`, `{"status":201,"data":"plain text"}`},
		{204, ``, `{"status":204,"data":null}`},
	} {
		h := pdktest.New(t)
		h.SetConfig(map[string]string{"op0": getPet})
		h.SetInput(map[string]any{"id": 1})
		h.HandleHTTP(func(pdk.HTTPRequest) pdk.HTTPResponse {
			return pdk.HTTPResponse{Status: tt.status, Body: []byte(tt.body)}
		})
		out, toolErr := h.Call(func() error { return call(0) })
		if toolErr != nil || string(out) != tt.want {
			t.Errorf("status %d %q: output %s, %+v; want %s", tt.status, tt.body, out, toolErr, tt.want)
		}
	}
}

// TestMissingOperation: a slot with no operation in config is a clear fatal error, not a trap.
func TestMissingOperation(t *testing.T) {
	h := pdktest.New(t)
	h.SetInput(map[string]any{})
	_, toolErr := h.Call(func() error { return call(5) })
	if toolErr == nil || toolErr.Category != pdk.CategoryFatal || !strings.Contains(toolErr.Message, "op5") {
		t.Errorf("call(5) without config = %+v", toolErr)
	}
	h.SetConfig(map[string]string{"op5": "{not json"})
	_, toolErr = h.Call(func() error { return call(5) })
	if toolErr == nil || toolErr.Category != pdk.CategoryFatal {
		t.Errorf("call(5) with bad config = %+v", toolErr)
	}
	h.SetConfig(map[string]string{"op5": getPet})
	h.SetInput(map[string]any{"id": ".."})
	_, toolErr = h.Call(func() error { return call(5) })
	if toolErr == nil || toolErr.Category != pdk.CategoryCorrectable || len(h.Requests()) != 0 {
		t.Errorf(`call(5) with id ".." = %+v, %d requests; want correctable and nothing sent`, toolErr, len(h.Requests()))
	}
}

// TestExportsCoverEverySlot: exports_wasip1.go (generated) has op0 … op{MaxOperations-1}.
func TestExportsCoverEverySlot(t *testing.T) {
	b, err := os.ReadFile("exports_wasip1.go")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "//go:wasmexport op"); n != MaxOperations {
		t.Errorf("exports_wasip1.go has %d exports, want %d (run go generate)", n, MaxOperations)
	}
}

// TestNextPage: a paginated operation's result says how to get the next page.
func TestNextPage(t *testing.T) {
	h := pdktest.New(t)
	h.SetConfig(map[string]string{"op1": `{"method":"GET","server":"https://api.example.com","path":"/files","params":[{"name":"after","in":"query","arg":"after"}],"pagination":{"kind":"cursor","arg":"after","field":["last_id"],"more":["has_more"]}}`})
	h.SetInput(map[string]any{"after": "file-1"})
	h.HandleHTTP(func(req pdk.HTTPRequest) pdk.HTTPResponse {
		return pdk.HTTPResponse{Status: 200, Body: []byte(`{"data":[{"id":"file-2"}],"last_id":"file-2","has_more":true}`)}
	})
	out, toolErr := h.Call(func() error { return call(1) })
	if toolErr != nil || !strings.Contains(string(out), `"next":{"after":"file-2"}`) {
		t.Errorf("output %s, %+v; want next after file-2", out, toolErr)
	}
	if reqs := h.Requests(); len(reqs) != 1 || reqs[0].URL != "https://api.example.com/files?after=file-1" {
		t.Errorf("requests = %+v", reqs)
	}
}
