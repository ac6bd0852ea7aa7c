package console

import (
	"net/http"
	"net/url"
	"strings"
)

// The admin API routes the accounts page stands for.
const (
	routeAccounts   = "GET /admin/v1/connections"
	routeConnect    = "POST /admin/v1/connections/{connector}/connect"
	routeDisconnect = "DELETE /admin/v1/connections/{connector}/{slot}/{subject}"
)

func (c *Console) accountRoutes() {
	c.mux.HandleFunc("GET /console/accounts", c.page(func(w http.ResponseWriter, r *http.Request, s *signedIn) {
		c.accountsPage(w, r, s, http.StatusOK, map[string]any{"Message": r.URL.Query().Get("done")})
	}))
	c.mux.HandleFunc("POST /console/accounts/connect", c.page(c.accountConnect))
	c.mux.HandleFunc("POST /console/accounts/disconnect", c.page(c.accountDisconnect))
}

func (c *Console) accountsPage(w http.ResponseWriter, r *http.Request, s *signedIn, status int, data map[string]any) {
	if !c.allow(w, r, s, routeAccounts) {
		return
	}
	data["Title"], data["Admin"], data["Nav"] = "Accounts", s, "accounts"
	data["CanConnect"] = s.Role.Allows(roleOf(routeConnect))
	list, err := c.a.Accounts(r.Context())
	if err != nil && data["Error"] == nil {
		data["Error"] = err.Error()
	}
	data["Accounts"] = list
	c.render(w, status, "accounts.html", data)
}

// accountConnect starts the OAuth authorization-code flow (PKCE) as `airlock connect` does and
// shows the provider's sign-in link: a link, because the console's CSP (form-action 'self')
// does not let a form's answer redirect to another origin.
func (c *Console) accountConnect(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeConnect) {
		return
	}
	connector, subject := strings.TrimSpace(r.PostFormValue("connector")), strings.TrimSpace(r.PostFormValue("subject"))
	u, _, err := c.a.Connect(r.Context(), connector, strings.TrimSpace(r.PostFormValue("slot")), subject, s.Name)
	if err != nil {
		c.accountsPage(w, r, s, http.StatusBadRequest, map[string]any{"Error": err.Error()})
		return
	}
	if p, perr := url.Parse(u); perr != nil || (p.Scheme != "https" && p.Scheme != "http") {
		c.accountsPage(w, r, s, http.StatusBadGateway, map[string]any{"Error": "the connector's authorization URL is not an http(s) URL"})
		return
	}
	c.accountsPage(w, r, s, http.StatusOK, map[string]any{"SignIn": map[string]string{"URL": u, "Connector": connector, "Subject": subject}})
}

func (c *Console) accountDisconnect(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeDisconnect) {
		return
	}
	connector, slot, subject := r.PostFormValue("connector"), r.PostFormValue("slot"), r.PostFormValue("subject")
	revoked, why, err := c.a.Disconnect(r.Context(), connector, slot, subject, s.Name)
	if err != nil {
		c.accountsPage(w, r, s, http.StatusBadRequest, map[string]any{"Error": err.Error()})
		return
	}
	msg := "Disconnected " + connector + "/" + slot + " for " + subject + ": the provider revoked its tokens, and they are deleted here; its calls fail until it is connected again."
	if !revoked {
		msg = "Disconnected " + connector + "/" + slot + " for " + subject + ": its tokens are deleted here, but not revoked at the provider (" + why + "); its calls fail until it is connected again."
	}
	http.Redirect(w, r, "/console/accounts?done="+url.QueryEscape(msg), http.StatusSeeOther)
}
