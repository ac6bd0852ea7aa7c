package manifest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// checkConfigValues checks the values of the config keys that declare them: the default is
// one of them, and each value's rate limits name a declared network rule and only tighten its
// rate.
func (d *document) checkConfigValues(m *Manifest) []*Error {
	var errs []*Error
	for i, k := range m.Config {
		if k.Values == nil {
			continue
		}
		path := []string{"config", strconv.Itoa(i)}
		if len(k.Values) == 0 {
			errs = append(errs, d.at(append(path, "values"), "lists no value, so a grant could set none: list the allowed values, or remove values to allow any"))
			continue
		}
		if k.Default != "" {
			if _, ok := k.Values[k.Default]; !ok {
				errs = append(errs, d.at(append(path, "default"), "%q is not one of the key's values (%s): add it under values, or change the default", k.Default, k.ValueNames()))
			}
		}
		for _, v := range sortedKeys(k.Values) {
			for j, o := range k.Values[v].RateLimits {
				at := append(slices.Clone(path), "values", v, "rate_limits", strconv.Itoa(j))
				rules := m.RulesFor(o)
				if len(rules) == 0 {
					errs = append(errs, d.at(at, "no network rule has host %q%s: name a rule declared under network, with its host and path_prefix as written there", o.Host, pathClause(o.PathPrefix)))
					continue
				}
				for _, r := range rules {
					if r.RateLimit != nil && o.PerSecond > r.RateLimit.PerSecond {
						errs = append(errs, d.at(append(at, "per_second"), "%g per second is looser than the rule's own %g for %s%s: a value may only tighten a rule's rate", o.PerSecond, r.RateLimit.PerSecond, r.Host, r.PathPrefix))
					}
				}
			}
		}
	}
	return errs
}

// RulesFor returns the network rules a rate limit override names: those with its host and, when
// it sets one, its path prefix, as the manifest writes them.
func (m *Manifest) RulesFor(o RateLimitOverride) []Rule {
	var out []Rule
	for _, r := range m.Network {
		if o.Matches(r) {
			out = append(out, r)
		}
	}
	return out
}

// Matches reports whether the override names rule r: the same host and, when the override sets
// one, the same path prefix.
func (o RateLimitOverride) Matches(r Rule) bool {
	return r.Host == o.Host && (o.PathPrefix == "" || r.PathPrefix == o.PathPrefix)
}

// ValueNames lists the key's allowed values, sorted and comma-separated ("" when any value is
// allowed).
func (k *ConfigKey) ValueNames() string { return strings.Join(sortedKeys(k.Values), ", ") }

// Rate returns the override as a rate limit.
func (o RateLimitOverride) Rate() *RateLimit {
	return &RateLimit{PerSecond: o.PerSecond, Burst: o.Burst}
}

// EffectiveBurst returns Burst with its default: PerSecond rounded up, at least 1.
func (l *RateLimit) EffectiveBurst() int { return burst(l) }

func pathClause(prefix string) string {
	if prefix == "" {
		return ""
	}
	return " and path_prefix " + strconv.Quote(prefix)
}

// compareConfigRates lists the rate limits of config values that newer loosens or drops: for
// each value both versions allow, a rate limit of the old value with no equal or tighter one
// in the new value. A value or key newer removes loosens nothing (a grant that sets it is
// refused); a new value's rate limits only tighten.
func compareConfigRates(older, newer *Manifest) []Change {
	var out []Change
	for _, nk := range newer.Config {
		ok := slices.IndexFunc(older.Config, func(k ConfigKey) bool { return k.Name == nk.Name })
		if ok < 0 {
			continue
		}
		okey := older.Config[ok]
		for _, v := range sortedKeys(nk.Values) {
			ov, had := okey.Values[v]
			if !had {
				continue
			}
			nv := nk.Values[v]
			for _, o := range ov.RateLimits {
				i := slices.IndexFunc(nv.RateLimits, func(n RateLimitOverride) bool { return n.Host == o.Host && n.PathPrefix == o.PathPrefix })
				path := fmt.Sprintf("config[%s].values[%s].rate_limits", nk.Name, v)
				switch {
				case i < 0:
					out = append(out, Change{Kind: ChangeRateLimit, Path: path, Detail: fmt.Sprintf("%s: %s no longer limits %s%s to %g/s burst %d", nk.Name, v, o.Host, o.PathPrefix, o.PerSecond, burst(o.Rate()))})
				case nv.RateLimits[i].PerSecond > o.PerSecond || burst(nv.RateLimits[i].Rate()) > burst(o.Rate()):
					n := nv.RateLimits[i]
					out = append(out, Change{Kind: ChangeRateLimit, Path: fmt.Sprintf("%s[%d]", path, i), Detail: fmt.Sprintf("%s: %s limits %s%s to %g/s burst %d instead of %g/s burst %d", nk.Name, v, o.Host, o.PathPrefix, n.PerSecond, burst(n.Rate()), o.PerSecond, burst(o.Rate()))})
				}
			}
		}
	}
	return out
}
