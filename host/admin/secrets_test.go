package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/secret"
)

// Secrets through the API are write-only: an owner sets one, listing shows the name and never
// the value; without a secret store the answer says how to create one.
func TestSecretsAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	c, tokens, _ := roleAdmins(t, e)
	if status, body := c.do(tokens[admin.Owner], "GET", "/admin/v1/secrets", ""); status != http.StatusBadRequest || !strings.Contains(string(body), "airlock secret set") {
		t.Errorf("without a secret store: %d %s", status, body)
	}
	ss, err := secret.OpenStore(context.Background(), &secret.MemoryBackend{}, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	e.a.SetSecretStore(ss)
	if status, body := c.do(tokens[admin.Owner], "PUT", "/admin/v1/secrets/slack_bot", `{"value":"`+canary+`"}`); status != http.StatusOK {
		t.Fatalf("set: %d %s", status, body)
	}
	status, body := c.do(tokens[admin.Granter], "GET", "/admin/v1/secrets", "")
	if status != http.StatusOK || !strings.Contains(string(body), `"slack_bot"`) || containsCanary(body) {
		t.Fatalf("list: %d %s", status, body)
	}
	if v, err := ss.Get(context.Background(), "slack_bot"); err != nil || v.Expose() != canary {
		t.Fatalf("stored: %v", err)
	}
}
