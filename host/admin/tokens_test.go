package admin_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
)

// An owner issues agent and admin tokens through the API (each shown once, working at once,
// listed without token or hash) and revokes them (refused from then on).
func TestTokensAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	c, tokens, admins := roleAdmins(t, e)
	owner := tokens[admin.Owner]

	status, body := c.do(owner, "POST", "/admin/v1/agents", `{"name":"support-bot","subject":"acme","ttl":"24h"}`)
	var issued struct{ Name, Token string }
	json.Unmarshal(body, &issued)
	if status != http.StatusOK || !strings.HasPrefix(issued.Token, mcp.TokenPrefix) {
		t.Fatalf("issuing an agent token: %d %s", status, body)
	}
	if id, ok, err := mcp.StoreAgents(e.st).Verify(issued.Token); !ok || err != nil || id.Subject != "acme" {
		t.Fatalf("the issued agent token: %+v %v %v", id, ok, err)
	}
	status, list := c.do(tokens[admin.Viewer], "GET", "/admin/v1/agents", "")
	if status != http.StatusOK || !strings.Contains(string(list), `"support-bot"`) || strings.Contains(string(list), issued.Token) ||
		strings.Contains(string(list), "sha256") || !strings.Contains(string(list), `"expires"`) {
		t.Errorf("agents list: %d %s", status, list)
	}
	if status, body := c.do(owner, "POST", "/admin/v1/agents", `{"name":"support-bot"}`); status != http.StatusConflict {
		t.Errorf("issuing a second support-bot: %d %s, want 409", status, body)
	}
	if status, body := c.do(owner, "POST", "/admin/v1/admins", `{"name":"bob","role":"root"}`); status != http.StatusBadRequest || !strings.Contains(string(body), "viewer, approver, granter or owner") {
		t.Errorf("issuing an admin token with an unknown role: %d %s", status, body)
	}
	status, body = c.do(owner, "POST", "/admin/v1/admins", `{"name":"bob","role":"approver"}`)
	json.Unmarshal(body, &issued)
	if status != http.StatusOK {
		t.Fatalf("issuing an admin token: %d %s", status, body)
	}
	if caller, ok, _ := admins.Verify(issued.Token); !ok || caller.Role != "approver" {
		t.Fatalf("the issued admin token: %+v %v", caller, ok)
	}
	for _, p := range []string{"/admin/v1/admins/bob", "/admin/v1/agents/support-bot"} {
		if status, body := c.do(owner, "DELETE", p, ""); status != http.StatusOK {
			t.Fatalf("DELETE %s: %d %s", p, status, body)
		}
		if status, _ := c.do(owner, "DELETE", p, ""); status != http.StatusNotFound {
			t.Errorf("DELETE %s again: %d, want 404", p, status)
		}
	}
	if _, ok, _ := admins.Verify(issued.Token); ok {
		t.Error("the revoked admin token still verifies")
	}
	recs := e.auditRecords(t, store.AuditFilter{})
	var issues int
	for _, r := range recs {
		if strings.Contains(string(r.Data), "token issue") {
			issues++
		}
		if strings.Contains(string(r.Data), issued.Token) {
			t.Fatal("a token is in the audit trail")
		}
	}
	if issues != 2 {
		t.Errorf("%d token issues audited, want 2", issues)
	}
}
