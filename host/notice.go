package host

import (
	"encoding/json"
	"fmt"
	"time"
)

// Notice events: what Config.OnNotice is called for.
const (
	// NoticeApprovalPending: a call (or a screened result) waits for an admin's approval.
	NoticeApprovalPending = "approval.pending"
	// NoticeConnectionNeedsReauth: a connection's OAuth refresh was refused (invalid_grant, or
	// no refresh token): an admin must connect the subject again.
	NoticeConnectionNeedsReauth = "connection.needs_reauth"
	// NoticeBreakerOpen: the circuit breaker of an upstream host opened after consecutive
	// failures; calls reaching that host fail fast until a probe succeeds.
	NoticeBreakerOpen = "breaker.open"
)

// NoticeEvents lists the notice events.
var NoticeEvents = []string{NoticeApprovalPending, NoticeConnectionNeedsReauth, NoticeBreakerOpen}

// Notice is something an admin should hear about without polling (see Config.OnNotice and
// package host/notify, which sends notices to webhooks). It holds no secret: Arguments and
// Detail are scrubbed of every secret value the host knows.
type Notice struct {
	Event string // one of the Notice* events
	// ID identifies what the notice is about: the approval's ID (the one `airlock approve`
	// takes), or a new ID for the other events.
	ID        string
	Connector string
	Tool      string // approval: the tool, ending in #result for a screened result held for review
	Agent     string // approval: the agent that called
	Subject   string // approval and connection: the subject (tenant)
	Slot      string // connection: the credential slot
	Host      string // breaker: the upstream host
	// Detail says what happened, in plain words.
	Detail string
	// Arguments are an approval's exact arguments, scrubbed; nil for a held result (its data
	// came from the upstream) and for the other events.
	Arguments json.RawMessage
	Created   time.Time
	Expires   time.Time // approval: when the request expires; zero otherwise
}

// notice hands n to Config.OnNotice, if set. It runs on the call path: OnNotice must return at
// once (host/notify queues), and a panic in it is contained.
func (h *Host) notice(n Notice) {
	if h.cfg.OnNotice == nil {
		return
	}
	if n.ID == "" {
		n.ID = "nt_" + newRequestID()
	}
	if n.Created.IsZero() {
		n.Created = h.now()
	}
	n.Detail = h.scrub.String(n.Detail)
	if n.Arguments != nil {
		n.Arguments = h.scrubJSON(n.Arguments)
	}
	defer func() {
		if r := recover(); r != nil {
			h.logger.Error("Config.OnNotice panicked; the call goes on", "event", n.Event, "panic", fmt.Sprint(r))
		}
	}()
	h.cfg.OnNotice(n)
}

// scrubJSON returns data with every known secret replaced; still JSON (a redaction that broke
// it comes back as a JSON string).
func (h *Host) scrubJSON(data []byte) json.RawMessage {
	out := h.scrub.Bytes(data)
	if json.Valid(out) {
		return json.RawMessage(out)
	}
	s, _ := json.Marshal(string(out))
	return s
}
