package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/airlock-dev/airlock/host/secret"
)

// The admin API routes the secrets page stands for.
const (
	routeSecrets   = "GET /admin/v1/secrets"
	routeSetSecret = "PUT /admin/v1/secrets/{name}"
)

func (c *Console) secretRoutes() {
	c.mux.HandleFunc("GET /console/secrets", c.page(c.secretsPage))
	c.mux.HandleFunc("POST /console/secrets", c.page(c.secretSet))
}

func (c *Console) secretsPage(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeSecrets) {
		return
	}
	c.renderSecrets(w, r, s, http.StatusOK, map[string]any{"Message": r.URL.Query().Get("done")})
}

func (c *Console) renderSecrets(w http.ResponseWriter, r *http.Request, s *signedIn, status int, data map[string]any) {
	data["Title"], data["Admin"], data["Nav"] = "Secrets", s, "secrets"
	data["CanSet"] = s.Role.Allows(roleOf(routeSetSecret))
	list, err := c.a.SecretNames(r.Context())
	if err != nil && data["Error"] == nil {
		data["Error"] = err.Error()
	}
	data["Names"] = list
	c.render(w, status, "secrets.html", data)
}

// secretSet stores the posted value. The value is never rendered back, not even after an
// error: the field is write-only.
func (c *Console) secretSet(w http.ResponseWriter, r *http.Request, s *signedIn) {
	if !c.allow(w, r, s, routeSetSecret) {
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	v := secret.New(r.PostFormValue("value"))
	if err := c.a.SetSecret(r.Context(), name, v, s.Name); err != nil {
		msg := err.Error()
		if !v.IsZero() {
			msg = strings.ReplaceAll(msg, v.Expose(), "[the value]") // belt and braces: Set names no value
		}
		c.renderSecrets(w, r, s, http.StatusBadRequest, map[string]any{"Error": msg})
		return
	}
	http.Redirect(w, r, "/console/secrets?done="+url.QueryEscape("Set "+name+": grants reference it as store:"+name+"."), http.StatusSeeOther)
}
