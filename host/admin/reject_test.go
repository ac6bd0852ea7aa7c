package admin_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
)

// A pending upgrade rejected through the admin API is gone, the active version keeps serving,
// and the rejection is recorded with the admin's name; an active version cannot be rejected.
func TestRejectUpgradeAPI(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	e.grant(t, "", e.slackGrant())
	e.install(t, "slack", "2.0.0", store.InstalledPending, e.slackYAML(t, slackV2), e.slackW)
	c, tokens, _ := roleAdmins(t, e)

	if status, body := c.do(tokens[admin.Granter], "POST", "/admin/v1/connectors/slack/versions/1.0.0/reject", ""); status != http.StatusConflict || !strings.Contains(string(body), "not a pending upgrade") {
		t.Errorf("rejecting the active version: %d %s, want 409", status, body)
	}
	if status, body := c.do(tokens[admin.Granter], "POST", "/admin/v1/connectors/slack/versions/2.0.0/reject", ""); status != http.StatusOK {
		t.Fatalf("rejecting the pending version: %d %s", status, body)
	}
	if _, err := e.st.GetInstalled(ctx, "slack", "2.0.0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the rejected version: %v, want not found", err)
	}
	if res := e.call("slack.list_channels", `{"limit":2}`); !res.OK || res.Meta.Version != "1.0.0" {
		t.Fatalf("after the rejection: %+v, want 1.0.0 serving", res)
	}
	found := false
	for _, r := range e.auditRecords(t, store.AuditFilter{Kind: audit.KindAdmin}) {
		found = found || strings.Contains(string(r.Data), "reject upgrade") && strings.Contains(string(r.Data), "granter-admin")
	}
	if !found {
		t.Error("the rejection is not in the audit trail with the admin's name")
	}
	if status, _ := c.do(tokens[admin.Granter], "POST", "/admin/v1/connectors/slack/versions/2.0.0/reject", ""); status != http.StatusNotFound {
		t.Errorf("rejecting it again: %d, want 404", status)
	}
}
