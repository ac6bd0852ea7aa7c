package console

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
)

// The admin API routes the audit pages stand for.
const (
	routeAudit  = "GET /admin/v1/audit"
	routeVerify = "GET /admin/v1/audit/verify"
)

// auditShow is how many records the audit page shows, newest first.
const auditShow = 100

// auditWindow is how many sequence numbers one backward step reads; auditMaxWindows bounds
// the steps (then the page asks for a narrower filter).
const (
	auditWindow     = 1000
	auditMaxWindows = 100
)

func (c *Console) auditRoutes() {
	c.mux.HandleFunc("GET /console/audit", c.page(c.auditPage))
	c.mux.HandleFunc("GET /console/audit/export", c.page(c.auditExport))
}

// auditRow is one record as the page lists it.
type auditRow struct {
	Seq                                                        int64
	Time                                                       time.Time
	Kind, Who, What, Outcome, Connector, Tool, Subject, Detail string
}

// auditFilterFields are the CLI's filters (`airlock audit`), in the form's order.
var auditFilterFields = []string{"connector", "tool", "agent", "subject", "decision", "kind", "session", "conversation", "user", "since", "until"}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeAudit) {
		return
	}
	q := r.URL.Query()
	values, export := map[string]string{}, url.Values{}
	for _, k := range auditFilterFields {
		values[k] = q.Get(k)
		if v := q.Get(k); v != "" {
			export.Set(k, v)
		}
	}
	data := map[string]any{"Title": "Audit trail", "Admin": s, "Nav": "audit", "Filter": values, "Fields": auditFilterFields,
		// Encoded here from the filters alone: only URL-safe characters after a fixed path.
		"Export": template.URL("/console/audit/export?" + export.Encode()), "CanVerify": s.Role.Allows(roleOf(routeVerify))}
	f, err := admin.ParseAuditFilter(q.Get, c.now)
	if err != nil {
		data["Error"] = err.Error()
		c.render(w, http.StatusBadRequest, "audit.html", data)
		return
	}
	recs, more, err := newest(r.Context(), c.a.Store(), f, auditShow)
	if err != nil {
		data["Error"] = err.Error()
	}
	rows := make([]auditRow, 0, len(recs))
	for _, rec := range recs {
		var ev struct {
			Kind, Agent, Actor, Action, Target, Outcome, Connector, Tool, Subject string
		}
		json.Unmarshal(rec.Data, &ev)
		row := auditRow{Seq: rec.Seq, Time: rec.Time, Kind: ev.Kind, Who: cmpOr(ev.Actor, ev.Agent), Outcome: ev.Outcome,
			Connector: ev.Connector, Tool: ev.Tool, Subject: ev.Subject, Detail: prettyJSON(rec.Data)}
		row.What = ev.Tool
		if ev.Action != "" {
			row.What = ev.Action + " " + ev.Target
		}
		rows = append(rows, row)
	}
	data["Rows"], data["More"] = rows, more
	if s.Role.Allows(roleOf(routeVerify)) {
		n, verr := audit.VerifyStore(r.Context(), c.a.Store())
		var br *store.AuditBreak
		switch {
		case errors.As(verr, &br):
			data["Verify"] = map[string]any{"OK": false, "Checked": n, "Seq": br.Seq, "Reason": br.Reason}
		case verr != nil:
			data["Verify"] = map[string]any{"OK": false, "Checked": n, "Reason": verr.Error()}
		default:
			data["Verify"] = map[string]any{"OK": true, "Checked": n}
		}
		if cps, err := c.a.Store().AuditCheckpoints(r.Context()); err == nil && len(cps) > 0 {
			data["Checkpoint"] = cps[len(cps)-1]
		}
	}
	c.render(w, http.StatusOK, "audit.html", data)
}

// newest returns up to n records matching f, newest first, reading the log backwards in
// windows of sequence numbers; more is true when older matching records may exist.
func newest(ctx context.Context, st *store.Store, f store.AuditFilter, n int) (out []store.AuditRecord, more bool, err error) {
	if f.Limit > 0 && f.Limit < n {
		n = f.Limit
	}
	head, _, err := st.AuditHead(ctx)
	if err != nil {
		return nil, false, err
	}
	floor := f.AfterSeq
	end := head
	for range auditMaxWindows {
		if end <= floor || len(out) >= n {
			break
		}
		start := max(end-auditWindow, floor)
		w := f
		w.AfterSeq, w.Limit = start, auditWindow
		recs, err := st.QueryAudit(ctx, w)
		if err != nil {
			return nil, false, err
		}
		recs = slices.DeleteFunc(recs, func(r store.AuditRecord) bool { return r.Seq > end })
		slices.Reverse(recs)
		out = append(out, recs...)
		end = start
	}
	if len(out) > n {
		out, more = out[:n], true
	}
	return out, more || end > floor, nil
}

// auditExport sends the records the filters match as JSON lines, oldest first, byte for byte
// as recorded: what GET /admin/v1/audit sends.
func (c *Console) auditExport(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeAudit) {
		return
	}
	f, err := admin.ParseAuditFilter(r.URL.Query().Get, c.now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	recs, err := c.a.Store().QueryAudit(r.Context(), f)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	c.audit(r.Context(), s.Name, "audit export", map[string]string{"query": r.URL.RawQuery, "records": itoa(len(recs))})
	w.Header().Set("Content-Type", "application/jsonl")
	w.Header().Set("Content-Disposition", `attachment; filename="airlock-audit.jsonl"`)
	for _, rec := range recs {
		w.Write(rec.Data)
		w.Write([]byte("\n"))
	}
}
