package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
)

// The admin API routes the grant pages stand for.
const (
	routeGrants = "GET /admin/v1/grants"
	routeGrant  = "PUT /admin/v1/grants/{connector}"
	routeRevoke = "DELETE /admin/v1/grants/{connector}"
)

func (c *Console) grantRoutes() {
	c.mux.HandleFunc("GET /console/grants", c.page(c.grantsPage))
	c.mux.HandleFunc("GET /console/grants/{connector}", c.page(c.grantPage))
	c.mux.HandleFunc("POST /console/grants/{connector}/preview", c.page(c.grantPreview))
	c.mux.HandleFunc("POST /console/grants/{connector}", c.page(c.grantSave))
	c.mux.HandleFunc("POST /console/grants/{connector}/revoke", c.page(c.grantRevoke))
}

// connectorRow is an installed connector with its current grant, for the list.
type connectorRow struct {
	Name, Version, Status, Publisher string
	Grant                            *admin.GrantView
}

func (c *Console) grantsPage(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeGrants) {
		return
	}
	data := map[string]any{"Title": "Grants", "Admin": s, "Nav": "grants", "Message": r.URL.Query().Get("done")}
	installed, err := c.a.Store().ListInstalled(r.Context())
	grants, gerr := c.a.Store().ListGrants(r.Context())
	if err = errors.Join(err, gerr); err != nil {
		data["Error"] = err.Error()
	}
	byName := map[string]admin.GrantView{}
	for _, g := range admin.GrantViews(grants) {
		byName[g.Connector] = g
	}
	var rows []connectorRow
	for _, in := range installed {
		if in.Status != store.InstalledActive && in.Status != "pending" {
			continue
		}
		row := connectorRow{Name: in.Name, Version: in.Version, Status: in.Status, Publisher: in.Publisher}
		if g, ok := byName[in.Name]; ok {
			row.Grant = &g
		}
		rows = append(rows, row)
	}
	data["Rows"] = rows
	c.render(w, http.StatusOK, "grants.html", data)
}

// current returns the connector's current grant (nil: none, or revoked).
func (c *Console) current(r *http.Request, connector string) (*manifest.Grant, error) {
	rec, err := c.a.Store().CurrentGrant(r.Context(), connector)
	if errors.Is(err, store.ErrNotFound) || err == nil && rec.Revoked {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return manifest.ParseGrant("grant.json", rec.Grant)
}

// grantForm is what the grant page shows: what the manifest asks, and the grant's choices.
type grantForm struct {
	Asks    *admin.Asks
	Tools   []choice
	Scopes  []choice
	Hosts   []choice
	Slots   []slot
	Limits  []limitField
	Granted bool
}

type choice struct {
	Name, Detail     string
	Checked, Confirm bool
}

type slot struct{ Name, Kind, Ref string }

type limitField struct {
	Name, Label string
	Asked       int
	Value       string
}

func (c *Console) grantPage(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeGrants) {
		return
	}
	name := r.PathValue("connector")
	data := map[string]any{"Title": "Grant " + name, "Admin": s, "Nav": "grants", "Connector": name,
		"CanGrant": s.Role.Allows(roleOf(routeGrant)), "Message": r.URL.Query().Get("done")}
	asks, m, err := c.review(r, name)
	if err != nil {
		data["Error"] = err.Error()
		c.render(w, http.StatusNotFound, "error.html", data)
		return
	}
	g, err := c.current(r, name)
	if err != nil {
		data["Error"] = err.Error()
	}
	data["Form"] = buildForm(asks, m, g)
	c.render(w, http.StatusOK, "grant.html", data)
}

// review returns what the connector asks for and its manifest.
func (c *Console) review(r *http.Request, name string) (*admin.Asks, *manifest.Manifest, error) {
	m, err := c.a.GrantTarget(r.Context(), name)
	if err != nil {
		return nil, nil, err
	}
	asks, _, err := c.a.Review(r.Context(), name, m.Version)
	return asks, m, err
}

