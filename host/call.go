package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/internal/dbfunc"
	"github.com/airlock-dev/airlock/host/internal/egress"
	"github.com/airlock-dev/airlock/host/internal/idempotency"
	"github.com/airlock-dev/airlock/host/internal/runtime"
	"github.com/airlock-dev/airlock/host/internal/telemetry"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
)

var randRead = rand.Read

// CallRequest is one tool call.
type CallRequest struct {
	// Tool is "connector.tool".
	Tool string
	// Arguments is the JSON object of arguments; nil means {}.
	Arguments json.RawMessage
	// Agent and Subject identify the caller. They come from the caller's authenticated identity
	// (an agent token, the embedding program), never from tool arguments. Subject selects the
	// tenant: a plugin instance serves one subject only. Default "default".
	Agent, Subject string
	// Progress, if set, is called as the call advances (before the plugin runs and after each
	// outbound request), with a count of steps done and a short, secret-free description. It
	// runs on the calling goroutine: keep it quick. The MCP server turns it into progress
	// notifications.
	Progress func(done int, message string)
	// Confirmed says a human approved this exact call (for example through MCP elicitation).
	// Tools annotated destructive or needs_confirmation do not run without it.
	Confirmed bool
	// ActAs, if set, is a subject the caller asks to act for instead of Subject (over MCP HTTP,
	// the X-Airlock-Subject header). The agent's profile must list it (Profile.Subjects), or
	// the call is refused; it comes from the caller's request, never from tool arguments.
	ActAs string
	// Session, Conversation and User say who asked, for the audit trail only: the MCP session
	// the call came in on, and the conversation and end user the client names. They are labels,
	// never authority (the subject still comes from Agent's identity); Call keeps at most
	// MaxLabelLen bytes of each, without control or formatting characters.
	Session, Conversation, User string
	// IdempotencyKey, if set, makes the call run at most once: a repeat with the same key and
	// arguments returns the recorded outcome (Meta.Replayed) without the plugin or the upstream
	// running again. Tools annotated idempotent (and not read-only) get a key derived from
	// their arguments. Needs Config.Store.
	IdempotencyKey string
	// Defer asks for the call to be accepted now and run later from the durable queue, at the
	// upstream's pace: it is checked now (profile, grant, arguments, approval, quotas) and
	// answered with Data {"status":"accepted","job_id":…} (Accepted); JobStatusTool reports
	// the job. Only tools annotated deferrable may be deferred; it needs Config.Store.
	Defer bool

	job *jobRun // set when the queue runs a deferred call
}

