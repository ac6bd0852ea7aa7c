package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/openapiop"
	"github.com/airlock-dev/airlock/pdk"
)

// MaxOperations is the number of operation slots (exports op0 … op127) the module has.
const MaxOperations = 128

// maxMessage bounds the upstream text quoted in an error message.
const maxMessage = 300

// result is a tool's output: the upstream's status and its decoded answer.
type result struct {
	Status int `json:"status"`
	// Data is the response body: JSON as is, other text as a string, null when empty.
	Data any `json:"data"`
	// Next, when the operation pages and another page exists, holds the arguments to add to
	// this call's to get it.
	Next map[string]any `json:"next,omitempty"`
}

// call runs the operation in slot i with the tool's arguments.
func call(i int) error {
	key := "op" + strconv.Itoa(i)
	raw, ok := pdk.Config(key)
	if !ok || raw == "" {
		return pdk.Fatal(pdk.CodeBadRequest, "this tool has no operation: the manifest must set config %s (re-run airlock openapi import)", key)
	}
	var op openapiop.Operation
	if err := json.Unmarshal([]byte(raw), &op); err != nil {
		return pdk.Fatal(pdk.CodeBadRequest, "the operation in config %s is not valid JSON: re-run airlock openapi import", key)
	}
	if err := op.ExpandServer(pdk.Config); err != nil {
		return pdk.Fatal(pdk.CodeBadRequest, "%s: an admin must fix the grant's config", err.Error())
	}
	req, err := openapiop.Build(&op, pdk.InputBytes())
	if err != nil {
		var ae *openapiop.ArgumentError
		if errors.As(err, &ae) {
			return pdk.Correctable(pdk.CodeInvalidArguments, "%s", ae.Error())
		}
		return pdk.Fatal(pdk.CodeBadRequest, "%s", err.Error())
	}
	resp, err := pdk.HTTP(pdk.HTTPRequest{Method: req.Method, URL: req.URL, Headers: req.Headers,
		Body: req.Body, Credential: op.Credential})
	if err != nil {
		return err // the host's refusal: already agent-readable
	}
	if resp.Status < 200 || resp.Status > 299 {
		return statusError(resp)
	}
	out := result{Status: resp.Status, Data: decode(resp)}
	out.Next = op.Next(pdk.InputBytes(), out.Data, resp.Headers)
	return pdk.Output(out)
}

// decode returns the body as JSON when it is JSON, else as text; nil when empty.
func decode(resp pdk.HTTPResponse) any {
	if len(resp.Body) == 0 {
		return nil
	}
	if isJSON(pdk.Header(resp.Headers, "Content-Type")) || json.Valid(resp.Body) {
		var v any
		if json.Unmarshal(resp.Body, &v) == nil {
			return v
		}
	}
	return string(resp.Body)
}

func isJSON(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// problem is an RFC 9457 problem details answer, and the common {"message"} / {"error"} shapes.
type problem struct {
	Title   string `json:"title"`
	Detail  string `json:"detail"`
	Message string `json:"message"`
	Error   any    `json:"error"`
}

// statusError maps a non-2xx answer to the error categories: 429, 408 and 5xx are retryable,
// 401 (the credential was refused) is fatal, other 4xx are correctable.
func statusError(resp pdk.HTTPResponse) error {
	what := upstreamText(resp)
	status := resp.Status
	text := http.StatusText(status)
	if text == "" {
		text = "status " + strconv.Itoa(status)
	}
	msg := fmt.Sprintf("the API answered %d %s", status, text)
	if what != "" {
		msg += ": " + what
	}
	switch {
	case status == http.StatusTooManyRequests:
		return pdk.Retryable(pdk.CodeRateLimited, pdk.RetryAfter(resp.Headers), "%s; try again later", msg)
	case status == http.StatusRequestTimeout || status >= 500:
		return pdk.Retryable(pdk.CodeUpstreamError, pdk.RetryAfter(resp.Headers), "%s; try again later", msg)
	case status == http.StatusUnauthorized:
		return pdk.Fatal("unauthorized", "%s; the credential was refused: an admin must check the connector's credential", msg)
	case status == http.StatusForbidden:
		return pdk.Correctable("forbidden", "%s; the credential lacks permission for this: ask an admin", msg)
	case status == http.StatusNotFound:
		return pdk.Correctable("not_found", "%s; check the identifiers in the arguments", msg)
	case status == http.StatusConflict:
		return pdk.Correctable("conflict", "%s", msg)
	case status >= 400:
		return pdk.Correctable("rejected", "%s; change the arguments", msg)
	default:
		return pdk.Fatal("unexpected_response", "%s", msg)
	}
}

// upstreamText is the upstream's own explanation, from problem+json or a JSON error body.
func upstreamText(resp pdk.HTTPResponse) string {
	var p problem
	if json.Unmarshal(resp.Body, &p) != nil {
		return ""
	}
	var parts []string
	for _, s := range []string{p.Title, p.Detail, p.Message} {
		if s = strings.TrimSpace(s); s != "" {
			parts = append(parts, s)
		}
	}
	switch e := p.Error.(type) {
	case string:
		parts = append(parts, e)
	case map[string]any:
		if m, ok := e["message"].(string); ok {
			parts = append(parts, m)
		}
	}
	s := strings.Join(parts, " — ")
	if len(s) > maxMessage {
		s = s[:maxMessage] + "…"
	}
	return strings.ToValidUTF8(s, "")
}
