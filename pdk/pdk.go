package pdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/pdk/pdkjson"
)

// ABIVersion is the version of the airlock ABI this PDK implements; declare it as `abi` in the
// connector's manifest.
const ABIVersion = abi.Version

// InputBytes returns the tool call's arguments: a JSON object the host has already validated
// against the tool's input schema.
func InputBytes() []byte {
	n := inputLength()
	b := make([]byte, n)
	if got := inputRead(b); got != int64(n) {
		panic("pdk: the host could not copy the call's input")
	}
	return b
}

// Input decodes the tool call's JSON arguments into v. Unknown fields are ignored: the host
// validated the arguments against the input schema before the call.
func Input(v any) error {
	if err := json.Unmarshal(InputBytes(), v); err != nil {
		return Correctable(CodeInvalidArguments, "the arguments could not be decoded: %v", err)
	}
	return nil
}

// InputObject reads the tool call's JSON arguments without reflection: field is called with
// each member's key and reads the value from d (see [pdkjson.Decoder]; a value it does not read is
// skipped). Keys match exactly, not ignoring case as [Input] does. The error is the one [Input]
// returns for arguments that cannot be decoded.
func InputObject(field func(d *pdkjson.Decoder, key string)) error {
	var d pdkjson.Decoder
	in := InputBytes() // a fresh copy nothing else holds: read in place
	d.ResetString(unsafe.String(unsafe.SliceData(in), len(in)))
	d.Object(func(key string) { field(&d, key) })
	if err := d.End(); err != nil {
		return Correctable(CodeInvalidArguments, "the arguments could not be decoded: %v", err)
	}
	return nil
}

// OutputBytes sets the tool's result. The host expects JSON (and validates it against the output
// schema when the manifest declares one). The last call wins.
func OutputBytes(b []byte) {
	outputSet(writeBlock(b), uint64(len(b)))
}

// Output encodes v as JSON and sets it as the tool's result.
func Output(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("pdk: encode output: %w", err)
	}
	OutputBytes(b)
	return nil
}

// Run is the body of every tool export. It runs fn and reports the outcome to the host: 0 when
// fn returns nil; otherwise fn's error is set as a JSON tool error with error_set and Run returns
// 1. A panic in fn is recovered into a fatal tool error (code plugin_failed), so a bug fails
// the call with a message instead of a trap.
//
// The error the agent sees is the first [*Error] in fn's error chain (errors.As), so host
// refusals and errors made with [Errorf] and its shorthands pass through wrapping unchanged. Any
// other error becomes a correctable tool error (code tool_error) whose message is its text.
//
//	//go:wasmexport post_message
//	func postMessage() int32 { return pdk.Run(slack.PostMessage) }
func Run(fn func() error) (code int32) {
	defer func() {
		if r := recover(); r != nil {
			code = 1
			setError(&Error{
				Code:     CodePluginTrap,
				Category: CategoryFatal,
				Message:  truncate(fmt.Sprintf("the connector failed unexpectedly: %v", r), 500),
			})
		}
	}()
	err := fn()
	if err == nil {
		return 0
	}
	setError(toolError(err))
	return 1
}

// toolError turns any error into the tool error the agent sees.
func toolError(err error) *Error {
	var e *Error
	if errors.As(err, &e) && e != nil {
		out := *e
		if out.Category == "" {
			out.Category = CategoryCorrectable
		}
		if out.Code == "" {
			out.Code = CodePluginError
		}
		if out.Message == "" {
			out.Message = out.Code
		}
		return &out
	}
	return &Error{Code: CodePluginError, Category: CategoryCorrectable, Message: truncate(err.Error(), 2000)}
}

// setError hands a tool error to the host. It must not panic: it runs inside Run's recover.
func setError(e *Error) {
	defer func() { _ = recover() }() // the host is unusable; Run still returns 1
	b, err := json.Marshal(e)
	if err != nil {
		b = []byte(`{"code":"plugin_failed","category":"fatal","message":"the connector failed unexpectedly"}`)
	}
	errorSet(writeBlock(b))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Config returns the value of a non-secret setting from the grant (a manifest `config` key, such
// as an instance URL or a default channel). ok is false when the key is not configured or its
// value is empty: the ABI does not tell the two apart.
func Config(key string) (value string, ok bool) {
	if key == "" {
		return "", false
	}
	off := writeBlock([]byte(key))
	res := hostConfig(off)
	free(off)
	if res == 0 {
		return "", false
	}
	return string(readBlock(res)), true
}

// Level is the severity of a log line.
type Level int

// Log levels (abi.LogDebug … abi.LogError).
const (
	LevelDebug Level = abi.LogDebug
	LevelInfo  Level = abi.LogInfo
	LevelWarn  Level = abi.LogWarn
	LevelError Level = abi.LogError
)

// Log writes a line to the host's log for this call. The host may drop lines below its level;
// never log a value an agent or admin should not see.
func Log(level Level, msg string) {
	if msg == "" {
		return
	}
	off := writeBlock([]byte(msg))
	hostLog(int64(level), off)
	free(off)
}

// Logf formats a line with fmt.Sprintf and logs it.
func Logf(level Level, format string, args ...any) {
	Log(level, fmt.Sprintf(format, args...))
}

// HTTP sends a request through the host's airlock_http function. The host checks it against the
// manifest and grant, injects the credential the request names (req.Credential, a slot name),
// applies rate limits and retries, and returns the upstream's answer. Any HTTP status is a
// response, not an error; err is non-nil only when the host refused or could not complete the
// request, and is then the host's *Error (resp.Error), whose Message is safe to show an agent.
func HTTP(req HTTPRequest) (HTTPResponse, error) {
	var resp HTTPResponse
	ok, err := callHTTP(&req, &resp)
	if err != nil {
		return HTTPResponse{}, fmt.Errorf("pdk: http: %w", err)
	}
	if !ok {
		return HTTPResponse{}, &Error{Code: CodeInternal, Category: CategoryFatal, Message: "the host did not answer the HTTP request"}
	}
	if resp.Error != nil {
		return resp, resp.Error
	}
	return resp, nil
}

// DB runs a database function declared in the manifest (airlock_db). err is non-nil when the
// host refused or the statement failed, and is then the host's *Error.
func DB(req DBRequest) (DBResponse, error) {
	var resp DBResponse
	ok, err := callJSON(hostDB, req, &resp)
	if err != nil {
		return DBResponse{}, fmt.Errorf("pdk: db: %w", err)
	}
	if !ok {
		return DBResponse{}, &Error{Code: CodeInternal, Category: CategoryFatal, Message: "the host did not answer the database request"}
	}
	if resp.Error != nil {
		return resp, resp.Error
	}
	return resp, nil
}

// RetryAfter is how long to wait according to the Retry-After header of an upstream response
// (delay-seconds or an HTTP date), or 0 when the header is absent or unreadable.
func RetryAfter(headers map[string][]string) time.Duration {
	v := strings.TrimSpace(Header(headers, "Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := time.Parse(time.RFC1123, v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// Header returns the first value of the header named key in an [HTTPResponse] or
// [HTTPRequest] header map, matching the name case-insensitively; "" when it is absent.
func Header(headers map[string][]string, key string) string {
	if v := headers[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range headers {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}
