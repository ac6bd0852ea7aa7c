package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/store"
)

// The admin API routes the approval pages stand for: the role table decides for both.
const (
	routeApprovals = "GET /admin/v1/approvals"
	routeApprove   = "POST /admin/v1/approvals/{id}/approve"
	routeDeny      = "POST /admin/v1/approvals/{id}/deny"
)

func (c *Console) approvalRoutes() {
	c.mux.HandleFunc("GET /console/approvals", c.page(c.approvalsPage))
	c.mux.HandleFunc("GET /console/approvals/queue", c.page(c.approvalsQueue))
	c.mux.HandleFunc("POST /console/approvals/{id}/approve", c.page(c.decide))
	c.mux.HandleFunc("POST /console/approvals/{id}/deny", c.page(c.decide))
}

// approvalRow is a pending call as the queue shows it.
type approvalRow struct {
	store.Approval
	Hints []string // the tool's annotations (read-only, destructive, …) from its manifest
}

func (c *Console) pending(r *http.Request) ([]approvalRow, error) {
	list, err := c.a.Approvals(r.Context(), store.ApprovalPending)
	if err != nil {
		return nil, err
	}
	hints := map[string][]string{} // connector.tool → hints, each connector reviewed once
	reviewed := map[string]bool{}
	rows := make([]approvalRow, 0, len(list))
	for _, ap := range list {
		if !reviewed[ap.Connector] {
			reviewed[ap.Connector] = true
			if asks, _, err := c.a.Review(r.Context(), ap.Connector, ""); err == nil {
				for _, t := range asks.Tools {
					hints[ap.Connector+"."+t.Name] = t.Hints
				}
			}
		}
		rows = append(rows, approvalRow{Approval: ap, Hints: hints[ap.Connector+"."+ap.Tool]})
	}
	return rows, nil
}

func (c *Console) approvalsPage(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeApprovals) {
		return
	}
	rows, err := c.pending(r)
	data := map[string]any{"Title": "Approvals", "Admin": s, "Rows": rows, "Nav": "approvals",
		"CanDecide": s.Role.Allows(roleOf(routeApprove))}
	if err != nil {
		data["Error"] = err.Error()
	}
	if msg := r.URL.Query().Get("done"); msg != "" {
		data["Message"] = msg
	}
	c.render(w, http.StatusOK, "approvals.html", data)
}

// approvalsQueue is the queue alone, which console.js fetches every few seconds to keep the
// page live.
func (c *Console) approvalsQueue(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeApprovals) {
		return
	}
	rows, err := c.pending(r)
	data := map[string]any{"Admin": s, "Rows": rows, "CanDecide": s.Role.Allows(roleOf(routeApprove))}
	if err != nil {
		data["Error"] = err.Error()
	}
	c.render(w, http.StatusOK, "queue", data)
}

func (c *Console) decide(w http.ResponseWriter, r *http.Request, s *signedIn) {
	id := r.PathValue("id")
	approve := strings.HasSuffix(r.URL.Path, "/approve")
	route := routeDeny
	if approve {
		route = routeApprove
	}
	if !c.allow(w, r, s, route) {
		return
	}
	var err error
	var done string
	if approve {
		_, err = c.a.Approve(r.Context(), id, s.Name)
		done = "Approved " + id + ": the agent's next identical call runs once."
	} else {
		_, err = c.a.Deny(r.Context(), id, s.Name, strings.TrimSpace(r.PostFormValue("reason")))
		done = "Denied " + id + ": the agent is told so on its next call."
	}
	if err != nil {
		c.render(w, http.StatusConflict, "error.html", map[string]any{"Title": "Approvals", "Admin": s, "Nav": "approvals", "Error": err.Error()})
		return
	}
	http.Redirect(w, r, "/console/approvals?done="+url.QueryEscape(done), http.StatusSeeOther)
}

// prettyJSON indents JSON for display, every invisible or bidi character as a \u escape
// (admin.VisibleJSON); anything else is shown as it is, escaped the same way.
func prettyJSON(b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return admin.VisibleJSON(b)
	}
	return admin.VisibleJSON(out.Bytes()) // no bidi override or invisible character reaches the page as itself
}

// roleOf is the least role an admin API route needs (nobody's, for a route not in the table).
func roleOf(pattern string) admin.Role {
	r, _ := admin.RouteRole(pattern)
	return r
}
