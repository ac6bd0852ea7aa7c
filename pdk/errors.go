package pdk

import (
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/internal/abi"
)

// The wire types of the ABI, under names a connector outside this module can use (internal/abi
// cannot be imported from other modules). They are aliases: a pdk.Error is an abi.Error.
type (
	// Error is a tool error a connector returns, and a refusal the host reports to the
	// connector. Code is a short snake_case identifier, Category tells the agent what to do,
	// Message is a sentence the agent can act on: never a secret, a query string or a stack
	// trace.
	Error = abi.Error
	// Category tells an agent what to do about an Error.
	Category = abi.Category
	// HTTPRequest is what [HTTP] sends. Credential names a credential slot of the manifest;
	// the connector never sees the credential's value.
	HTTPRequest = abi.HTTPRequest
	// HTTPResponse is the answer of [HTTP].
	HTTPResponse = abi.HTTPResponse
	// DBRequest asks [DB] to run a database function declared in the manifest.
	DBRequest = abi.DBRequest
	// DBResponse is the answer of [DB].
	DBResponse = abi.DBResponse
)

// The error categories (DESIGN.md, "Error categories").
const (
	// CategoryRetryable: rate limit, timeout, upstream 5xx. The agent may try again later.
	CategoryRetryable = abi.Retryable
	// CategoryCorrectable: bad arguments, not found, missing permission. The agent changes the
	// call or asks a human.
	CategoryCorrectable = abi.Correctable
	// CategoryFatal: policy violation, rejected credential, connector bug. The agent stops.
	CategoryFatal = abi.Fatal
)

// Error codes the host uses in refusals (Error.Code), for connectors that branch on them.
// Connectors may use their own codes in tool errors as well.
const (
	CodeEgressDenied     = abi.CodeEgressDenied
	CodeBadRequest       = abi.CodeBadRequest
	CodeUnknownSlot      = abi.CodeUnknownSlot
	CodeCredential       = abi.CodeCredential
	CodeUpstreamError    = abi.CodeUpstreamError
	CodeTimeout          = abi.CodeTimeout
	CodeResponseTooLarge = abi.CodeResponseTooLarge
	CodeRateLimited      = abi.CodeRateLimited
	CodeInvalidArguments = abi.CodeInvalidArguments
	CodePluginTrap       = abi.CodePluginTrap
	CodePluginError      = abi.CodePluginError
	CodeTooLarge         = abi.CodeTooLarge
	CodeInternal         = abi.CodeInternal
	CodeUnavailable      = abi.CodeUnavailable
)

// Errorf returns a tool error (an [*Error]) with the given category and code and a message
// formatted with fmt.Sprintf. Returned from a tool function, [Run] hands it to the agent as is.
func Errorf(category Category, code, format string, args ...any) error {
	return &Error{Code: code, Category: category, Message: fmt.Sprintf(format, args...)}
}

// Correctable returns a tool error the agent can fix by changing its call or asking a human:
// bad arguments, an unknown channel, a missing permission.
func Correctable(code, format string, args ...any) error {
	return &Error{Code: code, Category: CategoryCorrectable, Message: fmt.Sprintf(format, args...)}
}

// Fatal returns a tool error the agent cannot fix by retrying or changing arguments: a rejected
// credential, an upstream answer the connector does not understand.
func Fatal(code, format string, args ...any) error {
	return &Error{Code: code, Category: CategoryFatal, Message: fmt.Sprintf(format, args...)}
}

// Retryable returns a tool error the agent may retry later: a rate limit, a timeout, an upstream
// outage. after is how long to wait (rounded up to a millisecond); 0 means unknown.
func Retryable(code string, after time.Duration, format string, args ...any) error {
	e := &Error{Code: code, Category: CategoryRetryable, Message: fmt.Sprintf(format, args...)}
	if after > 0 {
		e.RetryAfterMS = int64((after + time.Millisecond - 1) / time.Millisecond)
	}
	return e
}
