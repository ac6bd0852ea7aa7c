package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
)

// adminTokens adapts the admin token file to admin.TokenVerifier, as cmd/airlock does.
type adminTokens struct{ *mcp.Agents }

func (a adminTokens) Verify(token string) (admin.Caller, bool, error) {
	id, ok, err := a.Agents.Verify(token)
	return admin.Caller{Name: id.Name, Role: admin.Role(id.Role)}, ok, err
}

type apiClient struct {
	t   *testing.T
	url string
}

func (c apiClient) do(token, method, path string, body string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// A client-supplied identity must not matter.
	req.Header.Set("X-Admin", "mallory")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// auditPage decodes a page of GET /admin/v1/audit.
func auditPage(t *testing.T, body []byte) admin.AuditPage {
	t.Helper()
	var p admin.AuditPage
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("GET audit: %v in %s", err, body)
	}
	return p
}

func TestAdminHTTPAPI(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)

	dir := t.TempDir()
	admins := mcp.OpenAdmins(filepath.Join(dir, "admins.json"))
	adminTok, err := admins.Add("alice", "")
	if err != nil {
		t.Fatal(err)
	}
	agents := mcp.OpenAgents(filepath.Join(dir, "agents.json"))
	agentTok, err := agents.Add("alice", "") // same name as the admin: still not an admin
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.a.Handler(adminTokens{admins}))
	t.Cleanup(srv.Close)
	c := apiClient{t, srv.URL}

	grantBody, _ := json.Marshal(e.slackGrant())
	routes := [][2]string{
		{"GET", "/admin/v1/connectors"}, {"GET", "/admin/v1/grants"}, {"PUT", "/admin/v1/grants/slack"},
		{"DELETE", "/admin/v1/grants/slack"}, {"GET", "/admin/v1/approvals"}, {"POST", "/admin/v1/approvals/ap_x/approve"},
		{"POST", "/admin/v1/approvals/ap_x/deny"}, {"GET", "/admin/v1/audit"}, {"GET", "/admin/v1/audit/verify"},
		{"GET", "/admin/v1/nope"},
	}
	for _, tok := range []string{"", "wrong", agentTok, strings.Replace(agentTok, mcp.TokenPrefix, mcp.AdminTokenPrefix, 1),
		adminTok + "x", strings.ToUpper(adminTok), " " + adminTok[:len(adminTok)-1]} {
		for _, r := range routes {
			status, body := c.do(tok, r[0], r[1], string(grantBody))
			if status != http.StatusUnauthorized {
				t.Errorf("%s %s with token %.20q… = %d %s, want 401", r[0], r[1], tok, status, body)
			}
			if bytes.Contains(body, []byte("slack")) && r[1] != "/admin/v1/grants/slack" {
				t.Errorf("a 401 leaked data: %s", body)
			}
		}
	}
	if _, err := e.st.CurrentGrant(ctx, "slack"); err == nil {
		t.Fatal("unauthenticated requests changed the grant")
	}
	// Basic auth with the token as password is not a bearer token.
	req, _ := http.NewRequest("GET", srv.URL+"/admin/v1/grants", nil)
	req.SetBasicAuth("alice", adminTok)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("basic auth = %v %v, want 401", resp.StatusCode, err)
	}

	// With the admin token: grant.
	if status, body := c.do(adminTok, "PUT", "/admin/v1/grants/slack", string(grantBody)); status != http.StatusOK {
		t.Fatalf("PUT grant = %d %s", status, body)
	}
	cur, err := e.st.CurrentGrant(ctx, "slack")
	if err != nil || cur.Admin != "alice" {
		t.Fatalf("current grant = %+v (%v), want it recorded by alice (the token's admin)", cur, err)
	}
	if !slices.Contains(e.toolNames(), "slack.post_message") {
		t.Fatalf("after PUT grant the host serves %v", e.toolNames())
	}
	// A grant naming what the manifest does not declare is a 400 and changes nothing.
	if status, _ := c.do(adminTok, "PUT", "/admin/v1/grants/slack", `{"tools":["drop_tables"]}`); status != http.StatusBadRequest {
		t.Errorf("PUT an invalid grant = %d, want 400", status)
	}
	if status, _ := c.do(adminTok, "PUT", "/admin/v1/grants/slack", `not json`); status != http.StatusBadRequest {
		t.Errorf("PUT a malformed grant = %d, want 400", status)
	}

	// Revoke one tool.
	if status, body := c.do(adminTok, "DELETE", "/admin/v1/grants/slack?tools=post_message", ""); status != http.StatusOK {
		t.Fatalf("DELETE ?tools=post_message = %d %s", status, body)
	}
	if slices.Contains(e.toolNames(), "slack.post_message") {
		t.Errorf("post_message still served after the API revoked it")
	}
	if cur, _ := e.st.CurrentGrant(ctx, "slack"); cur.Admin != "alice" {
		t.Errorf("revoke recorded by %q, want alice", cur.Admin)
	}

	// Approvals: re-grant with confirmation, make two calls wait, approve one and deny the other.
	g := e.slackGrant()
	g.Confirm = []string{"post_message"}
	gb, _ := json.Marshal(g)
	if status, body := c.do(adminTok, "PUT", "/admin/v1/grants/slack", string(gb)); status != http.StatusOK {
		t.Fatalf("PUT grant = %d %s", status, body)
	}
	idA := pendingID(t, e.call("slack.post_message", argsA))
	idB := pendingID(t, e.call("slack.post_message", argsB))
	status, body := c.do(adminTok, "GET", "/admin/v1/approvals?status=pending", "")
	var pending []store.Approval
	if status != http.StatusOK || json.Unmarshal(body, &pending) != nil || len(pending) != 2 {
		t.Fatalf("GET approvals = %d %s, want the two pending requests", status, body)
	}
	if status, body := c.do(adminTok, "POST", "/admin/v1/approvals/"+idA+"/approve", ""); status != http.StatusOK {
		t.Fatalf("approve = %d %s", status, body)
	}
	if status, body := c.do(adminTok, "POST", "/admin/v1/approvals/"+idB+"/deny", `{"reason":"wrong version"}`); status != http.StatusOK {
		t.Fatalf("deny = %d %s", status, body)
	}
	if status, _ := c.do(adminTok, "POST", "/admin/v1/approvals/"+idA+"/approve", ""); status != http.StatusConflict {
		t.Errorf("approving twice = %d, want 409", status)
	}
	if status, _ := c.do(adminTok, "POST", "/admin/v1/approvals/ap_0000/approve", ""); status != http.StatusNotFound {
		t.Errorf("approving an unknown request = %d, want 404", status)
	}
	for id, want := range map[string]string{idA: store.ApprovalApproved, idB: store.ApprovalDenied} {
		ap, err := e.st.GetApproval(ctx, id)
		if err != nil || ap.Status != want || ap.DecidedBy != "alice" {
			t.Errorf("approval %s = %+v (%v), want %s by alice", id, ap, err, want)
		}
	}
	if res := e.call("slack.post_message", argsA); !res.OK {
		t.Errorf("the call approved through the API: %+v", res.Error)
	}
	if res := e.call("slack.post_message", argsB); res.OK || !strings.Contains(res.Error.Message, "wrong version") {
		t.Errorf("the call denied through the API = %+v, want refused with the reason", res.Error)
	}

	// Audit export and verification.
	if err := e.sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	status, body = c.do(adminTok, "GET", "/admin/v1/audit?kind=call", "")
	if status != http.StatusOK {
		t.Fatalf("GET audit = %d %s", status, body)
	}
	if page := auditPage(t, body); len(page.Records) != 4 || page.NextCursor != "" {
		t.Errorf("audit export has %d call records (next cursor %q), want 4 on one page", len(page.Records), page.NextCursor)
	}
	if containsCanary(body) {
		t.Error("the audit export holds the secret")
	}
	status, body = c.do(adminTok, "GET", "/admin/v1/audit/verify", "")
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"ok": true`)) {
		t.Errorf("verify = %d %s, want ok", status, body)
	}
	db := rawDB(t, e.dsn)
	var callSeq int64 // the first call record (admin actions come before it)
	if err := db.QueryRow(`SELECT MIN(seq) FROM audit WHERE agent = 'test-agent'`).Scan(&callSeq); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit SET data = replace(data, 'test-agent', 'other-agent') WHERE seq = ` + fmt.Sprint(callSeq)); err != nil {
		t.Fatal(err)
	}
	status, body = c.do(adminTok, "GET", "/admin/v1/audit/verify", "")
	if status != http.StatusConflict || !bytes.Contains(body, fmt.Appendf(nil, `"first_bad_seq": %d`, callSeq)) {
		t.Errorf("verify after tampering = %d %s, want 409 naming record %d", status, body, callSeq)
	}

	// Full revoke.
	if status, body := c.do(adminTok, "DELETE", "/admin/v1/grants/slack", ""); status != http.StatusOK {
		t.Fatalf("DELETE = %d %s", status, body)
	}
	if got := e.toolNames(); len(got) != 0 {
		t.Errorf("after DELETE the host serves %v", got)
	}
	hist, _ := e.st.GrantHistory(ctx, "slack")
	for _, h := range hist {
		if h.Admin != "alice" {
			t.Errorf("grant version %d recorded by %q, want alice", h.Version, h.Admin)
		}
	}
	// An admin token revoked in the file stops working on the next request.
	if err := admins.Revoke("alice"); err != nil {
		t.Fatal(err)
	}
	if status, _ := c.do(adminTok, "GET", "/admin/v1/grants", ""); status != http.StatusUnauthorized {
		t.Errorf("a revoked admin token = %d, want 401", status)
	}
}
