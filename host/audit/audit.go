// Package audit defines the audit trail of tool calls and outbound requests, and the sinks that
// keep it.
//
// The host writes one Event of kind "call" per tool call and one of kind "request" per outbound
// request attempt or redirect hop. Events never hold a secret value: arguments are summarised
// (their top-level keys and a SHA-256 digest), URLs carry no query string, credentials are named
// by slot, and every message has been through the host's secret scrubber.
//
// Sinks: [JSONL] (a JSON-lines file), [Memory] (tests), and [StoreSink], which keeps events in
// the state store's hash-chained audit log (SQLite or PostgreSQL, see package store): record n
// carries Hash = hex(sha256(PrevHash + "\n" + Seq + "\n" + Data)) over the event's JSON. A
// StoreSink appends in batches from a bounded buffer and fails closed by default: while the store
// is failing, Write returns an error wrapping [ErrStoreUnavailable] and the host refuses the call.
//
// The plain chain only detects accidents: anyone who can write the database can recompute it.
// [Attach] makes it tamper-evident against such an attacker: a [Trail] authenticates every link
// with an HMAC under an audit key the database holds only sealed (by the secret store, under the
// master key), signs ed25519 checkpoints of the chain's head into the store and an anchor file
// outside it, verifies all of it ([Trail.Verify]: the first bad record, or which records are
// missing), and exports the log for verification with only the public key ([Trail.Export],
// [VerifyExport]). [Action] records an admin action with its actor; [RefusedAuth] records
// refused authentications; a StoreSink rate-limits refusals and counts what it drops.
//
// Example:
//
//	f, _ := audit.OpenFile(".airlock/audit.jsonl")
//	h, _ := host.New(host.Config{Audit: f})
//
// or, with the state store and the keyed trail:
//
//	st, _ := store.Open(ctx, "sqlite:.airlock/state.db")
//	trail, _ := audit.Attach(ctx, st, secrets, &audit.TrailOptions{Anchor: ".airlock/audit-anchor.jsonl"})
//	sink := audit.NewStoreSink(st, &audit.StoreSinkOptions{Trail: trail}) // fail closed
//	defer sink.Close()                                                      // flushes, checkpoints
//	h, _ := host.New(host.Config{Audit: sink})
package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Event is one audit record.
type Event struct {
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"` // KindCall or KindRequest
	RequestID string    `json:"request_id"`
	Agent     string    `json:"agent,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	// Who asked (call events): the MCP session the call came in on, and the conversation and
	// end user the client said it was for. Labels only, never authority (the subject comes from
	// the agent's token); bounded and sanitised by the host (host.CallRequest).
	Session      string `json:"session,omitempty"`
	Conversation string `json:"conversation,omitempty"`
	User         string `json:"end_user,omitempty"`
	// Profile is the agent profile the call was checked against (call events), if any.
	Profile   string `json:"profile,omitempty"`
	Connector string `json:"connector,omitempty"`
	Version   string `json:"version,omitempty"`
	Digest    string `json:"module_sha256,omitempty"`
	Tool      string `json:"tool,omitempty"`
	// Replayed marks a call answered from its idempotency record, without running again.
	Replayed bool `json:"replayed,omitempty"`
	// Unsigned marks a connector installed with --allow-unsigned (development only).
	Unsigned bool `json:"unsigned,omitempty"`

	// Call events.
	ArgKeys    []string `json:"arg_keys,omitempty"`
	ArgsSHA256 string   `json:"args_sha256,omitempty"`
	Outcome    string   `json:"outcome"` // "ok", "error", "denied"
	Code       string   `json:"code,omitempty"`
	Category   string   `json:"category,omitempty"`
	Message    string   `json:"message,omitempty"`
	DurationMS float64  `json:"duration_ms"`
	Requests   int      `json:"requests,omitempty"`

	// Screening is what the screening of the call's result found and did (nil: nothing
	// found). It names detectors, rules and JSON paths, never the text.
	Screening *Screening `json:"screening,omitempty"`

	// Request events.
	Method     string  `json:"method,omitempty"`
	URL        string  `json:"url,omitempty"` // no query string, no userinfo
	Status     int     `json:"status,omitempty"`
	Credential string  `json:"credential,omitempty"` // slot name, never a value
	Injected   bool    `json:"injected,omitempty"`
	Hop        int     `json:"hop,omitempty"`
	Attempt    int     `json:"attempt,omitempty"` // 1, 2, … when the host retried; 0 when refused before sending
	WaitMS     float64 `json:"wait_ms,omitempty"` // backoff or rate-limit wait before this attempt

	// Admin events (KindAdmin): who did what to what. Detail holds names and the resulting
	// change (a grant's diff), never a secret value.
	Actor  string          `json:"actor,omitempty"` // admin token name, or "cli:<os user>"
	Action string          `json:"action,omitempty"`
	Target string          `json:"target,omitempty"`
	Detail json.RawMessage `json:"detail,omitempty"`

	// Refused authentication (KindAuth): where from, and whether a token was presented.
	Remote string `json:"remote,omitempty"`
	Realm  string `json:"realm,omitempty"` // "mcp" or "admin"

	// KindBegin: the process that ran the call (host name/pid/start nonce), so that the host
	// finds the calls a crash interrupted when it opens again.
	Process string `json:"process,omitempty"`
	// Began is set by the host once the call's begin record is committed (never recorded).
	Began bool `json:"-"`

	// KindDropped: how many refused calls and authentications were not recorded because they
	// came faster than the sink's limit, since the previous such record.
	Dropped int64 `json:"dropped,omitempty"`
}

// Screening is what the screening of one tool result found, and the action the grant took.
type Screening struct {
	// Action is the grant's screening action: label, redact, require_approval or block.
	Action string `json:"action"`
	// Findings are the first findings (at most 50); Total counts them all.
	Findings []Finding `json:"findings,omitempty"`
	Total    int       `json:"total,omitempty"`
	// ClassifierError says why the external classifier gave no verdict, when it fails open.
	ClassifierError string `json:"classifier_error,omitempty"`
	// Approval is the approval that holds (or released) the result, for require_approval.
	Approval string `json:"approval,omitempty"`
}

// Summary names the first n findings for a message, "instruction/ignore_previous at
// /messages/1/text (base64)", and how many more there are.
func (s *Screening) Summary(n int) string {
	var parts []string
	for i, f := range s.Findings {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", s.Total-n))
			break
		}
		p := f.Detector + "/" + f.Rule
		if f.Path != "" {
			p += " at " + f.Path
		}
		if f.Encoding != "" {
			p += " (" + f.Encoding + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// Finding is one sign of prompt injection in a tool result: which detector and rule, the
// language of the phrase family, the JSON pointer of the string, and what it was decoded from.
type Finding struct {
	Detector string `json:"detector"`
	Rule     string `json:"rule"`
	Lang     string `json:"lang,omitempty"`
	Path     string `json:"path"`
	Encoding string `json:"encoding,omitempty"`
}

// Kinds of Event.
const (
	KindCall    = "call"
	KindRequest = "request"
	// KindCredential records a change in a connection: connected, refreshed, needs_reauth.
	KindCredential = "credential"
	// KindAdmin records an admin action ([Action]).
	KindAdmin = "admin"
	// KindAuth records a refused authentication (a missing, wrong or revoked token).
	KindAuth = "auth"
	// KindDropped counts refused calls and authentications left out by the rate limit.
	KindDropped = "dropped"
	// KindUnstorable stands in for a record the audit database refused for its content (a value
	// one of its columns cannot take): Message says why and carries the record, byte for byte,
	// in base64 (StoreSink).
	KindUnstorable = "unstorable"
)

// Sink keeps audit events. Write must be safe for concurrent use. A Write error fails the call
// that produced the event (the host fails closed rather than act unaudited).
type Sink interface {
	Write(ctx context.Context, e Event) error
}

// JSONL writes events as JSON lines. Safe for concurrent use.
type JSONL struct {
	mu sync.Mutex
	w  *bufio.Writer
	c  io.Closer
}

// NewJSONL returns a sink writing to w; each event is flushed as it is written.
func NewJSONL(w io.Writer) *JSONL {
	j := &JSONL{w: bufio.NewWriter(w)}
	if c, ok := w.(io.Closer); ok {
		j.c = c
	}
	return j
}

// OpenFile opens (creating, mode 0600) a JSON-lines audit file for appending.
func OpenFile(path string) (*JSONL, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return NewJSONL(f), nil
}

// Write appends e as one line.
func (j *JSONL) Write(_ context.Context, e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.w.Write(b)
	j.w.WriteByte('\n')
	return j.w.Flush()
}

// Close flushes and closes the underlying writer if it is a Closer.
func (j *JSONL) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.w.Flush()
	if j.c != nil {
		err = errors.Join(err, j.c.Close())
	}
	return err
}

// Memory keeps events in memory, for tests and embedders that forward them elsewhere. The zero
// value is ready to use and safe for concurrent use.
type Memory struct {
	mu     sync.Mutex
	events []Event
}

// Write records e.
func (m *Memory) Write(_ context.Context, e Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return nil
}

// Events returns a copy of the events written so far.
func (m *Memory) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.events...)
}

// ReadFile reads a JSON-lines audit file.
func ReadFile(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	var events []Event
	dec := json.NewDecoder(f)
	for {
		var e Event
		if err := dec.Decode(&e); err == io.EOF {
			return events, nil
		} else if err != nil {
			return events, fmt.Errorf("audit: %s: record %d: %w", path, len(events)+1, err)
		}
		events = append(events, e)
	}
}
