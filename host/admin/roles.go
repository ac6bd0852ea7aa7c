package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
)

// Role is what an admin token may do through the admin API. Roles are cumulative, each one
// allowing all that the ones before it allow:
//
//	viewer    read connectors and their review, grants and their history, approvals, the audit trail, metrics
//	approver  + approve or deny the calls that wait for a human
//	granter   + grant and revoke connectors (and approve an upgrade, which is a grant), profiles, connections
//	owner     + everything else: admin tokens and their roles, and what only the CLI does (trust, secrets, the master key)
//
// The zero value allows nothing. Commands that work on the state store directly (the CLI
// without --server) are the owner's: whoever holds the store holds everything in it.
type Role string

// The roles, least first.
const (
	Viewer   Role = "viewer"
	Approver Role = "approver"
	Granter  Role = "granter"
	Owner    Role = "owner"
)

// Roles lists the roles, least first.
var Roles = []Role{Viewer, Approver, Granter, Owner}

// ParseRole returns the role named s, or an error listing the roles.
func ParseRole(s string) (Role, error) {
	if r := Role(s); slices.Contains(Roles, r) {
		return r, nil
	}
	return "", fmt.Errorf("role %q: use viewer, approver, granter or owner", s)
}

// Allows reports whether r includes need. An unknown role (written by a newer airlock, say)
// allows nothing.
func (r Role) Allows(need Role) bool {
	have, want := slices.Index(Roles, r), slices.Index(Roles, need)
	return have >= 0 && want >= 0 && have >= want
}

// access is who may use a route of the admin API, and what the route does in words (for refusals).
type access struct {
	role Role
	what string
}

// routeRoles is the least role each admin API route needs: one line per route of
// [Admin.Handler]. A route missing here is refused to everyone (and a test fails), so no route
// can be added without deciding who may use it.
var routeRoles = map[string]access{
	"GET /admin/v1/connectors":                                   {Viewer, "reading connectors"},
	"GET /admin/v1/connectors/{name}/review":                     {Viewer, "reviewing a connector"},
	"POST /admin/v1/connectors/{name}/versions/{version}/reject": {Granter, "rejecting upgrades"},
	"GET /admin/v1/grants":                                       {Viewer, "reading grants"},
	"GET /admin/v1/grants/{connector}/history":                   {Viewer, "reading grants"},
	"PUT /admin/v1/grants/{connector}":                           {Granter, "granting connectors (and approving upgrades)"},
	"DELETE /admin/v1/grants/{connector}":                        {Granter, "revoking grants"},
	"GET /admin/v1/profiles":                                     {Viewer, "reading agent profiles"},
	"GET /admin/v1/profiles/{name}":                              {Viewer, "reading agent profiles"},
	"PUT /admin/v1/profiles/{name}":                              {Granter, "managing agent profiles"},
	"DELETE /admin/v1/profiles/{name}":                           {Granter, "managing agent profiles"},
	"GET /admin/v1/approvals":                                    {Viewer, "reading approvals"},
	"POST /admin/v1/approvals/{id}/approve":                      {Approver, "deciding approvals"},
	"POST /admin/v1/approvals/{id}/deny":                         {Approver, "deciding approvals"},
	"GET /admin/v1/audit":                                        {Viewer, "reading the audit trail"},
	"GET /admin/v1/audit/verify":                                 {Viewer, "verifying the audit trail"},
	"GET /admin/v1/metrics":                                      {Viewer, "reading metrics"},
	"GET /admin/v1/admins":                                       {Owner, "listing admin tokens"},
	"PUT /admin/v1/admins/{name}/role":                           {Owner, "changing admin roles"},
	"POST /admin/v1/admins":                                      {Owner, "issuing admin tokens"},
	"DELETE /admin/v1/admins/{name}":                             {Owner, "revoking admin tokens"},
	"GET /admin/v1/agents":                                       {Viewer, "listing agent tokens"},
	"POST /admin/v1/agents":                                      {Owner, "issuing agent tokens"},
	"DELETE /admin/v1/agents/{name}":                             {Owner, "revoking agent tokens"},
	"GET /admin/v1/secrets":                                      {Granter, "listing secret names"},
	"PUT /admin/v1/secrets/{name}":                               {Owner, "setting secrets"},
	"GET /admin/v1/connections":                                  {Viewer, "reading connected accounts"},
	"POST /admin/v1/connections/{connector}/connect":             {Granter, "connecting accounts"},
	"DELETE /admin/v1/connections/{connector}/{slot}/{subject}":  {Granter, "disconnecting accounts"},
}