func has(list []string, v string) bool {
	return slices.Contains(list, manifest.All) || slices.Contains(list, v)
}

func buildForm(asks *admin.Asks, m *manifest.Manifest, g *manifest.Grant) grantForm {
	f := grantForm{Asks: asks, Granted: g != nil}
	if g == nil {
		g = &manifest.Grant{}
	}
	for _, t := range asks.Tools {
		f.Tools = append(f.Tools, choice{Name: t.Name, Detail: t.Description, Checked: has(g.Tools, t.Name), Confirm: slices.Contains(g.Confirm, t.Name)})
	}
	for _, sc := range asks.Scopes {
		f.Scopes = append(f.Scopes, choice{Name: sc, Checked: has(g.Scopes, sc)})
	}
	for i, rule := range m.Network {
		if !slices.ContainsFunc(f.Hosts, func(c choice) bool { return c.Name == rule.Host }) {
			f.Hosts = append(f.Hosts, choice{Name: rule.Host, Detail: asks.Hosts[i], Checked: has(g.Hosts, rule.Host)})
		}
	}
	for _, cr := range m.Credentials {
		f.Slots = append(f.Slots, slot{Name: cr.Name, Kind: string(cr.Kind), Ref: g.Credentials[cr.Name].Secret})
	}
	lim := func(name, label string, asked, granted int) {
		v := ""
		if granted != 0 {
			v = strconv.Itoa(granted)
		}
		f.Limits = append(f.Limits, limitField{Name: name, Label: label, Asked: asked, Value: v})
	}
	lim("timeout_ms", "Timeout per call (ms)", asks.Limits.TimeoutMS, g.Limits.TimeoutMS)
	lim("memory_mb", "Memory (MiB)", asks.Limits.MemoryMB, g.Limits.MemoryMB)
	lim("max_requests", "Outbound requests per call", asks.Limits.MaxRequests, g.Limits.MaxRequests)
	return f
}

// formGrant builds the grant the form describes on top of the current one: what the form does
// not show (config, upstreams, quotas, …) is kept as it is.
func formGrant(r *http.Request, name string, cur *manifest.Grant, m *manifest.Manifest) (*manifest.Grant, error) {
	g := &manifest.Grant{Connector: name}
	if cur != nil {
		b, _ := json.Marshal(cur)
		json.Unmarshal(b, g)
	}
	r.ParseForm()
	g.Tools, g.Scopes, g.Hosts, g.Confirm = r.PostForm["tool"], r.PostForm["scope"], r.PostForm["host"], r.PostForm["confirm"]
	g.Credentials = map[string]manifest.CredentialGrant{}
	for _, cr := range m.Credentials {
		old := manifest.CredentialGrant{}
		if cur != nil {
			old = cur.Credentials[cr.Name]
		}
		old.Secret = strings.TrimSpace(r.PostFormValue("cred." + cr.Name))
		if old.Secret != "" || old.ClientID != "" {
			g.Credentials[cr.Name] = old
		}
	}
	for _, l := range []struct {
		field string
		dst   *int
	}{{"timeout_ms", &g.Limits.TimeoutMS}, {"memory_mb", &g.Limits.MemoryMB}, {"max_requests", &g.Limits.MaxRequests}} {
		*l.dst = 0
		if v := strings.TrimSpace(r.PostFormValue(l.field)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("limit %s %q: give a positive whole number, or leave it empty for the manifest's", l.field, v)
			}
			*l.dst = n
		}
	}
	b, err := json.Marshal(g)
	if err != nil {
		return nil, err
	}
	return manifest.ParseGrant("grant.json", b)
}

// change is one line of a grant's diff.
type change struct{ What, From, To string }

