package admin

import (
	"fmt"
	"strings"

	"github.com/airlock-dev/airlock/host/manifest"
)

// describeConfig describes each config key of m for the admin's review: its default and, when
// it lists its values, what each value brings, e.g. "history_tier (default standard): standard;
// non_marketplace → slack.com/api/conversations.history at most 0.0166/s, burst 1".
func describeConfig(m *manifest.Manifest) []string {
	var out []string
	for i := range m.Config {
		k := &m.Config[i]
		desc := k.Name
		if k.Default != "" {
			desc += " (default " + k.Default + ")"
		}
		if k.Values == nil {
			out = append(out, desc+": any value")
			continue
		}
		var values []string
		for _, v := range strings.Split(k.ValueNames(), ", ") {
			var rates []string
			for _, o := range k.Values[v].RateLimits {
				rates = append(rates, fmt.Sprintf("%s%s at most %g/s, burst %d", o.Host, o.PathPrefix, o.PerSecond, o.Rate().EffectiveBurst()))
			}
			if len(rates) > 0 {
				v += " → " + strings.Join(rates, ", ")
			}
			values = append(values, v)
		}
		out = append(out, desc+": one of "+strings.Join(values, "; "))
	}
	return out
}