// RouteRole returns the least role the admin API route pattern (as [Admin.Handler] registers
// it, "METHOD /path") needs; ok is false for a pattern not in the table.
func RouteRole(pattern string) (role Role, ok bool) {
	r, ok := routeRoles[pattern]
	return r.role, ok
}

// Routes returns the admin API's route patterns, sorted.
func Routes() []string {
	out := make([]string, 0, len(routeRoles))
	for p := range routeRoles {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// authorize answers 403 and records the refusal when the admin's role does not include what
// pattern needs, and reports whether the request may go on.
func (a *Admin) authorize(w http.ResponseWriter, r *http.Request, c Caller, pattern string) bool {
	if err := a.Authorize(r.Context(), c, pattern, r.Method, r.URL.Path); err != nil {
		writeErr(w, http.StatusForbidden, err.Error())
		return false
	}
	return true
}

// Authorize returns nil when the role of c includes what the admin API route pattern needs
// (routeRoles), else an error saying what to ask for, after recording the refusal in the audit
// trail. Other front ends of the same actions (the web console) call it with the pattern of the
// API route they stand for, so one table decides for all of them.
func (a *Admin) Authorize(ctx context.Context, c Caller, pattern, method, path string) error {
	route, ok := routeRoles[pattern]
	need := route.role
	if ok && c.Role.Allows(need) {
		return nil
	}
	var msg string
	switch {
	case !ok:
		msg = fmt.Sprintf("%s has no role set in the admin API's route table, so it is refused to everyone; this is a bug in airlock", pattern)
	case !slices.Contains(Roles, c.Role):
		msg = fmt.Sprintf("your admin token has role %q, which this airlock does not know; ask an owner to set one: airlock admin role %s viewer|approver|granter|owner", c.Role, c.Name)
	default:
		msg = RoleRefusal(c.Role, need, route.what)
	}
	detail := map[string]string{"method": method, "path": path, "role": string(c.Role), "required": string(need)}
	// The refusal stands whether or not it could be recorded; a failure to record is logged.
	if err := audit.ActionRefused(context.WithoutCancel(ctx), a.st, c.Name, "admin api", pattern, msg, detail); err != nil {
		a.logger.Error("recording a refused admin request", "admin", c.Name, "route", pattern, "err", err)
	}
	return errors.New(msg)
}

// RoleRefusal is the message for an admin with role have refused something that needs need:
// what was refused, and whom to ask. The CLI prints the server's text as it is.
func RoleRefusal(have, need Role, what string) string {
	return fmt.Sprintf("your admin token has role %s; %s needs %s: ask an owner (airlock admin role NAME %s)", have, what, need, need)
}

// AdminView is an admin token as the API and the CLI list it: never the token nor its hash.
type AdminView struct {
	Name     string     `json:"name"`
	Role     string     `json:"role"`
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used,omitempty"` // to the minute; absent: never used
	Expires  *time.Time `json:"expires,omitempty"`   // absent: never
}

// Admins lists the admin tokens kept in the state store, sorted by name.
func (a *Admin) Admins(ctx context.Context) ([]AdminView, error) {
	list, err := a.st.ListTokens(ctx, store.TokenAdmin)
	out := make([]AdminView, 0, len(list))
	for _, t := range list {
		v := AdminView{Name: t.Name, Role: t.Role, Created: t.Created}
		if !t.LastUsed.IsZero() {
			v.LastUsed = &t.LastUsed
		}
		if !t.Expires.IsZero() {
			v.Expires = &t.Expires
		}
		out = append(out, v)
	}
	return out, err
}

// SetRole gives the admin name the role, from its next request on (on every replica), and
// records the change with who made it.
func (a *Admin) SetRole(ctx context.Context, name string, role Role, by string) error {
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	if err := a.st.SetTokenRole(ctx, store.TokenAdmin, name, string(role)); err != nil {
		return err
	}
	return audit.Action(ctx, a.st, by, "admin role", name, map[string]string{"role": string(role)})
}

func (a *Admin) apiAdmins(w http.ResponseWriter, r *http.Request) {
	list, err := a.Admins(r.Context())
	reply(w, list, err)
}

func (a *Admin) apiSetRole(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Role Role `json:"role"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErr(w, http.StatusBadRequest, `the body must be JSON such as {"role": "approver"}`)
		return
	}
	name := r.PathValue("name")
	err := a.SetRole(r.Context(), name, body.Role, adminFrom(r.Context()))
	reply(w, map[string]any{"admin": name, "role": body.Role}, err)
}