func grantDiff(cur, next *manifest.Grant) []change {
	if cur == nil {
		cur = &manifest.Grant{}
	}
	var out []change
	list := func(what string, a, b []string) {
		as, bs := strings.Join(a, ", "), strings.Join(b, ", ")
		if as != bs {
			out = append(out, change{what, cmpOr(as, "none"), cmpOr(bs, "none")})
		}
	}
	list("Tools", cur.Tools, next.Tools)
	list("Scopes", cur.Scopes, next.Scopes)
	list("Hosts", cur.Hosts, next.Hosts)
	list("Needs confirmation", cur.Confirm, next.Confirm)
	for _, k := range sortedKeys(cur.Credentials, next.Credentials) {
		if a, b := cur.Credentials[k].Secret, next.Credentials[k].Secret; a != b {
			out = append(out, change{"Credential " + k, cmpOr(a, "none"), cmpOr(b, "none")})
		}
	}
	lim := func(what string, a, b int) {
		if a != b {
			out = append(out, change{what, limitText(a), limitText(b)})
		}
	}
	lim("Timeout (ms)", cur.Limits.TimeoutMS, next.Limits.TimeoutMS)
	lim("Memory (MiB)", cur.Limits.MemoryMB, next.Limits.MemoryMB)
	lim("Outbound requests per call", cur.Limits.MaxRequests, next.Limits.MaxRequests)
	return out
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func limitText(n int) string {
	if n == 0 {
		return "the manifest's"
	}
	return strconv.Itoa(n)
}

func sortedKeys(ms ...map[string]manifest.CredentialGrant) []string {
	var keys []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// grantPreview shows the diff of the grant the form describes; nothing is saved yet.
func (c *Console) grantPreview(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeGrant) {
		return
	}
	name := r.PathValue("connector")
	data := map[string]any{"Title": "Review the grant of " + name, "Admin": s, "Nav": "grants", "Connector": name}
	_, m, err := c.review(r, name)
	var cur, next *manifest.Grant
	if err == nil {
		cur, err = c.current(r, name)
	}
	if err == nil {
		next, err = formGrant(r, name, cur, m)
	}
	if err == nil {
		err = c.a.CheckGrant(r.Context(), name, next)
	}
	if err != nil {
		data["Error"] = err.Error()
		c.render(w, http.StatusBadRequest, "error.html", data)
		return
	}
	b, _ := json.Marshal(next)
	data["Changes"], data["Grant"] = grantDiff(cur, next), string(b)
	c.render(w, http.StatusOK, "grantdiff.html", data)
}

// grantSave records the grant reviewed on the preview page.
func (c *Console) grantSave(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeGrant) {
		return
	}
	name := r.PathValue("connector")
	g, err := manifest.ParseGrant("grant.json", []byte(r.PostFormValue("grant")))
	if err == nil && g.Connector != name {
		err = fmt.Errorf("the grant is for %s, not %s", g.Connector, name)
	}
	if err == nil {
		_, err = c.a.Grant(r.Context(), admin.GrantRequest{Connector: name, Grant: g, Admin: s.Name, Note: "web console"})
	}
	if err != nil {
		c.render(w, http.StatusBadRequest, "error.html", map[string]any{"Title": "Grant " + name, "Admin": s, "Nav": "grants", "Error": err.Error()})
		return
	}
	http.Redirect(w, r, "/console/grants/"+url.PathEscape(name)+"?done="+url.QueryEscape("Saved the grant of "+name+": it applies to every new call."), http.StatusSeeOther)
}

// grantRevoke withdraws one tool (form field tool) or the whole connector.
func (c *Console) grantRevoke(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeRevoke) {
		return
	}
	name := r.PathValue("connector")
	var tools []string
	done := "Revoked " + name + ": no agent can call any of its tools from now on; calls already running finish."
	if t := r.PostFormValue("tool"); t != "" {
		tools = []string{t}
		done = "Revoked " + name + "." + t + ": no agent can call it from now on; the connector's other tools stay."
	}
	if err := c.a.Revoke(r.Context(), name, tools, s.Name, "web console"); err != nil {
		c.render(w, http.StatusBadRequest, "error.html", map[string]any{"Title": "Revoke " + name, "Admin": s, "Nav": "grants", "Error": err.Error()})
		return
	}
	http.Redirect(w, r, "/console/grants/"+url.PathEscape(name)+"?done="+url.QueryEscape(done), http.StatusSeeOther)
}
