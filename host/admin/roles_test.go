package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
)

// roleRequests is one concrete request per admin API route and the least role it needs, as the
// README's roles table promises (written here independently of the code's table).
var roleRequests = []struct {
	pattern      string
	method, path string
	body         string
	least        admin.Role
}{
	{"GET /admin/v1/connectors", "GET", "/admin/v1/connectors", "", admin.Viewer},
	{"GET /admin/v1/connectors/{name}/review", "GET", "/admin/v1/connectors/slack/review", "", admin.Viewer},
	{"GET /admin/v1/grants", "GET", "/admin/v1/grants", "", admin.Viewer},
	{"GET /admin/v1/grants/{connector}/history", "GET", "/admin/v1/grants/slack/history", "", admin.Viewer},
	{"GET /admin/v1/profiles", "GET", "/admin/v1/profiles", "", admin.Viewer},
	{"GET /admin/v1/profiles/{name}", "GET", "/admin/v1/profiles/support", "", admin.Viewer},
	{"PUT /admin/v1/profiles/{name}", "PUT", "/admin/v1/profiles/support", `{"members":["support-bot"],"tools":["slack.list_*"]}`, admin.Granter},
	{"DELETE /admin/v1/profiles/{name}", "DELETE", "/admin/v1/profiles/support", "", admin.Granter},
	{"GET /admin/v1/approvals", "GET", "/admin/v1/approvals?status=pending", "", admin.Viewer},
	{"GET /admin/v1/audit", "GET", "/admin/v1/audit?limit=1", "", admin.Viewer},
	{"GET /admin/v1/audit/verify", "GET", "/admin/v1/audit/verify", "", admin.Viewer},
	{"GET /admin/v1/metrics", "GET", "/admin/v1/metrics", "", admin.Viewer},
	{"POST /admin/v1/approvals/{id}/approve", "POST", "/admin/v1/approvals/ap_none/approve", "", admin.Approver},
	{"POST /admin/v1/approvals/{id}/deny", "POST", "/admin/v1/approvals/ap_none/deny", `{"reason":"no"}`, admin.Approver},
	{"PUT /admin/v1/grants/{connector}", "PUT", "/admin/v1/grants/slack", "GRANT", admin.Granter},
	{"POST /admin/v1/connectors/{name}/versions/{version}/reject", "POST", "/admin/v1/connectors/slack/versions/9.9.9/reject", "", admin.Granter},
	{"DELETE /admin/v1/grants/{connector}", "DELETE", "/admin/v1/grants/slack?tools=post_message", "", admin.Granter},
	{"GET /admin/v1/admins", "GET", "/admin/v1/admins", "", admin.Owner},
	{"PUT /admin/v1/admins/{name}/role", "PUT", "/admin/v1/admins/nobody/role", `{"role":"viewer"}`, admin.Owner},
	{"POST /admin/v1/admins", "POST", "/admin/v1/admins", `{"name":"newcomer","role":"viewer"}`, admin.Owner},
	{"DELETE /admin/v1/admins/{name}", "DELETE", "/admin/v1/admins/nobody", "", admin.Owner},
	{"GET /admin/v1/agents", "GET", "/admin/v1/agents", "", admin.Viewer},
	{"POST /admin/v1/agents", "POST", "/admin/v1/agents", `{"name":"newbot","subject":"acme"}`, admin.Owner},
	{"DELETE /admin/v1/agents/{name}", "DELETE", "/admin/v1/agents/nobody", "", admin.Owner},
	{"GET /admin/v1/secrets", "GET", "/admin/v1/secrets", "", admin.Granter},
	{"GET /admin/v1/connections", "GET", "/admin/v1/connections", "", admin.Viewer},
	{"POST /admin/v1/connections/{connector}/connect", "POST", "/admin/v1/connections/nothing/connect", `{"subject":"alice"}`, admin.Granter},
	{"DELETE /admin/v1/connections/{connector}/{slot}/{subject}", "DELETE", "/admin/v1/connections/slack/bot_token/alice", "", admin.Granter},
	{"PUT /admin/v1/secrets/{name}", "PUT", "/admin/v1/secrets/probe", `{"value":"x"}`, admin.Owner},
}

// roleAdmins issues one admin token per role in the state store and serves the admin API.
func roleAdmins(t *testing.T, e *env) (apiClient, map[admin.Role]string, *mcp.Agents) {
	t.Helper()
	admins := mcp.StoreAdmins(e.st)
	tokens := map[admin.Role]string{}
	for _, r := range admin.Roles {
		tok, err := admins.Issue(mcp.NewToken{Name: string(r) + "-admin", Role: string(r)})
		if err != nil {
			t.Fatal(err)
		}
		tokens[r] = tok
	}
	srv := httptest.NewServer(e.a.Handler(adminTokens{admins}))
	t.Cleanup(srv.Close)
	return apiClient{t, srv.URL}, tokens, admins
}

