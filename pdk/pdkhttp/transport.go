// Package pdkhttp lets a connector use net/http's client: its [Transport] sends every request
// through the airlock host (pdk.HTTP), so code written against *http.Client — or a generated API
// client that accepts one — runs inside a plugin unchanged.
//
//	client := &http.Client{Transport: &pdkhttp.Transport{Credential: "api_key"}}
//	resp, err := client.Get("https://api.example.com/v1/items")
//
// It is a separate package because net/http is large: importing it adds about 2 MB to a
// WebAssembly module, and using its client about 7 MB (a minimal plugin is 3.7 MB). Connectors
// that can build requests themselves should call pdk.HTTP directly.
//
// The host, not the client, owns policy: redirects, retries, rate limits and credential
// injection happen in the host, so the client sees the final response. Cookies and the
// client's own redirect following still work on top, each hop again checked by the host.
package pdkhttp

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/airlock-dev/airlock/pdk"
)

// Transport is an http.RoundTripper that sends requests through the airlock host. It is safe
// for concurrent use (a plugin runs one call at a time anyway); the zero value sends requests
// without a credential and with the call's remaining time as the timeout.
type Transport struct {
	// Credential names the manifest credential slot the host injects ("" for none). The
	// connector never sees its value; any Authorization header set on the request is replaced
	// by the host.
	Credential string
	// IdempotencyKey lets the host retry a non-idempotent request (POST, PATCH) safely. Empty
	// means the host does not retry such requests. Set it per logical operation.
	IdempotencyKey string
	// Timeout bounds each request; 0 means the rest of the tool call's time. The request's
	// context deadline, if earlier, wins. It never extends the call's timeout.
	Timeout time.Duration
}

// RoundTrip implements http.RoundTripper. An error is returned only when the host refused or
// could not complete the request; its text is the host's agent-readable message and it unwraps
// to the host's *pdk.Error, so pdk.Run reports the refusal to the agent unchanged. Any HTTP
// status, including 4xx and 5xx, is a response.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("pdkhttp: read request body: %w", err)
		}
		body = b
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	timeout := t.Timeout
	if d, ok := req.Context().Deadline(); ok {
		if left := time.Until(d); timeout == 0 || left < timeout {
			timeout = max(left, time.Millisecond)
		}
	}
	var headers map[string][]string
	if len(req.Header) > 0 {
		headers = make(map[string][]string, len(req.Header))
		for k, v := range req.Header {
			headers[k] = append([]string(nil), v...)
		}
	}
	resp, err := pdk.HTTP(pdk.HTTPRequest{
		Method:         cmp.Or(req.Method, http.MethodGet),
		URL:            req.URL.String(),
		Headers:        headers,
		Body:           body,
		Credential:     t.Credential,
		IdempotencyKey: t.IdempotencyKey,
		TimeoutMS:      int64((timeout + time.Millisecond - 1) / time.Millisecond),
	})
	if err != nil {
		if e, ok := err.(*pdk.Error); ok {
			return nil, &refusal{e}
		}
		return nil, err
	}
	h := make(http.Header, len(resp.Headers))
	for k, v := range resp.Headers {
		h[http.CanonicalHeaderKey(k)] = v
	}
	return &http.Response{
		Status:        strconv.Itoa(resp.Status) + " " + http.StatusText(resp.Status),
		StatusCode:    resp.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(resp.Body)),
		ContentLength: int64(len(resp.Body)),
		Request:       req,
	}, nil
}

// refusal is a host refusal as a Go error: its text is the agent-readable message.
type refusal struct{ err *pdk.Error }

func (r *refusal) Error() string { return r.err.Message }
func (r *refusal) Unwrap() error { return r.err }
