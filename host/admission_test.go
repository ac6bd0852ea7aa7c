package host_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
)

// A call that passed its grant check before a decision was acknowledged, but had not started
// the plugin yet, must not run under the old decision (invariant 10). The Progress callback
// runs in exactly that window, so the decision is made there.
func TestDecisionDuringAdmission(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		decide func(t *testing.T, h *host.Host)
	}{
		{"revoked", func(t *testing.T, h *host.Host) {
			h.SetInstalled(ctx, "slack", &host.Installed{Revoked: true})
		}},
		{"narrowed", func(t *testing.T, h *host.Host) {
			m, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
			g := &manifest.Grant{Connector: "slack", Tools: []string{"post_message"}, Scopes: []string{"*"}, Hosts: []string{"*"},
				Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"})}
			if err := h.LoadModule(ctx, m, wasm, g); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, _ := slackHost(t)
			decided := false
			res := h.Call(ctx, host.CallRequest{Tool: "slack.list_channels", Arguments: json.RawMessage(`{}`), Agent: "a",
				Progress: func(done int, _ string) {
					if done == 0 && !decided {
						decided = true
						tc.decide(t, h) // returns: the decision is acknowledged
					}
				}})
			if !decided {
				t.Fatal("the call never reached the plugin's admission")
			}
			if res.OK || res.Error.Code != abi.CodeNotGranted || res.Meta.Requests != 0 {
				t.Fatalf("call decided against during admission = ok %v, %+v, %d requests; want not_granted and nothing sent", res.OK, res.Error, res.Meta.Requests)
			}
		})
	}
}
