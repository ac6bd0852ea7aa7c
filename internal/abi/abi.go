// Package abi is the wire contract between the airlock host and a connector plugin.
//
// It is imported by both sides (host/ and pdk/) and uses only the standard library and
// pdk/pdkjson, so the contract is written down exactly once. Authors of connectors in other
// languages implement the same contract with any Extism PDK; pdk/ABI.md documents it for them.
//
// # Calling convention
//
// A plugin is an Extism-compatible WebAssembly module. Each tool is an exported function
// `() -> i32` named in the manifest. The host places the tool's JSON arguments in the Extism input
// (`extism:host/env` input_length / input_load_u64), the plugin writes its JSON result with
// output_set and returns 0. To fail, the plugin sets an error with error_set and returns non-zero;
// if the error text is a JSON [ToolError] the host passes its category and message to the agent,
// otherwise the text is treated as a correctable error message.
//
// # Host functions
//
// The host functions live in the import module [HostModule]. Following the Extism convention for
// user host functions, every parameter and result is an i64 offset of a block of Extism memory
// (0 means "none"), except where a signature below says otherwise:
//
//	airlock_http(request) -> response      request: HTTPRequest JSON, response: HTTPResponse JSON
//	airlock_db(request) -> response        request: DBRequest JSON, response: DBResponse JSON
//	airlock_config(key) -> value           0 when the key is not configured
//	airlock_log(level i64, message)        level: LogDebug … LogError
//
// The JSON of the airlock_http envelopes is what encoding/json writes for [HTTPRequest] and
// [HTTPResponse]; envelope.go reads and writes it without reflection, with pdk/pdkjson
// (AppendHTTPRequest, DecodeHTTPResponse for the plugin side; DecodeHTTPRequest,
// AppendHTTPResponse for the host), and falls back to encoding/json for anything unusual, so the two always agree.
//
// A host function never traps on a condition the plugin caused: a refused request is a response
// with Error set. Only a malformed call (an offset that names no block) returns 0.
//
// Plugins built with pdk/ may also use two bulk-copy functions that are not part of the Extism
// ABI (they make large payloads 30× cheaper than 8-byte loads):
//
//	airlock_mem_read(offset i64, dst i32, n i64) -> i64    copy a block into guest memory
//	airlock_mem_write(src i32, n i64) -> i64                copy guest memory into a new block
//	airlock_input_read(dst i32, n i64) -> i64               copy the call input into guest memory
//
// They return the number of bytes copied (mem_read, input_read) or the new block's offset
// (mem_write), and -1 / 0 when the arguments are out of range.
package abi

import (
	"encoding/json"
	"strings"
)

// Version is the version of this contract. A manifest declares the version its module was built
// for in `abi`; the host refuses versions it does not implement.
const Version = 1

// HostModule is the import module of the airlock host functions. It is the Extism default for
// user host functions, so PDKs that hard-code it work unchanged.
const HostModule = "extism:host/user"

// KernelModule is the import module of the Extism kernel (memory, input, output, config, vars).
const KernelModule = "extism:host/env"

// Host function names in [HostModule].
const (
	FuncHTTP       = "airlock_http"
	FuncDB         = "airlock_db"
	FuncConfig     = "airlock_config"
	FuncLog        = "airlock_log"
	FuncMemRead    = "airlock_mem_read"
	FuncMemWrite   = "airlock_mem_write"
	FuncInputRead  = "airlock_input_read"
	FuncABIVersion = "airlock_abi_version" // () -> i64, returns Version
)

// Log levels for airlock_log.
const (
	LogDebug = 0
	LogInfo  = 1
	LogWarn  = 2
	LogError = 3
)

// HTTPRequest is what a plugin asks airlock_http to send. The plugin names a credential slot of
// its manifest; it never handles the credential's value.
type HTTPRequest struct {
	Method  string              `json:"method"`
	URL     string              `json:"url"`
	Headers map[string][]string `json:"headers,omitempty"`
	Body    []byte              `json:"body,omitempty"` // base64 in JSON
	// Credential is the name of a credential slot in the manifest ("" for none).
	Credential string `json:"credential,omitempty"`
	// IdempotencyKey lets the host replay a non-idempotent request safely.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// TimeoutMS bounds this request; 0 means the rest of the call's time. Never extends it.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// RawBody asks the host to send the response body after the response envelope, as it is,
	// instead of in base64 inside it (see [AppendHTTPResponseRaw]). A host that predates it
	// ignores it and answers with the ordinary envelope, which [DecodeHTTPResponse] reads too;
	// pdk.HTTP sets it on every request.
	RawBody bool `json:"raw_body,omitempty"`
	// ResponseHeaders names the response headers the connector reads (matched ignoring case, at
	// most [MaxResponseHeaders]); the host then returns only those. Empty: all of them.
	ResponseHeaders []string `json:"response_headers,omitempty"`
}

