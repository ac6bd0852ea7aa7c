package console

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
)

// The admin API routes the connector pages stand for.
const (
	routeConnectors = "GET /admin/v1/connectors"
	routeReview     = "GET /admin/v1/connectors/{name}/review"
	routeReject     = "POST /admin/v1/connectors/{name}/versions/{version}/reject"
)

func (c *Console) connectorRoutes() {
	c.mux.HandleFunc("GET /console/connectors", c.page(c.connectorsPage))
	c.mux.HandleFunc("GET /console/connectors/{name}", c.page(c.connectorPage))
	c.mux.HandleFunc("POST /console/connectors/{name}/versions/{version}/approve", c.page(c.upgradeApprove))
	c.mux.HandleFunc("POST /console/connectors/{name}/versions/{version}/reject", c.page(c.upgradeReject))
}

// connectorVersions is a connector with its installed versions, newest install last.
type connectorVersions struct {
	Name     string
	Versions []store.Installed
	Pending  bool
}

func (c *Console) connectorsPage(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeConnectors) {
		return
	}
	data := map[string]any{"Title": "Connectors", "Admin": s, "Nav": "connectors", "Message": r.URL.Query().Get("done")}
	list, err := c.a.Store().ListInstalled(r.Context())
	if err != nil {
		data["Error"] = err.Error()
	}
	var rows []connectorVersions
	for _, in := range list {
		i := slices.IndexFunc(rows, func(cv connectorVersions) bool { return cv.Name == in.Name })
		if i < 0 {
			rows = append(rows, connectorVersions{Name: in.Name})
			i = len(rows) - 1
		}
		rows[i].Versions = append(rows[i].Versions, in)
		rows[i].Pending = rows[i].Pending || in.Status == store.InstalledPending
	}
	data["Rows"] = rows
	c.render(w, http.StatusOK, "connectors.html", data)
}

// connectorPage shows what the connector asks for, as `airlock review` prints it: for a pending
// upgrade, what it asks beyond the active version, with approve and reject.
func (c *Console) connectorPage(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeReview) {
		return
	}
	name := r.PathValue("name")
	data := map[string]any{"Title": "Connector " + name, "Admin": s, "Nav": "connectors", "Connector": name,
		"CanGrant": s.Role.Allows(roleOf(routeGrant)), "Message": r.URL.Query().Get("done")}
	asks, diff, err := c.a.Review(r.Context(), name, r.URL.Query().Get("version"))
	if err != nil {
		data["Error"] = err.Error()
		c.render(w, http.StatusNotFound, "error.html", data)
		return
	}
	in, err := c.a.Store().GetInstalled(r.Context(), name, asks.Version)
	data["Asks"], data["Changes"] = asks, diff
	data["Pending"] = err == nil && in.Status == store.InstalledPending
	c.render(w, http.StatusOK, "connector.html", data)
}

// upgradeApprove grants the pending version what the current grant grants, which activates
// it: as `airlock grant NAME --version V` does.
func (c *Console) upgradeApprove(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeGrant) {
		return
	}
	name, version := r.PathValue("name"), r.PathValue("version")
	g, err := c.current(r, name)
	if err == nil && g == nil {
		g = &manifest.Grant{Connector: name} // nothing granted before: the upgrade is approved, nothing granted
	}
	if err == nil {
		_, err = c.a.Grant(r.Context(), admin.GrantRequest{Connector: name, Version: version, Grant: g, Admin: s.Name, Note: "upgrade approved in the web console"})
	}
	if err != nil {
		c.render(w, http.StatusBadRequest, "error.html", map[string]any{"Title": "Connector " + name, "Admin": s, "Nav": "connectors", "Error": err.Error()})
		return
	}
	http.Redirect(w, r, "/console/connectors?done="+url.QueryEscape("Approved "+name+" "+version+": it serves every new call, under the current grant."), http.StatusSeeOther)
}

func (c *Console) upgradeReject(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeReject) {
		return
	}
	name, version := r.PathValue("name"), r.PathValue("version")
	if err := c.a.RejectUpgrade(r.Context(), name, version, s.Name); err != nil {
		c.render(w, http.StatusBadRequest, "error.html", map[string]any{"Title": "Connector " + name, "Admin": s, "Nav": "connectors", "Error": err.Error()})
		return
	}
	http.Redirect(w, r, "/console/connectors?done="+url.QueryEscape("Rejected "+name+" "+version+": it is removed; the active version keeps serving."), http.StatusSeeOther)
}
