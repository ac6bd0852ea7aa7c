package manifest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGoldenConfigValues(t *testing.T) {
	runGolden(t, "testdata/config_values.txtar", func(name string, data []byte) error {
		_, err := Parse(name, data)
		return err
	})
}

// tierManifest is the shape of Slack's history_tier: a value that brings a rate of its own.
const tierManifest = `abi: 1
name: chat
version: 1.0.0
publisher: acme
description: Chat.
module: {path: chat.wasm}
network:
  - {host: chat.example, path_prefix: /api/, methods: [GET, POST]}
  - {host: chat.example, path_prefix: /api/history}
config:
  - name: tier
    default: standard
    values:
      standard: {}
      limited:
        rate_limits: [{host: chat.example, path_prefix: /api/history, per_second: 0.0166, burst: 1}]
tools:
  - {name: history, description: History., input_schema: {type: object}}
`

// TestCompareConfigValueRates: a new version whose config value limits less is a looser rate
// limit the admin must approve; a tighter value, a new value or a removed one widens nothing.
func TestCompareConfigValueRates(t *testing.T) {
	old := `limited:
        rate_limits: [{host: chat.example, path_prefix: /api/history, per_second: 0.0166, burst: 1}]`
	tests := []struct {
		name, replacement string
		want              []Change
	}{
		{"unchanged", old, nil},
		{"tighter", `limited:
        rate_limits: [{host: chat.example, path_prefix: /api/history, per_second: 0.01, burst: 1}]`, nil},
		{"new value", old + `
      frozen:
        rate_limits: [{host: chat.example, per_second: 0.001}]`, nil},
		{"value removed", `frozen: {}`, nil},
		{"faster", `limited:
        rate_limits: [{host: chat.example, path_prefix: /api/history, per_second: 1, burst: 1}]`,
			[]Change{{Kind: ChangeRateLimit, Path: "config[tier].values[limited].rate_limits[0]",
				Detail: "tier: limited limits chat.example/api/history to 1/s burst 1 instead of 0.0166/s burst 1"}}},
		{"bigger burst", `limited:
        rate_limits: [{host: chat.example, path_prefix: /api/history, per_second: 0.0166, burst: 5}]`,
			[]Change{{Kind: ChangeRateLimit, Path: "config[tier].values[limited].rate_limits[0]",
				Detail: "tier: limited limits chat.example/api/history to 0.0166/s burst 5 instead of 0.0166/s burst 1"}}},
		{"rate dropped", `limited: {}`,
			[]Change{{Kind: ChangeRateLimit, Path: "config[tier].values[limited].rate_limits",
				Detail: "tier: limited no longer limits chat.example/api/history to 0.0166/s burst 1"}}},
	}
	older, err := Parse("chat.yaml", []byte(tierManifest))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(tierManifest, old, tt.replacement, 1)
			newer, err := Parse("chat.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, Compare(older, newer)); diff != "" {
				t.Errorf("Compare mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