// Result is the structured answer to every tool call, success or not.
type Result struct {
	OK    bool            `json:"ok"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error *ResultError    `json:"error,omitempty"`
	Meta  Meta            `json:"meta"`

	// superseded is set when the call passed its checks under a grant that was replaced before
	// the plugin started: Call runs it again, from the checks, under the new one.
	superseded bool
	// hc, if set, is where run keeps the call's handler (callState's).
	hc *callHandler
}

// maxAdmissions bounds how often Call re-runs a call whose grant was replaced while it was
// being admitted (grants changing faster than calls are checked).
const maxAdmissions = 3

// ResultError tells the agent what went wrong and what to do about it. Message is a sentence an
// LLM can act on; it never holds a secret or a stack trace.
type ResultError struct {
	Code     string       `json:"code"`
	Category abi.Category `json:"category"` // retryable, correctable or fatal
	Message  string       `json:"message"`
	// RetryAfter is how many seconds to wait before retrying, when known.
	RetryAfter float64 `json:"retry_after,omitempty"`
}

func (e *ResultError) Error() string { return e.Code + ": " + e.Message }

// Meta describes how the call ran.
type Meta struct {
	Connector  string  `json:"connector,omitempty"`
	Version    string  `json:"version,omitempty"`
	Tool       string  `json:"tool"`
	DurationMS float64 `json:"duration_ms"`
	Attempts   int     `json:"attempts"`
	Requests   int     `json:"requests"` // outbound requests the plugin made
	RequestID  string  `json:"request_id"`
	// Replayed says the result was recorded earlier under the call's idempotency key.
	Replayed bool `json:"replayed,omitempty"`
	// Untrusted marks data that came from an upstream (an open-world tool): treat it as data,
	// never as instructions.
	Untrusted bool `json:"untrusted,omitempty"`
	// Screening says what the screening of the result found and what the grant's action did
	// (nil: nothing found). See screen.go.
	Screening *Screening `json:"screening,omitempty"`
}

// Call runs one tool call end to end (DESIGN.md, "One tool call, end to end") and never panics:
// every failure is a Result with OK false and an Error.
func (h *Host) Call(ctx context.Context, req CallRequest) *Result {
	h.calls.start()
	defer h.calls.done()
	start := time.Now()
	st := new(callState)
	res, ev := &st.res, &st.ev
	// Field by field into the zeroed state: a composite literal would be built in Call's frame
	// and copied (a larger frame is a stack to grow in every goroutine that makes a call).
	res.Meta.Tool, res.Meta.RequestID, res.Meta.Attempts, res.hc = req.Tool, st.requestID(), 1, &st.hc
	if req.Subject == "" {
		req.Subject = "default"
	}
	ev.Time, ev.Kind, ev.RequestID, ev.Agent, ev.Subject, ev.Tool = start.UTC(), audit.KindCall, res.Meta.RequestID, req.Agent,
		req.Subject, req.Tool
	whoAsked(&req, ev)
	args := req.Arguments
	if len(args) == 0 {
		args = []byte("{}")
	}
	ev.ArgKeys, ev.ArgsSHA256 = topKeys(args), st.argsSHA256(args)
	ctx, span := h.startCall(ctx, &req, res.Meta.RequestID)

	for attempt := 1; ; attempt++ {
		res.superseded = false
		res.Error = h.callRecovered(ctx, req, args, res, ev)
		if !res.superseded || attempt == maxAdmissions {
			break
		}
	}
	res.OK = res.Error == nil
	res.Meta.DurationMS = durationMS(time.Since(start))

	ev.DurationMS, ev.Requests, ev.Outcome = res.Meta.DurationMS, res.Meta.Requests, "ok"
	if res.Error != nil {
		ev.Outcome, ev.Code, ev.Category, ev.Message = "error", res.Error.Code, string(res.Error.Category), res.Error.Message
		if res.Error.Code == abi.CodeNotGranted || res.Error.Code == abi.CodeEgressDenied {
			ev.Outcome = "denied"
		}
	}
	if err := h.auditCall(ctx, ev); err != nil {
		// Fail closed: a call that cannot be audited does not report success.
		h.logger.Error("audit write failed", "request_id", ev.RequestID, "err", err)
		res.OK, res.Data = false, nil
		res.Error = &ResultError{Code: abi.CodeUnavailable, Category: abi.Retryable,
			Message: "the call could not be recorded in the audit log, so its result is withheld; try again later"}
		if ev.Began {
			// The plugin ran: whatever it did upstream happened, and repeating it may do it twice.
			res.Error = &ResultError{Code: abi.CodeUnavailable, Category: abi.Fatal,
				Message: "the call ran, but its audit record could not be made durable, so its result is withheld and its outcome is unknown: " +
					"do not repeat it blindly; check whether it took effect (and ask an admin to check the state database)"}
		}
	}
	h.finishCall(span, &req, res, ev, start, time.Since(start))
	return res
}

// callState is what Call keeps of one call, in one allocation: the Result it returns, the audit
// record, the host functions' handler and the bytes of the request ID and the arguments' hash.
// The strings made from those bytes (Meta.RequestID, audit.Event.ArgsSHA256) point into it:
// the bytes are written once, before the string is made, and never again, and whoever holds
// the Result or such a string keeps the whole state alive.
type callState struct {
	res Result
	ev  audit.Event
	hc  callHandler
	raw [8]byte
	id  [16]byte
	sum [2 * sha256.Size]byte
}

// requestID returns a new random request ID (as newRequestID) held in st.
func (st *callState) requestID() string {
	randRead(st.raw[:])
	hex.Encode(st.id[:], st.raw[:])
	return unsafe.String(&st.id[0], len(st.id))
}

// argsSHA256 returns the hex SHA-256 of args (audit.Event.ArgsSHA256) held in st.
func (st *callState) argsSHA256(args []byte) string {
	sum := sha256.Sum256(args)
	hex.Encode(st.sum[:], sum[:])
	return unsafe.String(&st.sum[0], len(st.sum))
}

// callRecovered is call with a backstop: a panic in a call's own work (a bug of airlock's, or of
// a library met with hostile input) fails that call with an internal error, audited and logged
// with its stack like any other failure, instead of ending the goroutine, and over stdio the
// process, that serves every other call. The plugin's own traps never get here: the runtime
// turns them into errors.
func (h *Host) callRecovered(ctx context.Context, req CallRequest, args []byte, res *Result, ev *audit.Event) (rerr *ResultError) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		h.logger.Error("a tool call panicked; this is a bug in airlock: report it with this line", "request_id", ev.RequestID,
			"tool", h.scrub.String(telemetryName(req.Tool)), "panic", h.scrub.String(fmt.Sprint(p)), "stack", string(debug.Stack()))
		res.superseded = false
		rerr = &ResultError{Code: abi.CodeInternal, Category: abi.Fatal,
			Message: "the host failed while handling this call (an internal error, logged with request ID " + ev.RequestID + "); report it to the operator"}
		if ev.Began {
			rerr.Message += "; the tool had started, so check whether it took effect before calling again"
		}
	}()
	return h.call(ctx, req, args, res, ev)
}

func (h *Host) call(ctx context.Context, req CallRequest, args []byte, res *Result, ev *audit.Event) *ResultError {
	if req.Tool == JobStatusTool {
		return h.jobStatus(ctx, req, args, res, ev)
	}
	caller := req.Subject // before the profile may switch it (ActAs), for a deferred call
	connName, toolName, ok := strings.Cut(req.Tool, ".")
	if !ok || connName == "" || toolName == "" {
		return &ResultError{Code: abi.CodeUnknownTool, Category: abi.Correctable,
			Message: fmt.Sprintf("%q is not a tool name: tools are named connector.tool (available: %s)", req.Tool, h.toolNames(req.Agent))}
	}
	// 0. The agent's profile: the subject it acts for, and whether it may use this tool.
	if rerr := h.admitProfile(&req, ev); rerr != nil {
		ev.Connector = connName
		return rerr
	}
	c, ok := h.acquire(connName)
	if !ok {
		if why := h.stoppedReason(connName); why != "" {
			ev.Connector = connName
			return &ResultError{Code: abi.CodeNotGranted, Category: abi.Fatal,
				Message: fmt.Sprintf("tool %s is not granted: %s; ask an admin to grant it again", req.Tool, why)}
		}
		return &ResultError{Code: abi.CodeUnknownTool, Category: abi.Correctable,
			Message: fmt.Sprintf("there is no connector named %q (available tools: %s)", connName, h.toolNames(req.Agent))}
	}
	defer c.inflight.Done()
	return h.callOn(ctx, c, connName, toolName, caller, req, args, res, ev)
}

// callOn is call's part on an acquired connector c (steps 1 to 6), apart so that call's one
// defer is open-coded.
func (h *Host) callOn(ctx context.Context, c *connector, connName, toolName, caller string, req CallRequest, args []byte,
	res *Result, ev *audit.Event) *ResultError {
	m := c.manifest
	res.Meta.Connector, res.Meta.Version = m.Name, m.Version
	ev.Connector, ev.Version, ev.Digest, ev.Unsigned = m.Name, m.Version, c.digest, c.origin.Unsigned

	// 1. Is the tool granted, with all its scopes?
	tool, reason := c.policy.Callable(toolName)
	if tool == nil {
		if _, declared := m.Tool(toolName); !declared {
			return &ResultError{Code: abi.CodeUnknownTool, Category: abi.Correctable,
				Message: fmt.Sprintf("connector %s has no tool %q (available tools: %s)", connName, toolName, h.toolNames(req.Agent))}
		}
		return &ResultError{Code: abi.CodeNotGranted, Category: abi.Fatal,
			Message: fmt.Sprintf("tool %s is not granted: %s; ask an admin to grant it", req.Tool, reason)}
	}
	res.Meta.Untrusted = tool.Annotations.OpenWorld
	if why := c.credentialProblem(ctx); why != "" {
		return &ResultError{Code: abi.CodeCredential, Category: abi.Correctable, Message: why}
	}

	// 2. Arguments against the input schema.
	_, vspan := h.span(ctx, "validate")
	err := tool.ValidateInput(args)
	vspan.End()
	if err != nil {
		return &ResultError{Code: abi.CodeInvalidArguments, Category: abi.Correctable, Message: err.Error()}
	}

	cargs := callArgs{raw: args} // canonicalised at most once, if a held result, approval or idempotency binds to them

	// A result held for review by an earlier call with these arguments (screen.go).
	if rerr, done := h.heldResult(ctx, c, tool, req, &cargs, res, ev); done {
		return rerr
	}

	// 3. Confirmation gate: a destructive tool does not run on the agent's word alone.
	if c.policy.NeedsConfirmation(toolName) && !req.Confirmed {
		actx, aspan := h.span(ctx, "approval")
		rerr := h.approve(actx, c, toolName, req, &cargs)
		aspan.End()
		if rerr != nil {
			return rerr
		}
		req.Confirmed = true // a human approved this exact call: it may run what needs approval
	}

	// 4. Call quotas, per agent and per tool, of the grant and of the agent's profile (a
	// deferred call counted when it was accepted).
	if req.job == nil {
		if rerr := h.admitProfileQuota(ctx, &req, connName, toolName); rerr != nil {
			return rerr
		}
		if c.quota != nil {
			if ok, wait, reason := c.quota.Admit(ctx, req.Agent, connName, toolName); !ok {
				h.metrics().QuotaRefused(connName, toolName)
				// reason already says when to try again.
				return &ResultError{Code: abi.CodeRateLimited, Category: abi.Retryable, RetryAfter: wait.Seconds(), Message: reason}
			}
		}
	}

	// Idempotency: a keyed call that already ran returns its recorded outcome.
	key := req.IdempotencyKey
	if key == "" && tool.Annotations.Idempotent && !tool.Annotations.ReadOnly {
		if canon, err := cargs.canonical(); err == nil {
			key = idempotency.KeyCanonical(connName, toolName, req.Subject, canon)
		}
	}
	if req.Defer && req.job == nil {
		return h.accept(ctx, c, tool, req, caller, args, key, res, ev)
	}
	if key == "" || h.dedup == nil {
		rerr, unsure := h.run(ctx, c, tool, req, args, res, ev)
		if rerr != nil && unsure && rerr.Category == abi.Retryable {
			rerr.Message += "; a request that changes data may have reached the upstream before the failure, " +
				"so check whether it took effect before calling again (a call with an idempotency key is never run twice)"
		}
		return rerr
	}
	return h.runOnce(ctx, c, tool, req, &cargs, key, res, ev)
}

// idemOutcome is what the idempotency store keeps of a call.
type idemOutcome struct {
	Data  json.RawMessage `json:"data,omitempty"`
	Error *ResultError    `json:"error,omitempty"`
}

// runOnce runs the call at most once per (connector, tool, subject, key): a repeat with the same
// arguments gets the recorded outcome without the plugin or the upstream running again; the
// same key with other arguments is refused; concurrent repeats wait for the first. A retryable
// failure is not recorded, so a retry runs — unless a request that changes data may have taken
// effect without an answer: then running again could do it twice, so the failure is recorded as
// outcomeUnknown and the agent is told to check and use a new key.
func (h *Host) runOnce(ctx context.Context, c *connector, tool *manifest.Tool, req CallRequest, cargs *callArgs, key string, res *Result, ev *audit.Event) *ResultError {
	canon, err := cargs.canonical()
	if err != nil {
		return &ResultError{Code: abi.CodeInvalidArguments, Category: abi.Correctable, Message: "the arguments are not valid JSON"}
	}
	hash, args := idempotency.HashCanonical(canon), cargs.raw
	scope := c.manifest.Name + "." + tool.Name + "/" + req.Subject
	// A call left running by a host that died after it may have sent a request is run again
	// only when the tool is safe to repeat.
	var unknown func() []byte
	if !tool.Annotations.Idempotent && !tool.Annotations.ReadOnly {
		unknown = func() []byte {
			b, _ := json.Marshal(idemOutcome{Error: crashedUnknown()})
			return b
		}
	}
	out, replayed, err := h.dedup.DoOr(ctx, scope, key, hash, unknown, func(ctx context.Context) ([]byte, bool) {
		rerr, unsure := h.run(ctx, c, tool, req, args, res, ev)
		if rerr != nil && rerr.Category == abi.Retryable && unsure {
			rerr = outcomeUnknown(rerr)
		}
		b, _ := json.Marshal(idemOutcome{Data: res.Data, Error: rerr})
		return b, rerr == nil || rerr.Category != abi.Retryable
	})
	switch {
	case errors.Is(err, idempotency.ErrKeyReused):
		return &ResultError{Code: abi.CodeInvalidArguments, Category: abi.Correctable, Message: err.Error()}
	case errors.Is(err, idempotency.ErrInProgress):
		return &ResultError{Code: abi.CodeUnavailable, Category: abi.Retryable, RetryAfter: 1, Message: err.Error()}
	case err != nil:
		h.logger.Error("idempotency store", "tool", req.Tool, "err", err)
		return &ResultError{Code: abi.CodeUnavailable, Category: abi.Retryable,
			Message: "the idempotency record of this call could not be checked because the state store is unavailable; try again later"}
	}
	var o idemOutcome
	if jerr := json.Unmarshal(out, &o); jerr != nil {
		return &ResultError{Code: abi.CodeInternal, Category: abi.Fatal, Message: "the recorded outcome of this idempotency key is unreadable; use a new key"}
	}
	if replayed {
		res.Meta.Replayed = true
		ev.Replayed = true
	}
	res.Data = o.Data
	return o.Error
}

// CodeOutcomeUnknown is the error code of a call that a host stopped in the middle of (killed,
// crashed) after it may have sent its request: whether it happened upstream is unknown, and the
// host does not run it again.
const CodeOutcomeUnknown = audit.CodeOutcomeUnknown // the code of a begun call never finished, too

// crashedUnknown is the outcome recorded for a call of a tool that is not safe to repeat, found
// running under a lapsed lease after it may have reached the upstream.
func crashedUnknown() *ResultError {
	return &ResultError{Code: CodeOutcomeUnknown, Category: abi.Correctable, Message: "the host stopped while this call was running; " +
		"it may or may not have happened upstream: check before asking again (with a new idempotency key); it will not be run again automatically"}
}

// outcomeUnknown is what a keyed call records instead of a retryable failure when one of its
// requests that change data may have taken effect: repeating the key must not send it again.
func outcomeUnknown(e *ResultError) *ResultError {
	return &ResultError{Code: e.Code, Category: abi.Correctable, Message: fmt.Sprintf(
		"the call failed (%s) after the connector sent a request that changes data and got no answer, so it may have taken effect; "+
			"to avoid doing it twice, this idempotency key will not run the call again. Check whether it took effect and, if it did not, call again with a new idempotency key",
		e.Code)}
}

// run is steps 5 to 7 of a call: the plugin, the output checks, the screening.
// unsure reports a failed call that may have changed data upstream without knowing it: a
// request that changes data (a method that is not idempotent, without an idempotency key the
// upstream could deduplicate on) got no answer, or was answered before the call was cut off
// (timeout, cancellation) without the plugin reporting the outcome.
func (h *Host) run(ctx context.Context, c *connector, tool *manifest.Tool, req CallRequest, args []byte, res *Result, ev *audit.Event) (rerr *ResultError, unsure bool) {
	m, connName := c.manifest, c.manifest.Name
	// 5. The plugin, in its sandbox, with the host functions of this call.
	ctx, span := h.span(ctx, "plugin")
	defer span.End()
	hc := res.hc // Call's; a fresh one for a result made elsewhere, or if Call's served a call
	if hc == nil || hc.sandbox.Used() {
		hc = new(callHandler)
	}
	*hc = callHandler{} // then field by field: no composite literal in run's frame (see Call)
	hc.h, hc.c, hc.ev, hc.maxRequests, hc.progress = h, c, ev, c.policy.Limits.MaxRequests, req.Progress
	hc.tool, hc.approved, hc.ctx = tool, req.Confirmed, ctx
	if hc.progress != nil {
		hc.progress(0, "running "+req.Tool)
	}
	hc.egress = egress.Call{Binding: c.binding(tool), Observer: hc}
	ctx = hc.bound.Bind(ctx, &hc.egress)
	input := args
	if tool.Function != "" {
		input = functionInput(m, tool, args)
		hc.fnInput = input
	}
	// Admission: the checks above ran against c's grant; if a decision replaced it since, the
	// call must not run under the old one (invariant 10).
	if rerr := h.superseded(c, req.Tool); rerr != nil {
		res.superseded = rerr.Code == abi.CodeUnavailable // replaced, not stopped: check again
		return rerr, false
	}
	// The begin record is queued before the plugin runs and committed before its first
	// outbound request: if the host dies during the call, the next start records it as outcome
	// unknown (audit.Beginner).
	if b, ok := h.audit.(audit.Beginner); ok {
		durable, err := b.Begin(ctx, *ev)
		if err != nil {
			h.logger.Error("audit write failed", "request_id", ev.RequestID, "err", err)
			return &ResultError{Code: abi.CodeUnavailable, Category: abi.Retryable,
				Message: "the call could not be recorded in the audit log before it ran, so it did not run; try again later"}, false
		}
		hc.begun = durable
		ev.Began = true
	}
	out, err := c.module.Call(ctx, req.Subject, tool.Export, input, hc)
	res.Meta.Requests = hc.requests
	if err != nil {
		var pe *runtime.PluginError
		rerr := h.pluginFailure(req.Tool, err)
		if errors.As(err, &pe) { // the plugin's own error: built from what the upstream said
			rerr = h.screenError(ctx, c, tool, req, rerr, res, ev)
		}
		return rerr, hc.unanswered || (hc.wrote && !errors.As(err, &pe))
	}

	// 6. Output against the output schema; 7. no secret leaves.
	known := len(out) == 0 // the host's own null is JSON
	if known {
		hc.null = [4]byte{'n', 'u', 'l', 'l'}
		out = hc.null[:]
	}
	if h.scrub.Contains(out) {
		h.logger.Warn("a secret value in a tool result was redacted", "tool", req.Tool, "request_id", res.Meta.RequestID)
		out, known = h.scrub.Bytes(out), false
	}
	if !known && !json.Valid(out) {
		return &ResultError{Code: abi.CodeInvalidOutput, Category: abi.Fatal,
			Message: fmt.Sprintf("connector %s returned a result that is not JSON; report it to the connector's publisher", connName)}, false
	}
	if err := tool.ValidateOutput(out); err != nil {
		return &ResultError{Code: abi.CodeInvalidOutput, Category: abi.Fatal,
			Message: fmt.Sprintf("connector %s returned a result that does not match its declared output schema (%s); report it to the connector's publisher",
				connName, h.scrub.String(err.Error()))}, false
	}
	// 7. Screening for prompt injection, and the grant's action (screen.go).
	if out, rerr = h.screenResult(ctx, c, tool, req, args, out, res, ev); rerr != nil {
		return rerr, false
	}
	res.Data = out
	return nil, false
}

// NeedsConfirmation reports whether a tool with these annotations needs a human's confirmation
// before each call: tools marked destructive or needs_confirmation do.
func NeedsConfirmation(a manifest.Annotations) bool { return a.Destructive || a.NeedsConfirmation }

// pluginFailure maps a runtime error to the taxonomy. Detail goes to the log, never to the agent.
func (h *Host) pluginFailure(tool string, err error) *ResultError {
	var pe *runtime.PluginError
	var te *runtime.TrapError
	switch {
	case errors.As(err, &pe):
		if e, ok := abi.DecodeToolError(pe.Message); ok {
			return &ResultError{Code: e.Code, Category: e.Category, Message: h.scrub.String(e.Message),
				RetryAfter: float64(e.RetryAfterMS) / 1000}
		}
		msg := strings.TrimSpace(string(pe.Message))
		if msg == "" {
			msg = fmt.Sprintf("the tool failed with code %d and no message", pe.Code)
		}
		if len(msg) > 2000 {
			msg = msg[:2000] + "…"
		}
		return &ResultError{Code: abi.CodePluginError, Category: abi.Correctable, Message: h.scrub.String(msg)}
	case errors.As(err, &te):
		h.logger.Warn("plugin trapped", "tool", tool, "detail", h.scrub.String(te.Detail))
		return &ResultError{Code: abi.CodePluginTrap, Category: abi.Fatal,
			Message: fmt.Sprintf("the connector crashed while running %s; the call was stopped and nothing else was affected. Do not retry: report it to the connector's publisher", tool)}
	case errors.Is(err, runtime.ErrTimeout):
		return &ResultError{Code: abi.CodeTimeout, Category: abi.Retryable,
			Message: fmt.Sprintf("%s did not finish in time and was stopped; try again later or with a smaller request", tool)}
	case errors.Is(err, context.Canceled):
		return &ResultError{Code: abi.CodeTimeout, Category: abi.Retryable, Message: "the call was cancelled by the caller"}
	case errors.Is(err, context.DeadlineExceeded):
		return &ResultError{Code: abi.CodeTimeout, Category: abi.Retryable,
			Message: fmt.Sprintf("%s could not start before the caller's deadline: every sandbox of this connector was busy; try again later", tool)}
	case errors.Is(err, runtime.ErrInputTooLarge):
		return &ResultError{Code: abi.CodeTooLarge, Category: abi.Correctable, Message: "the arguments are too large: " + err.Error()}
	case errors.Is(err, runtime.ErrOutputTooLarge):
		return &ResultError{Code: abi.CodeTooLarge, Category: abi.Correctable,
			Message: "the result was larger than the connector may return; ask for less (a smaller limit, a narrower query)"}
	default:
		h.logger.Error("tool call failed", "tool", tool, "err", h.scrub.String(err.Error()))
		return &ResultError{Code: abi.CodeInternal, Category: abi.Retryable, Message: "the host could not run the tool; try again later"}
	}
}

// callHandler serves the host functions of one call. Used by one goroutine at a time.
type callHandler struct {
	h           *Host
	c           *connector
	ev          *audit.Event
	requests    int
	maxRequests int
	progress    func(int, string)
	ctx         context.Context // the plugin span's, for the outbound requests' spans
	// wrote: a request that changes data was answered; unanswered: one got no answer (it may
	// have taken effect). Only requests the host may not replay count (see mayChangeData).
	wrote, unanswered bool
	// tool is the tool being run, whose binding (tools[].uses) limits what the call may use;
	// approved says a human approved this exact call; fnInput is the database request the host
	// built from the arguments for a tool with a function (binding.go).
	tool     *manifest.Tool
	approved bool
	fnInput  []byte
	// begun, until the first outbound request, waits for the call's begin record to be
	// committed (audit.Beginner).
	begun func(context.Context) error
	// egress is what the call's outbound requests carry (its binding; hc observes them), in
	// the context bound holds; null is the result of a plugin that set no output. Both live
	// here so that a call allocates neither.
	egress egress.Call
	bound  egress.CallContext
	null   [4]byte
	// sandbox is where the runtime makes the call's context (runtime.CallContextSlot).
	sandbox runtime.CallContextSlot
}

// CallContextSlot gives the runtime room for the sandbox call's context: hc serves one call.
func (hc *callHandler) CallContextSlot() *runtime.CallContextSlot { return &hc.sandbox }

// beforeRequest makes sure the call's begin record is on disk before anything leaves the host;
// if it cannot be, the request is refused.
func (hc *callHandler) beforeRequest(ctx context.Context) *abi.Error {
	if err := idempotency.Attempting(hc.ctx); err != nil {
		hc.h.logger.Error("idempotency store", "request_id", hc.ev.RequestID, "err", err)
		return &abi.Error{Code: abi.CodeUnavailable, Category: abi.Retryable, RetryAfterMS: 1000,
			Message: "the host could not record that this call is about to reach the upstream, so no request was sent; try again later"}
	}
	if hc.begun == nil {
		return nil
	}
	err := hc.begun(ctx)
	hc.begun = nil
	if err != nil {
		hc.h.logger.Error("audit write failed", "request_id", hc.ev.RequestID, "err", err)
		return &abi.Error{Code: abi.CodeUnavailable, Category: abi.Retryable, RetryAfterMS: 1000,
			Message: "the host could not record this call in the audit log, so no request was sent; try again later"}
	}
	return nil
}

func (hc *callHandler) HTTP(ctx context.Context, request []byte) []byte {
	var req abi.HTTPRequest
	var resp abi.HTTPResponse
	if err := abi.DecodeHTTPRequest(request, &req); err != nil {
		resp.Error = &abi.Error{Code: abi.CodeBadRequest, Category: abi.Fatal,
			Message: "the connector sent a malformed request envelope (see pdk/ABI.md)"}
	} else if len(req.ResponseHeaders) > abi.MaxResponseHeaders {
		resp.Error = &abi.Error{Code: abi.CodeBadRequest, Category: abi.Fatal,
			Message: fmt.Sprintf("the connector asked for %d response headers by name; at most %d may be named (or none, for all of them)", len(req.ResponseHeaders), abi.MaxResponseHeaders)}
	} else if hc.requests >= hc.maxRequests {
		resp.Error = &abi.Error{Code: abi.CodeTooLarge, Category: abi.Correctable,
			Message: fmt.Sprintf("the connector may make at most %d requests per call; ask for less at a time", hc.maxRequests)}
	} else if e := hc.beforeRequest(ctx); e != nil {
		resp.Error = e
	} else {
		hc.requests++
		if hc.c.propagate {
			telemetry.Inject(hc.ctx, &req.Headers)
		}
		// The subject comes from the caller's identity, never from the plugin's request.
		resp = hc.c.egress.Do(egress.WithSubject(ctx, hc.ev.Subject), req)
		if mayChangeData(req) {
			switch {
			case resp.Error == nil:
				hc.wrote = true
			case resp.Error.Code == abi.CodeTimeout, resp.Error.Code == abi.CodeUpstreamError, resp.Error.Code == abi.CodeResponseTooLarge:
				hc.unanswered = true // sent, and the answer was lost: it may have taken effect
			}
		}
	}
	if len(req.ResponseHeaders) > 0 && resp.Headers != nil {
		resp.Headers = abi.KeepHeaders(resp.Headers, req.ResponseHeaders)
	}
	if req.RawBody {
		// The body after the envelope, as it is: no base64 for the connector to decode (ABI.md).
		return abi.AppendHTTPResponseRaw(make([]byte, 0, 256+len(resp.Body)), &resp)
	}
	return abi.AppendHTTPResponse(make([]byte, 0, 256+len(resp.Body)*4/3), &resp)
}

// mayChangeData reports whether req may change data upstream and may not be replayed: its
// method is not idempotent (RFC 9110 §9.2.2) and it carries no idempotency key the upstream
// could deduplicate on — the requests egress does not retry.
func mayChangeData(req abi.HTTPRequest) bool {
	switch strings.ToUpper(req.Method) {
	case "", "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return false
	}
	return req.IdempotencyKey == ""
}

// Observe records an outbound request of the call (egress.Observer).
func (hc *callHandler) Observe(r egress.Record) {
	hc.observeRequest(r)
	e := audit.Event{
		Time: time.Now().UTC().Add(-r.Duration), Kind: audit.KindRequest, RequestID: hc.ev.RequestID,
		Agent: hc.ev.Agent, Subject: hc.ev.Subject, Connector: hc.ev.Connector, Version: hc.ev.Version,
		Digest: hc.ev.Digest, Unsigned: hc.ev.Unsigned, Tool: hc.ev.Tool, Outcome: r.Decision, Message: r.Reason,
		DurationMS: durationMS(r.Duration), Method: r.Method, URL: r.URL, Status: r.Status,
		Credential: r.Credential, Injected: r.Injected, Hop: r.Redirect,
		Attempt: r.Attempt, WaitMS: durationMS(r.Wait),
	}
	if err := hc.h.audit.Write(context.Background(), e); err != nil {
		hc.h.logger.Error("audit write failed", "request_id", e.RequestID, "err", err)
	}
	if hc.progress != nil {
		msg := fmt.Sprintf("%s %s: %s", r.Method, r.URL, r.Decision)
		if r.Status != 0 {
			msg = fmt.Sprintf("%s %s: %d", r.Method, r.URL, r.Status)
		}
		hc.progress(hc.requests, msg)
	}
}

// DB serves airlock_db: it runs a granted database function of the connector that the running
// tool's binding names (see checkDB and host/internal/dbfunc) and records one audit event of
// kind request with the tool, method DB and URL db:FUNCTION.
// Database calls count against the call's max_requests.
func (hc *callHandler) DB(ctx context.Context, request []byte) []byte {
	start := time.Now()
	var name struct {
		Function string `json:"function"`
	}
	_ = json.Unmarshal(request, &name)
	var resp abi.DBResponse
	refusal := hc.checkDB(name.Function, request) // the tool's binding (binding.go)
	switch db, err := hc.c.database(ctx, hc.h); {
	case len(hc.c.policy.Functions) == 0:
		resp.Error = &abi.Error{Code: abi.CodeNotGranted, Category: abi.Fatal,
			Message: "no database function of this connector is granted; an admin must grant them (database.functions in the grant)"}
	case refusal != nil:
		resp.Error = refusal
	case hc.requests >= hc.maxRequests:
		resp.Error = &abi.Error{Code: abi.CodeTooLarge, Category: abi.Correctable,
			Message: fmt.Sprintf("the connector may make at most %d requests per call; ask for less at a time", hc.maxRequests)}
	case err != nil:
		hc.h.logger.Error("database unavailable", "connector", hc.ev.Connector, "err", hc.h.scrub.String(err.Error()))
		resp.Error = &abi.Error{Code: abi.CodeUnavailable, Category: abi.Retryable, RetryAfterMS: 1000,
			Message: "the connector's database is not available right now; try again later, and if it persists ask an admin to check the grant's database.dsn"}
	default:
		if resp.Error = hc.beforeRequest(ctx); resp.Error == nil {
			hc.requests++
			resp = db.Call(dbfunc.WithSubject(ctx, hc.ev.Subject), request)
		}
	}
	outcome, msg := "ok", ""
	if resp.Error != nil {
		outcome, msg = "error", resp.Error.Message
		switch resp.Error.Code {
		case abi.CodeNotGranted, abi.CodeEgressDenied, abi.CodeNeedsConfirm:
			outcome = "denied"
		}
	}
	e := audit.Event{
		Time: start.UTC(), Kind: audit.KindRequest, RequestID: hc.ev.RequestID, Agent: hc.ev.Agent,
		Subject: hc.ev.Subject, Connector: hc.ev.Connector, Version: hc.ev.Version, Digest: hc.ev.Digest,
		Tool: hc.ev.Tool, Outcome: outcome, Message: hc.h.scrub.String(msg), Method: "DB",
		URL: "db:" + truncateName(name.Function), DurationMS: durationMS(time.Since(start)),
	}
	if resp.Error != nil {
		e.Code, e.Category = resp.Error.Code, string(resp.Error.Category)
	}
	if err := hc.h.audit.Write(context.Background(), e); err != nil {
		hc.h.logger.Error("audit write failed", "request_id", e.RequestID, "err", err)
	}
	if hc.progress != nil {
		hc.progress(hc.requests, "database function "+truncateName(name.Function)+": "+outcome)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return []byte(`{"error":{"code":"internal","category":"retryable","message":"the host could not encode the database response"}}`)
	}
	return b
}

func truncateName(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// functionInput is the plugin input of a tool that runs a database function:
// {"function": NAME, "params": [...]}, the tool's arguments put in the order of the function's
// parameters (an absent argument is null, which the parameter's schema may refuse).
func functionInput(m *manifest.Manifest, tool *manifest.Tool, args []byte) []byte {
	var obj map[string]json.RawMessage
	_ = json.Unmarshal(args, &obj) // validated against the input schema already
	in := struct {
		Function string            `json:"function"`
		Params   []json.RawMessage `json:"params"`
	}{Function: tool.Function, Params: []json.RawMessage{}}
	if f, ok := m.Function(tool.Function); ok {
		for _, p := range f.Params {
			v, ok := obj[p.Name]
			if !ok {
				v = json.RawMessage("null")
			}
			in.Params = append(in.Params, v)
		}
	}
	b, _ := json.Marshal(in)
	return b
}

// database returns the connector's database pool, opened at load.
func (c *connector) database(context.Context, *Host) (*dbfunc.DB, error) {
	if c.db == nil {
		return nil, errors.New("no database is granted")
	}
	return c.db, nil
}

func (hc *callHandler) Config(key string) (string, bool) {
	// connection.SLOT.KEY: non-secret metadata of the calling subject's connection
	// (connection.salesforce.instance_url). Never a token.
	if rest, ok := strings.CutPrefix(key, "connection."); ok {
		slot, k, ok := strings.Cut(rest, ".")
		if !ok {
			return "", false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		md, err := hc.c.egress.ConnectionMetadata(ctx, slot, hc.ev.Subject)
		if err != nil {
			hc.h.logger.Warn("connection metadata unavailable", "connector", hc.ev.Connector, "slot", slot,
				"subject", hc.ev.Subject, "err", hc.h.scrub.String(err.Error()))
			return "", false
		}
		v, ok := md[k]
		return v, ok
	}
	v, ok := hc.c.policy.Config[key]
	return v, ok
}

func (hc *callHandler) Log(level int, msg string) {
	lvl := slog.LevelInfo
	switch level {
	case abi.LogDebug:
		lvl = slog.LevelDebug
	case abi.LogWarn:
		lvl = slog.LevelWarn
	case abi.LogError:
		lvl = slog.LevelError
	}
	hc.h.logger.Log(context.Background(), lvl, "plugin: "+hc.h.scrub.String(msg),
		"connector", hc.ev.Connector, "tool", hc.ev.Tool, "request_id", hc.ev.RequestID)
}

// summarize describes arguments for the audit log without recording their values: the sorted,
// distinct top-level keys of a JSON object (none for anything else) and the SHA-256 of the bytes.
func summarize(args []byte) ([]string, string) {
	sum := sha256.Sum256(args)
	return topKeys(args), hex.EncodeToString(sum[:])
}

// topKeys returns the sorted, distinct keys of the JSON object in b, or nil when b is not a JSON
// object. It reads the keys in place rather than decoding the object into a map.
func topKeys(b []byte) []string {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil
	}
	if j := skipSpace(b, i+1); j < len(b) && b[j] == '}' && skipSpace(b, j+1) == len(b) {
		return nil // {}: the arguments of most calls without parameters, no key to find
	}
	if !json.Valid(b) {
		return nil
	}
	var keys []string
	for i = skipSpace(b, i+1); i < len(b) && b[i] == '"'; {
		end := stringEnd(b, i)
		key := b[i:end]
		var k string
		if bytes.IndexByte(key, '\\') < 0 {
			k = string(key[1 : len(key)-1])
		} else if json.Unmarshal(key, &k) != nil {
			return nil
		}
		keys = append(keys, k)
		i = skipValue(b, skipSpace(b, skipSpace(b, end)+1)) // past the ':' and the value
		if i = skipSpace(b, i); i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string that starts at b[i] ('"').
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the valid JSON value that starts at b[i].
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			i = stringEnd(b, i) - 1
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// superseded says why c, acquired for a call, may no longer run it: the decision it was built
// from was replaced (a revoke, a grant change, an upgrade) after the call's checks passed. It
// returns nil while c still serves its name. Checked at admission to the plugin, so that a call
// admitted after a decision is acknowledged (SetInstalled returned) never runs under the old one.
func (h *Host) superseded(c *connector, tool string) *ResultError {
	name := c.manifest.Name
	h.mu.RLock()
	cur, why := h.connectors[name], h.stopped[name]
	h.mu.RUnlock()
	switch {
	case cur == c:
		return nil
	case cur == nil && why != "":
		return &ResultError{Code: abi.CodeNotGranted, Category: abi.Fatal,
			Message: fmt.Sprintf("tool %s is not granted: %s; ask an admin to grant it again", tool, why)}
	default:
		return &ResultError{Code: abi.CodeUnavailable, Category: abi.Retryable, RetryAfter: 0.1,
			Message: fmt.Sprintf("the grant of connector %s changed while this call was being admitted, so it did not run; call again to run it under the new grant", name)}
	}
}