// Each role against every admin API route: allowed (whatever the route then answers) or 403
// with a message naming the role needed, and every 403 is in the audit trail with the admin,
// the route and the role it needed.
func TestRolesEveryRoute(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, envOptions{dsn: b.dsn(t)})
			e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
			c, tokens, _ := roleAdmins(t, e)
			grantBody, _ := json.Marshal(e.slackGrant())

			covered := map[string]bool{}
			for _, rq := range roleRequests {
				covered[rq.pattern] = true
				if got, ok := admin.RouteRole(rq.pattern); !ok || got != rq.least {
					t.Errorf("the route table says %s needs %q (%v); the roles table says %s", rq.pattern, got, ok, rq.least)
				}
			}
			for _, p := range admin.Routes() {
				if !covered[p] {
					t.Errorf("route %s is not exercised by this test: add it to roleRequests", p)
				}
			}

			type refusal struct{ actor, target, required string }
			var want []refusal
			for _, role := range admin.Roles {
				for _, rq := range roleRequests {
					body := strings.ReplaceAll(rq.body, "GRANT", string(grantBody))
					status, resp := c.do(tokens[role], rq.method, rq.path, body)
					allowed := slices.Index(admin.Roles, role) >= slices.Index(admin.Roles, rq.least)
					switch {
					case allowed && (status == http.StatusForbidden || status == http.StatusUnauthorized):
						t.Errorf("%s: %s %s = %d %s; want allowed", role, rq.method, rq.path, status, resp)
					case !allowed && status != http.StatusForbidden:
						t.Errorf("%s: %s %s = %d %s; want 403", role, rq.method, rq.path, status, resp)
					case !allowed:
						var msg struct{ Error string }
						json.Unmarshal(resp, &msg)
						if !strings.Contains(msg.Error, "your admin token has role "+string(role)) || !strings.Contains(msg.Error, "needs "+string(rq.least)) ||
							!strings.Contains(msg.Error, "ask an owner") {
							t.Errorf("%s: %s %s refused with %q; want it to name the role held, the role needed and whom to ask", role, rq.method, rq.path, msg.Error)
						}
						want = append(want, refusal{string(role) + "-admin", rq.pattern, string(rq.least)})
					}
				}
			}
			if len(want) != 17+15+7 { // viewer: 2 decide + 6 granter (reject upgrade, secret names, connect, disconnect) + 2 profile + 7 owner routes; approver: 15; granter: 7
				t.Errorf("%d refusals, want 39", len(want))
			}

			recs, err := e.st.QueryAudit(ctx, store.AuditFilter{Kind: audit.KindAdmin, Decision: "denied"})
			if err != nil {
				t.Fatal(err)
			}
			var got []refusal
			for _, r := range recs {
				var ev audit.Event
				if err := json.Unmarshal(r.Data, &ev); err != nil {
					t.Fatal(err)
				}
				var d struct{ Required, Role, Path string }
				json.Unmarshal(ev.Detail, &d)
				if d.Path == "" || d.Role == "" || ev.Message == "" {
					t.Errorf("refusal record %s lacks the path, the role held or the message", r.Data)
				}
				got = append(got, refusal{ev.Actor, ev.Target, d.Required})
			}
			if !slices.Equal(got, want) {
				t.Errorf("audited refusals:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// A viewer cannot decide a call waiting for approval, nor grant: the approval stays pending and
// the grant unchanged. An owner raising the viewer to approver lets the next request through.
func TestRoleRefusalChangesNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	g := e.slackGrant()
	g.Confirm = []string{"post_message"}
	e.grant(t, "", g)
	c, tokens, _ := roleAdmins(t, e)

	id := pendingID(t, e.call("slack.post_message", argsA))
	status, body := c.do(tokens[admin.Viewer], "POST", "/admin/v1/approvals/"+id+"/approve", "")
	if status != http.StatusForbidden || !strings.Contains(string(body), "your admin token has role viewer; deciding approvals needs approver: ask an owner") {
		t.Fatalf("a viewer approving = %d %s; want 403 saying approver is needed", status, body)
	}
	if ap, _ := e.st.GetApproval(ctx, id); ap.Status != store.ApprovalPending {
		t.Fatalf("after the viewer's refused approval the request is %s, want pending", ap.Status)
	}
	before, _ := e.st.CurrentGrant(ctx, "slack")
	if status, _ := c.do(tokens[admin.Approver], "DELETE", "/admin/v1/grants/slack", ""); status != http.StatusForbidden {
		t.Errorf("an approver revoking = %d, want 403", status)
	}
	if after, _ := e.st.CurrentGrant(ctx, "slack"); after.Version != before.Version || after.Revoked {
		t.Errorf("the grant changed after a refused revoke: %+v → %+v", before, after)
	}
	// Nor through a path the mux would clean or redirect: nothing reaches the handler.
	for _, path := range []string{"/admin/v1//grants/slack", "/admin/v1/x/../grants/slack", "/admin/v1/./grants/slack",
		"/admin/v1/grants/slack/", "/admin/v1/grants/%73lack", "/admin/v1/grants/slack%2F..%2Fslack"} {
		req, _ := http.NewRequest("DELETE", c.url, nil)
		req.URL.Opaque = path // sent as it is, not cleaned by the client
		req.Header.Set("Authorization", "Bearer "+tokens[admin.Viewer])
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("a viewer's DELETE %s = 200", path)
		}
	}
	if after, _ := e.st.CurrentGrant(ctx, "slack"); after.Version != before.Version || after.Revoked {
		t.Errorf("the grant changed after a viewer's DELETE through an odd path: %+v → %+v", before, after)
	}
	// A granter cannot make itself owner.
	if status, _ := c.do(tokens[admin.Granter], "PUT", "/admin/v1/admins/granter-admin/role", `{"role":"owner"}`); status != http.StatusForbidden {
		t.Errorf("a granter promoting itself = %d, want 403", status)
	}

	if status, body := c.do(tokens[admin.Owner], "PUT", "/admin/v1/admins/viewer-admin/role", `{"role":"approver"}`); status != http.StatusOK {
		t.Fatalf("the owner changing the viewer's role = %d %s", status, body)
	}
	if status, body := c.do(tokens[admin.Viewer], "POST", "/admin/v1/approvals/"+id+"/approve", ""); status != http.StatusOK {
		t.Fatalf("the former viewer approving after the role change = %d %s; want 200", status, body)
	}
	if status, body := c.do(tokens[admin.Owner], "PUT", "/admin/v1/admins/viewer-admin/role", `{"role":"root"}`); status != http.StatusBadRequest ||
		!strings.Contains(string(body), "viewer, approver, granter or owner") {
		t.Errorf("an unknown role = %d %s; want 400 listing the roles", status, body)
	}
	// The list shows roles and last use, never a token or its hash.
	status, body = c.do(tokens[admin.Owner], "GET", "/admin/v1/admins", "")
	var list []admin.AdminView
	if status != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list) != 4 {
		t.Fatalf("GET admins = %d %s", status, body)
	}
	for _, v := range list {
		if v.Name == "viewer-admin" && (v.Role != "approver" || v.LastUsed == nil) {
			t.Errorf("viewer-admin listed as %+v; want role approver and a last use", v)
		}
	}
	for _, tok := range tokens {
		if strings.Contains(string(body), tok) || strings.Contains(string(body), "sha256") {
			t.Error("GET admins shows a token or its hash")
		}
	}
	// The change is in the audit trail with who made it.
	recs, _ := e.st.QueryAudit(ctx, store.AuditFilter{Kind: audit.KindAdmin, Decision: "ok"})
	found := false
	for _, r := range recs {
		var ev audit.Event
		json.Unmarshal(r.Data, &ev)
		found = found || ev.Action == "admin role" && ev.Actor == "owner-admin" && ev.Target == "viewer-admin"
	}
	if !found {
		t.Error("the role change is not in the audit trail")
	}
}

// An expired admin token is refused with 401 saying it expired and how to get a new one; a
// role the binary does not know (written by a newer airlock) allows nothing.
func TestAdminTokenExpiredOrUnknownRole(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, envOptions{dsn: b.dsn(t)})
			c, _, admins := roleAdmins(t, e)
			old, err := admins.Issue(mcp.NewToken{Name: "temp", Role: "owner", Expires: time.Now().Add(-time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			status, body := c.do(old, "GET", "/admin/v1/grants", "")
			if status != http.StatusUnauthorized || !strings.Contains(string(body), "expired") || !strings.Contains(string(body), "airlock admin add") {
				t.Errorf("an expired owner token = %d %s; want 401 saying it expired and how to get a new one", status, body)
			}
			odd, err := admins.Issue(mcp.NewToken{Name: "future", Role: "auditor"})
			if err != nil {
				t.Fatal(err)
			}
			if status, body := c.do(odd, "GET", "/admin/v1/grants", ""); status != http.StatusForbidden || !strings.Contains(string(body), "airlock admin role future") {
				t.Errorf("an unknown role = %d %s; want 403 saying how to set one", status, body)
			}
		})
	}
}