// MaxResponseHeaders bounds [HTTPRequest.ResponseHeaders]; the host refuses longer lists.
const MaxResponseHeaders = 64

// KeepHeaders returns the headers of h named in names (ignoring case): what a host returns for
// a request with [HTTPRequest.ResponseHeaders].
func KeepHeaders(h map[string][]string, names []string) map[string][]string {
	kept := make(map[string][]string, len(names))
	for k, v := range h {
		for _, n := range names {
			if strings.EqualFold(k, n) {
				kept[k] = v
				break
			}
		}
	}
	return kept
}

// HTTPResponse is airlock_http's answer. Exactly one of Error or Status is meaningful: a request
// the host refused or could not complete has Error set and Status 0.
type HTTPResponse struct {
	Status  int                 `json:"status,omitempty"`
	Headers map[string][]string `json:"headers,omitempty"`
	Body    []byte              `json:"body,omitempty"` // base64 in JSON
	Error   *Error              `json:"error,omitempty"`
}

// DBRequest asks airlock_db to run a database function declared in the manifest.
type DBRequest struct {
	Function string `json:"function"`
	Params   []any  `json:"params,omitempty"`
}

// DBResponse is airlock_db's answer.
type DBResponse struct {
	Columns   []string `json:"columns,omitempty"`
	Rows      [][]any  `json:"rows,omitempty"`
	Truncated bool     `json:"truncated,omitempty"`
	Affected  int64    `json:"affected,omitempty"`
	Error     *Error   `json:"error,omitempty"`
}

// Error is a host refusal or failure reported to the plugin. Message is safe to show to an agent:
// it never holds a secret, a query string or a stack trace.
type Error struct {
	Code     string   `json:"code"`
	Category Category `json:"category"`
	Message  string   `json:"message"`
	// RetryAfterMS is set when retrying later may succeed.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ToolError is what a plugin returns through error_set to fail a tool call in a way the agent can
// act on. It has the same shape as Error.
type ToolError = Error

// DecodeToolError reads what a plugin passed to error_set. When it is a JSON ToolError with a
// message, ok is true; an unknown category becomes Correctable and a missing code
// CodePluginError. Otherwise ok is false and the text is a plain message for the caller to treat
// as correctable.
func DecodeToolError(b []byte) (e *ToolError, ok bool) {
	e = new(ToolError)
	if json.Unmarshal(b, e) != nil || e.Message == "" {
		return nil, false
	}
	switch e.Category {
	case Retryable, Correctable, Fatal:
	default:
		e.Category = Correctable
	}
	if e.Code == "" {
		e.Code = CodePluginError
	}
	return e, true
}

// Category tells an agent what to do about an error.
type Category string

// The error categories (DESIGN.md, "Error categories").
const (
	// Retryable: rate limit, timeout, upstream 5xx. Try again later (see RetryAfterMS).
	Retryable Category = "retryable"
	// Correctable: bad arguments, not found, missing permission. Change the call or ask a human.
	Correctable Category = "correctable"
	// Fatal: policy violation, plugin trap, not granted. Stop.
	Fatal Category = "fatal"
)

// Error codes the host uses in Error.Code. Plugins may use their own codes as well.
const (
	CodeEgressDenied     = "egress_denied"      // URL, method or address outside the grant
	CodeBadRequest       = "bad_request"        // malformed envelope or URL
	CodeUnknownSlot      = "unknown_credential" // credential slot not declared or not filled
	CodeCredential       = "credential_unavailable"
	CodeUpstreamError    = "upstream_unreachable" // network failure talking to the upstream
	CodeTimeout          = "timeout"
	CodeResponseTooLarge = "response_too_large"
	CodeRateLimited      = "rate_limited"
	CodeNotGranted       = "not_granted"
	CodeUnknownTool      = "unknown_tool"
	CodeInvalidArguments = "invalid_arguments"
	CodeInvalidOutput    = "invalid_output"
	CodePluginTrap       = "plugin_failed"
	CodePluginError      = "tool_error"
	CodeTooLarge         = "too_large"
	CodeInternal         = "internal"
	CodeUnavailable      = "unavailable"
	CodeNeedsConfirm     = "confirmation_required" // a destructive or needs-confirmation tool without a human's confirmation
)
