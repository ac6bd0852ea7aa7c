package host_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/fakeslack"
)

// TestSlackHistoryTier: a grant for a non-Marketplace Slack app (Slack's 2025 limits:
// conversations.history 1 request a minute, at most 15 messages) sets only config history_tier:
// non_marketplace, and that alone makes channel_history ask for at most 15 and the host's rate
// limiter hold it to one request a minute (the manifest's value brings the rate); the default
// grant keeps the standard limits.
func TestSlackHistoryTier(t *testing.T) {
	fake := fakeslack.New(canary)
	u, stop := fake.Start()
	t.Cleanup(stop)
	m, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	grant := func(mod func(*manifest.Grant)) *manifest.Grant {
		g := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
			Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
			Upstreams:   map[string]string{"https://slack.com": u}}
		if mod != nil {
			mod(g)
		}
		return g
	}
	limits := func() []string {
		var out []string
		for _, r := range fake.Requests() {
			if r.Method == "conversations.history" {
				q, _ := url.ParseQuery(r.RawQuery)
				out = append(out, q.Get("limit"))
			}
		}
		return out
	}
	history := func(h *host.Host) *host.Result {
		return h.Call(context.Background(), host.CallRequest{Tool: "slack.channel_history", Agent: "a",
			Arguments: []byte(`{"channel":"C0GENERAL","limit":100}`)})
	}

	h, _ := hosttest.New(t, host.Config{Secrets: secrets()})
	if err := h.LoadModule(context.Background(), m, wasm, grant(nil)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if res := history(h); !res.OK {
			t.Fatalf("standard tier: %+v", res.Error)
		}
	}
	if got := limits(); len(got) != 2 || got[0] != "100" {
		t.Fatalf("standard tier sent limits %v, want 100 twice", got)
	}

	nonMarketplace := grant(func(g *manifest.Grant) {
		g.Config = map[string]string{"history_tier": "non_marketplace"} // the one line an admin writes
	})
	h2, _ := hosttest.New(t, host.Config{Secrets: secrets()})
	if err := h2.LoadModule(context.Background(), m, wasm, nonMarketplace); err != nil {
		t.Fatal(err)
	}
	if res := history(h2); !res.OK {
		t.Fatalf("non-Marketplace tier, first call: %+v", res.Error)
	}
	res := history(h2)
	if res.OK || res.Error.Code != abi.CodeRateLimited || res.Error.Category != abi.Retryable || res.Error.RetryAfter < 50 {
		t.Fatalf("non-Marketplace tier, second call within the minute = %+v; want rate_limited, retry after about 60 s", res.Error)
	}
	if got := limits(); len(got) != 3 || got[2] != "15" {
		t.Errorf("limits sent %v; want the non-Marketplace call to ask for 15, and the refused one not to reach Slack", got)
	}
	// Other methods keep their own rate.
	if r := h2.Call(context.Background(), host.CallRequest{Tool: "slack.list_channels", Agent: "a", Arguments: []byte(`{"limit":2}`)}); !r.OK {
		t.Errorf("list_channels under the non-Marketplace tier: %+v", r.Error)
	}
}
