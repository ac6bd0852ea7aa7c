package grant

import (
	"fmt"

	"github.com/airlock-dev/airlock/host/manifest"
)

// configValues refuses a config value outside the values its key declares, and applies the
// chosen value's rate limits to p.Rules like the grant's own rate_limits: where a rule already
// has a rate (the manifest's or the grant's), the tighter one applies, rate and burst each.
// Rules the grant does not grant are left out, as they are of p.Rules.
func configValues(m *manifest.Manifest, p *Policy) []error {
	var errs []error
	for i := range m.Config {
		k := &m.Config[i]
		v, set := p.Config[k.Name]
		if k.Values == nil || !set {
			continue
		}
		value, ok := k.Values[v]
		if !ok {
			errs = append(errs, fmt.Errorf("config.%s: %q is not a value manifest %s allows for it; set one of: %s", k.Name, v, m.Name, k.ValueNames()))
			continue
		}
		for _, o := range value.RateLimits {
			for j := range p.Rules {
				if r := &p.Rules[j]; o.Matches(*r) {
					r.RateLimit = tighterRate(r.RateLimit, o.Rate())
				}
			}
		}
	}
	return errs
}

// tighterRate returns the lower rate and the smaller burst of a and b (nil: no limit).
func tighterRate(a, b *manifest.RateLimit) *manifest.RateLimit {
	if a == nil {
		return b
	}
	return &manifest.RateLimit{PerSecond: min(a.PerSecond, b.PerSecond), Burst: min(a.EffectiveBurst(), b.EffectiveBurst())}
}
