package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Every route the admin API serves has its line in the role table, and the table names no route
// that is not served: a new route cannot slip through without a decision on who may use it.
func TestEveryRouteHasARole(t *testing.T) {
	a := New(nil, nil, nil)
	served := a.routes()
	for pattern := range served {
		if _, ok := routeRoles[pattern]; !ok {
			t.Errorf("route %q has no entry in routeRoles: add one line saying which role it needs", pattern)
		}
	}
	for pattern := range routeRoles {
		if _, ok := served[pattern]; !ok {
			t.Errorf("routeRoles names %q, which the admin API does not serve", pattern)
		}
	}
	// The mux built from them routes each pattern to itself (no pattern shadows another's role).
	mux := http.NewServeMux()
	for p, h := range served {
		mux.HandleFunc(p, h)
	}
	for pattern := range served {
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.NewReplacer("{name}", "x", "{connector}", "x", "{id}", "x").Replace(path)
		if _, got := mux.Handler(httptest.NewRequest(method, path, nil)); got != pattern {
			t.Errorf("%s %s is routed to %q, want %q", method, path, got, pattern)
		}
	}
}

// A route the mux serves but the table forgot is refused to everyone, owners included.
func TestRouteWithoutRoleRefused(t *testing.T) {
	for _, r := range Roles {
		if got := Role(r).Allows(routeRoles["GET /admin/v1/nonexistent"].role); got {
			t.Errorf("%s.Allows(no role) = true; want a route without a role refused", r)
		}
	}
	if Role("superuser").Allows(Viewer) || Role("").Allows(Viewer) {
		t.Error("an unknown or empty role is allowed something")
	}
}
