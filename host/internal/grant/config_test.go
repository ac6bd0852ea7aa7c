package grant

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/airlock-dev/airlock/host/manifest"
)

// tierManifest has Slack's history_tier: the non_marketplace value brings a rate of its own
// for the history rule; the default, standard, brings none.
const tierManifest = `abi: 1
name: slack
version: 1.0.0
publisher: airlock-dev
description: Slack.
module: {path: slack.wasm}
network:
  - {host: slack.com, path_prefix: /api/, methods: [GET, POST]}
  - {host: slack.com, path_prefix: /api/conversations.history}
  - {host: files.slack.com}
config:
  - name: history_tier
    default: standard
    values:
      standard: {}
      non_marketplace:
        rate_limits:
          - {host: slack.com, path_prefix: /api/conversations.history, per_second: 0.0166, burst: 1}
          - {host: files.slack.com, per_second: 0.5}
  - {name: default_channel}
tools:
  - {name: channel_history, description: History., uses: {network: [slack.com]}, input_schema: {type: object}}
`

// rates returns each granted rule's rate as "per_second/burst" (burst 0: the default) or "none".
func rates(p *Policy) map[string]string {
	out := map[string]string{}
	for _, r := range p.Rules {
		v := "none"
		if r.RateLimit != nil {
			v = fmt.Sprintf("%g/%d", r.RateLimit.PerSecond, r.RateLimit.Burst)
		}
		out[r.Host+r.PathPrefix] = v
	}
	return out
}

// TestConfigValueRates: the admin writes only config: {history_tier: non_marketplace} and the
// policy carries the value's rate for the history rule; the grant's own rate_limits and the
// value's combine to the tighter one.
func TestConfigValueRates(t *testing.T) {
	m, err := manifest.Parse("slack.yaml", []byte(tierManifest))
	if err != nil {
		t.Fatal(err)
	}
	base := func() manifest.Grant {
		return manifest.Grant{Connector: "slack", Tools: []string{"*"}, Hosts: []string{"*"}}
	}
	tests := []struct {
		name   string
		config map[string]string
		rates  []manifest.RateLimitOverride
		hosts  []string
		want   map[string]string
	}{
		{"default value brings nothing", nil, nil, nil,
			map[string]string{"slack.com/api/": "none", "slack.com/api/conversations.history": "none", "files.slack.com/": "none"}},
		{"one grant line", map[string]string{"history_tier": "non_marketplace"}, nil, nil,
			map[string]string{"slack.com/api/": "none", "slack.com/api/conversations.history": "0.0166/1", "files.slack.com/": "0.5/0"}},
		{"the grant is tighter", map[string]string{"history_tier": "non_marketplace"},
			[]manifest.RateLimitOverride{{Host: "slack.com", PathPrefix: "/api/conversations.history", PerSecond: 0.01, Burst: 3}}, nil,
			map[string]string{"slack.com/api/": "none", "slack.com/api/conversations.history": "0.01/1", "files.slack.com/": "0.5/0"}},
		{"the value is tighter", map[string]string{"history_tier": "non_marketplace"},
			[]manifest.RateLimitOverride{{Host: "slack.com", PerSecond: 2}}, nil,
			map[string]string{"slack.com/api/": "2/0", "slack.com/api/conversations.history": "0.0166/1", "files.slack.com/": "0.5/0"}},
		{"a host not granted", map[string]string{"history_tier": "non_marketplace"}, nil, []string{"slack.com"},
			map[string]string{"slack.com/api/": "none", "slack.com/api/conversations.history": "0.0166/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := base()
			g.Config, g.RateLimits = tt.config, tt.rates
			if tt.hosts != nil {
				g.Hosts = tt.hosts
			}
			p, err := Effective(m, &g)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, rates(p)); diff != "" {
				t.Errorf("rates mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConfigValueRefused: a value the manifest does not list is refused, with the allowed ones;
// a key without values still takes any value.
func TestConfigValueRefused(t *testing.T) {
	m, err := manifest.Parse("slack.yaml", []byte(tierManifest))
	if err != nil {
		t.Fatal(err)
	}
	g := manifest.Grant{Connector: "slack", Tools: []string{"*"}, Hosts: []string{"*"},
		Config: map[string]string{"history_tier": "Non_Marketplace", "default_channel": "anything at all"}}
	_, err = Effective(m, &g)
	want := `config.history_tier: "Non_Marketplace" is not a value manifest slack allows for it; set one of: non_marketplace, standard`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Effective = %v, want an error containing %q", err, want)
	}
	if strings.Count(err.Error(), "config.") != 1 {
		t.Errorf("Effective = %v; want only history_tier refused (default_channel declares no values)", err)
	}
}
