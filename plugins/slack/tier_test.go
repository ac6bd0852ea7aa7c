package main

import (
	"net/url"
	"testing"

	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/pdk"
)

// TestHistoryTier: under the non-Marketplace tier channel_history asks Slack for at most 15
// messages; an unknown tier is the admin's to fix.
func TestHistoryTier(t *testing.T) {
	t.Parallel()
	for tier, want := range map[string]string{"": "100", "standard": "100", "non_marketplace": "15"} {
		h, _ := newHost(t)
		if tier != "" {
			h.SetConfig(map[string]string{historyTierKey: tier})
		}
		h.SetInput(map[string]any{"channel": fakeslack.General, "limit": 100})
		if _, toolErr := h.Call(channelHistory); toolErr != nil {
			t.Fatalf("tier %q: %v", tier, toolErr)
		}
		u, _ := url.Parse(h.Requests()[0].URL)
		if got := u.Query().Get("limit"); got != want {
			t.Errorf("tier %q: limit=%s sent, want %s", tier, got, want)
		}
	}
	h, _ := newHost(t)
	h.SetConfig(map[string]string{historyTierKey: "gold"})
	h.SetInput(map[string]any{"channel": fakeslack.General})
	if _, toolErr := h.Call(channelHistory); toolErr == nil || toolErr.Code != "bad_config" || toolErr.Category != pdk.CategoryFatal {
		t.Errorf("unknown tier: %+v, want fatal bad_config", toolErr)
	}
}
