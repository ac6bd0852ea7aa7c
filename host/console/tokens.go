package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
)

// The admin API routes the token page stands for.
const (
	routeAgents      = "GET /admin/v1/agents"
	routeAdmins      = "GET /admin/v1/admins"
	routeIssueAgent  = "POST /admin/v1/agents"
	routeRevokeAgent = "DELETE /admin/v1/agents/{name}"
	routeIssueAdmin  = "POST /admin/v1/admins"
	routeRevokeAdmin = "DELETE /admin/v1/admins/{name}"
)

func (c *Console) tokenRoutes() {
	c.mux.HandleFunc("GET /console/tokens", c.page(func(w http.ResponseWriter, r *http.Request, s *signedIn) {
		c.tokensPage(w, r, s, http.StatusOK, map[string]any{"Message": r.URL.Query().Get("done")})
	}))
	c.mux.HandleFunc("POST /console/tokens/{kind}", c.page(c.tokenIssue))
	c.mux.HandleFunc("POST /console/tokens/{kind}/{name}/revoke", c.page(c.tokenRevoke))
}

func (c *Console) tokensPage(w http.ResponseWriter, r *http.Request, s *signedIn, status int, data map[string]any) {
	if !c.allow(w, r, s, routeAgents) {
		return
	}
	data["Title"], data["Admin"], data["Nav"] = "Agents and admins", s, "tokens"
	data["Roles"], data["IsOwner"] = admin.Roles, s.Role.Allows(roleOf(routeIssueAgent))
	agents, err := c.a.Tokens(r.Context(), store.TokenAgent)
	if err != nil {
		data["Error"] = err.Error()
	}
	data["Agents"] = agents
	if s.Role.Allows(roleOf(routeAdmins)) {
		admins, err := c.a.Tokens(r.Context(), store.TokenAdmin)
		if err != nil {
			data["Error"] = err.Error()
		}
		data["Admins"] = admins
	}
	c.render(w, status, "tokens.html", data)
}

// tokenKind maps the page's path segment to the token kind and the API routes it stands for.
func tokenKind(kind string) (k, issue, revoke string, ok bool) {
	switch kind {
	case "agents":
		return store.TokenAgent, routeIssueAgent, routeRevokeAgent, true
	case "admins":
		return store.TokenAdmin, routeIssueAdmin, routeRevokeAdmin, true
	}
	return "", "", "", false
}

// tokenIssue issues a token and shows it on this response only: it is never in a URL, a
// redirect or any later page.
func (c *Console) tokenIssue(w http.ResponseWriter, r *http.Request, s *signedIn) {
	kind, route, _, ok := tokenKind(r.PathValue("kind"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	if !c.allow(w, r, s, route) {
		return
	}
	nt := mcp.NewToken{Name: strings.TrimSpace(r.PostFormValue("name")), Subject: strings.TrimSpace(r.PostFormValue("subject")),
		Role: r.PostFormValue("role")}
	if ttl := strings.TrimSpace(r.PostFormValue("ttl")); ttl != "" {
		d, err := time.ParseDuration(ttl)
		if err != nil || d <= 0 {
			c.tokensPage(w, r, s, http.StatusBadRequest, map[string]any{"Error": "expires after " + ttl + ": give a duration such as 720h, or leave it empty for never"})
			return
		}
		nt.Expires = c.now().Add(d)
	}
	token, err := c.a.IssueToken(r.Context(), kind, nt, s.Name)
	if err != nil {
		c.tokensPage(w, r, s, http.StatusBadRequest, map[string]any{"Error": err.Error()})
		return
	}
	c.tokensPage(w, r, s, http.StatusOK, map[string]any{"Issued": map[string]string{"Kind": kind, "Name": nt.Name, "Token": token}})
}

func (c *Console) tokenRevoke(w http.ResponseWriter, r *http.Request, s *signedIn) {
	kind, _, route, ok := tokenKind(r.PathValue("kind"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	if !c.allow(w, r, s, route) {
		return
	}
	name := r.PathValue("name")
	if err := c.a.RevokeToken(r.Context(), kind, name, s.Name); err != nil {
		c.tokensPage(w, r, s, http.StatusBadRequest, map[string]any{"Error": err.Error()})
		return
	}
	http.Redirect(w, r, "/console/tokens?done="+url.QueryEscape("Revoked the "+kind+" token "+name+": it is refused from its next request on."), http.StatusSeeOther)
}
