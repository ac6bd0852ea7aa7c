package admin

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
)

// The admin API's JSON shapes, one type per shape, used by the HTTP handlers and by the CLI
// (its --json output and its --server client) alike. The convention (README.md, "Admin API"):
// every field name is snake_case; manifests, grants and tool arguments are JSON objects, never
// base64; a date that is not set is left out, never "0001-01-01T00:00:00Z"; errors are
// {"error": "…"}. The state store's records (host/store) carry no JSON tags: they are storage,
// and these views are what the API promises.

// ConnectorView is an installed connector version as GET /admin/v1/connectors lists it.
type ConnectorView struct {
	Name         string    `json:"name"`
	Version      string    `json:"version"`
	Publisher    string    `json:"publisher"`
	ModuleSHA256 string    `json:"module_sha256"`
	Status       string    `json:"status"` // active, pending (an upgrade waiting for approval), retired
	Unsigned     bool      `json:"unsigned,omitempty"`
	InstalledAt  time.Time `json:"installed_at,omitzero"`
	// Manifest is the manifest as installed, as a JSON object; absent when it no longer parses
	// (ManifestError says why).
	Manifest      *manifest.Manifest `json:"manifest,omitempty"`
	ManifestError string             `json:"manifest_error,omitempty"`
}

// ConnectorViews converts installed connector records for display.
func ConnectorViews(list []store.Installed) []ConnectorView {
	out := make([]ConnectorView, 0, len(list))
	for _, in := range list {
		v := ConnectorView{Name: in.Name, Version: in.Version, Publisher: in.Publisher, ModuleSHA256: in.Digest,
			Status: in.Status, Unsigned: in.Unsigned, InstalledAt: in.InstalledAt}
		if len(in.Manifest) > 0 {
			m, err := manifest.Parse(in.Name+".yaml", in.Manifest)
			if err != nil {
				v.ManifestError = fmt.Sprintf("the stored manifest no longer parses: %v", err)
			} else {
				v.Manifest = m
			}
		}
		out = append(out, v)
	}
	return out
}

// GrantView is a grant record as the API and CLI show it.
type GrantView struct {
	Connector string          `json:"connector"`
	Version   int             `json:"version"`
	Grant     json.RawMessage `json:"grant,omitempty"` // the grant as a JSON object; absent once revoked
	Admin     string          `json:"admin"`
	Note      string          `json:"note,omitempty"`
	Created   time.Time       `json:"created,omitzero"`
	Revoked   bool            `json:"revoked,omitempty"`
}

func grantView(r store.GrantRecord) GrantView {
	return GrantView{Connector: r.Connector, Version: r.Version, Grant: jsonObject(r.Grant), Admin: r.Admin, Note: r.Note, Created: r.Created, Revoked: r.Revoked}
}

// GrantViews converts grant records for display.
func GrantViews(rs []store.GrantRecord) []GrantView {
	out := make([]GrantView, 0, len(rs))
	for _, r := range rs {
		out = append(out, grantView(r))
	}
	return out
}

// ApprovalView is a request for a human's approval as the API and CLI show it.
type ApprovalView struct {
	ID         string `json:"id"`
	Connector  string `json:"connector"`
	Tool       string `json:"tool"` // ends in #result for a screened result held for review
	Agent      string `json:"agent,omitempty"`
	Subject    string `json:"subject,omitempty"`
	ArgsSHA256 string `json:"args_sha256"`
	// Arguments are the exact arguments of the call, as a JSON object (for a held result: the
	// screening, the arguments and the result).
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Status    string          `json:"status"` // pending, approved, denied, used, expired
	Reason    string          `json:"reason,omitempty"`
	DecidedBy string          `json:"decided_by,omitempty"`
	Created   time.Time       `json:"created,omitzero"`
	Expires   time.Time       `json:"expires,omitzero"`
	Decided   time.Time       `json:"decided,omitzero"` // absent until decided
}

// NewApprovalView converts an approval record for display.
func NewApprovalView(a store.Approval) ApprovalView {
	return ApprovalView{ID: a.ID, Connector: a.Connector, Tool: a.Tool, Agent: a.Agent, Subject: a.Subject, ArgsSHA256: a.ArgsSHA256,
		Arguments: jsonObject(a.Args), Status: a.Status, Reason: a.Reason, DecidedBy: a.DecidedBy,
		Created: a.Created, Expires: a.Expires, Decided: a.Decided}
}

// ApprovalViews converts approval records for display.
func ApprovalViews(list []store.Approval) []ApprovalView {
	out := make([]ApprovalView, 0, len(list))
	for _, a := range list {
		out = append(out, NewApprovalView(a))
	}
	return out
}

// jsonObject returns data as JSON to embed in a view: as it is when it is valid JSON, as a
// JSON string when it is not (so a damaged record still shows), nothing when empty.
func jsonObject(data []byte) json.RawMessage {
	switch {
	case len(data) == 0:
		return nil
	case json.Valid(data):
		return json.RawMessage(data)
	}
	s, _ := json.Marshal(string(data))
	return s
}

// AuditPage is a page of GET /admin/v1/audit: records newest first, and the cursor of the
// next (older) page, absent on the last one.
type AuditPage struct {
	Records    []AuditEntry `json:"records"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// AuditEntry is one audit record: its place in the chain and the event as recorded (the same
// JSON value as the bytes the chain's hash covers; its spacing may differ: `airlock audit
// export` gives the exact bytes, to verify offline).
type AuditEntry struct {
	Seq   int64           `json:"seq"`
	Event json.RawMessage `json:"event"`
}

// Audit paging: a page holds DefaultAuditPage records unless ?limit= says otherwise, at most
// MaxAuditPage.
const (
	DefaultAuditPage = 100
	MaxAuditPage     = 1000
)

// auditCursor is the prefix of the audit API's cursors: the version of their format. What
// follows is for the server to read, not for clients (they pass next_cursor back as it is).
const auditCursor = "c1."

// AuditCursor is the opaque cursor of the page that follows a page ending at record seq.
func AuditCursor(seq int64) string {
	return auditCursor + base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(seq, 10)))
}

// parseAuditCursor returns the sequence number the next page starts below.
func parseAuditCursor(c string) (int64, error) {
	bad := fmt.Errorf("cursor %q is not one this server gave: pass next_cursor from the previous page as it is, or leave cursor out for the newest records", c)
	rest, ok := strings.CutPrefix(c, auditCursor)
	if !ok {
		return 0, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return 0, bad
	}
	seq, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || seq < 1 {
		return 0, bad
	}
	return seq, nil
}

// NewAuditPage makes a page of at most limit records from recs (newest first, as QueryAudit
// returns them with NewestFirst, queried with one record more than limit): when recs holds
// more, the page carries the cursor of the next one.
func NewAuditPage(recs []store.AuditRecord, limit int) AuditPage {
	more := len(recs) > limit
	if more {
		recs = recs[:limit]
	}
	p := AuditPage{Records: make([]AuditEntry, 0, len(recs))}
	for _, r := range recs {
		p.Records = append(p.Records, AuditEntry{Seq: r.Seq, Event: jsonObject(r.Data)})
	}
	if more && len(recs) > 0 {
		p.NextCursor = AuditCursor(recs[len(recs)-1].Seq)
	}
	return p
}
