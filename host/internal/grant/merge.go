package grant

import (
	"maps"
	"slices"

	"github.com/airlock-dev/airlock/host/manifest"
)

// Where a part of an effective grant comes from (see [Merge]).
const (
	FromFile  = "file"  // the configuration file (airlock.yaml) alone
	FromStore = "store" // the grant recorded in the state store alone
	FromBoth  = "file ∩ store"
	FromEach  = "file ∪ store" // confirm rules: either source's rule applies
)

// Merge combines a connector's grant from the configuration file and its grant recorded in the
// state store into the one grant that applies. The most restrictive decision wins:
//
//   - permissions (tools, scopes, hosts, private targets, database functions and writes) are
//     granted only when both grant them ("*" on one side yields the other side's list);
//   - limits, rate limits and quotas take the tighter of the two, field by field;
//   - confirm rules are the union: a tool either source wants approved needs approval;
//   - screening takes the stricter action, the detectors either runs, the link hosts both
//     allow, and the store's classifier (failing closed if either source says so);
//   - values that are not permissions — which secret fills a credential slot, config values,
//     upstream routes, the database reference — come from the store grant where it sets them,
//     else from the file: the store holds an admin's latest recorded decision.
//
// m is the manifest the result applies to; names it does not declare are dropped. Either grant
// may be nil (that source says nothing): the other is returned as is. The map says, for each
// part of the result that is set ("tools", "credentials.bot_token", "limits" …), where it
// comes from: [FromFile], [FromStore], [FromBoth] or [FromEach]. Merge never fails; the
// result is checked by [Effective] like any grant.
func Merge(m *manifest.Manifest, file, store *manifest.Grant) (*manifest.Grant, map[string]string) {
	from := map[string]string{}
	switch {
	case file == nil && store == nil:
		return nil, from
	case file == nil || store == nil:
		g, src := file, FromFile
		if g == nil {
			g, src = store, FromStore
		}
		for _, part := range parts(g) {
			from[part] = src
		}
		return g, from
	}
	out := &manifest.Grant{Connector: m.Name}
	var toolNames, scopes, hosts, fnames []string
	for _, t := range m.Tools {
		toolNames = append(toolNames, t.Name)
		scopes = append(scopes, t.Scopes...)
	}
	for _, r := range m.Network {
		hosts = append(hosts, r.Host)
	}
	if m.Database != nil {
		for _, f := range m.Database.Functions {
			fnames = append(fnames, f.Name)
		}
	}
	both := func(part string, a, b []string, declared []string) []string {
		r := intersect(a, b, uniqueSorted(declared))
		if len(r) > 0 {
			from[part] = FromBoth
		}
		return r
	}
	out.Tools = both("tools", file.Tools, store.Tools, toolNames)
	out.Scopes = both("scopes", file.Scopes, store.Scopes, scopes)
	out.Hosts = both("hosts", file.Hosts, store.Hosts, hosts)
	out.PrivateTargets = intersect(file.PrivateTargets, store.PrivateTargets, nil)
	if len(out.PrivateTargets) > 0 {
		from["private_targets"] = FromBoth
	}

	out.Confirm = uniqueSorted(append(slices.Clone(file.Confirm), store.Confirm...))
	switch {
	case len(file.Confirm) > 0 && len(store.Confirm) > 0:
		from["confirm"] = FromEach
	case len(file.Confirm) > 0:
		from["confirm"] = FromFile
	case len(store.Confirm) > 0:
		from["confirm"] = FromStore
	}

	// Values: the store's where it sets them, else the file's.
	out.Credentials = overlay(from, "credentials.", file.Credentials, store.Credentials)
	out.Config = overlay(from, "config.", file.Config, store.Config)
	out.Upstreams = overlay(from, "upstreams.", file.Upstreams, store.Upstreams)

	out.Limits = tighterLimits(file.Limits, store.Limits)
	if out.Limits != (manifest.Limits{}) {
		from["limits"] = pick(file.Limits != (manifest.Limits{}), store.Limits != (manifest.Limits{}))
	}
	out.RateLimits = tighterRates(file.RateLimits, store.RateLimits)
	if len(out.RateLimits) > 0 {
		from["rate_limits"] = pick(len(file.RateLimits) > 0, len(store.RateLimits) > 0)
	}
	out.Screening = tighterScreening(file.Screening, store.Screening)
	if out.Screening != nil {
		from["screening"] = pick(file.Screening != nil, store.Screening != nil)
	}
	out.Quotas = tighterQuotas(file.Quotas, store.Quotas)
	if out.Quotas != nil {
		from["quotas"] = pick(file.Quotas != nil, store.Quotas != nil)
	}

	// A database is granted only when both grant it; its reference is a value.
	if file.Database != nil && store.Database != nil {
		db := &manifest.DatabaseGrant{DSN: store.Database.DSN,
			Functions:   intersect(file.Database.Functions, store.Database.Functions, uniqueSorted(fnames)),
			AllowWrites: file.Database.AllowWrites && store.Database.AllowWrites}
		if db.DSN == "" {
			db.DSN = file.Database.DSN
		}
		out.Database = db
		from["database"] = FromBoth
	}
	return out, from
}

// pick names the source of a part both sources may tighten.
func pick(inFile, inStore bool) string {
	switch {
	case inFile && inStore:
		return FromBoth
	case inFile:
		return FromFile
	}
	return FromStore
}

// parts lists the parts of g that are set, as Merge names them.
func parts(g *manifest.Grant) []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(len(g.Tools) > 0, "tools")
	add(len(g.Scopes) > 0, "scopes")
	add(len(g.Hosts) > 0, "hosts")
	add(len(g.PrivateTargets) > 0, "private_targets")
	add(len(g.Confirm) > 0, "confirm")
	for _, k := range sortedKeys(g.Credentials) {
		out = append(out, "credentials."+k)
	}
	for _, k := range sortedKeys(g.Config) {
		out = append(out, "config."+k)
	}
	for _, k := range sortedKeys(g.Upstreams) {
		out = append(out, "upstreams."+k)
	}
	add(g.Limits != (manifest.Limits{}), "limits")
	add(len(g.RateLimits) > 0, "rate_limits")
	add(g.Quotas != nil, "quotas")
	add(g.Screening != nil, "screening")
	add(g.Database != nil, "database")
	return out
}

// intersect returns the names both a and b grant, where All on one side stands for the other
// side's names (restricted to declared, when given). All on both sides stays All.
func intersect(a, b, declared []string) []string {
	sa, sb := set(a), set(b)
	if sa.all && sb.all {
		return []string{manifest.All}
	}
	var out []string
	for _, n := range uniqueSorted(append(slices.Clone(a), b...)) {
		if n == manifest.All || !sa.has(n) || !sb.has(n) {
			continue
		}
		if declared != nil && !slices.Contains(declared, n) {
			continue
		}
		out = append(out, n)
	}
	return out
}

// overlay returns file's entries replaced and completed by store's, recording each key's source.
func overlay[V comparable](from map[string]string, prefix string, file, store map[string]V) map[string]V {
	if len(file) == 0 && len(store) == 0 {
		return nil
	}
	out := maps.Clone(file)
	if out == nil {
		out = map[string]V{}
	}
	for k := range file {
		from[prefix+k] = FromFile
	}
	for k, v := range store {
		if fv, ok := file[k]; ok && fv == v {
			from[prefix+k] = FromBoth
		} else {
			from[prefix+k] = FromStore
		}
		out[k] = v
	}
	return out
}

// tighter returns the smaller of two limits where zero means "not set".
func tighter(a, b int) int {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

func tighterLimits(a, b manifest.Limits) manifest.Limits {
	return manifest.Limits{
		MemoryMB:         tighter(a.MemoryMB, b.MemoryMB),
		TimeoutMS:        tighter(a.TimeoutMS, b.TimeoutMS),
		MaxInputBytes:    tighter(a.MaxInputBytes, b.MaxInputBytes),
		MaxOutputBytes:   tighter(a.MaxOutputBytes, b.MaxOutputBytes),
		MaxResponseBytes: tighter(a.MaxResponseBytes, b.MaxResponseBytes),
		MaxRequests:      tighter(a.MaxRequests, b.MaxRequests),
	}
}

// tighterRates keeps one override per (host, path prefix): the slower one.
func tighterRates(a, b []manifest.RateLimitOverride) []manifest.RateLimitOverride {
	var out []manifest.RateLimitOverride
	for _, o := range append(slices.Clone(a), b...) {
		i := slices.IndexFunc(out, func(x manifest.RateLimitOverride) bool { return x.Host == o.Host && x.PathPrefix == o.PathPrefix })
		switch {
		case i < 0:
			out = append(out, o)
		case o.PerSecond < out[i].PerSecond:
			out[i].PerSecond = o.PerSecond
			fallthrough
		default:
			if o.Burst > 0 && (out[i].Burst == 0 || o.Burst < out[i].Burst) {
				out[i].Burst = o.Burst
			}
		}
	}
	return out
}

func tighterQuotas(a, b *manifest.Quotas) *manifest.Quotas {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return &manifest.Quotas{PerAgent: tighterQuota(a.PerAgent, b.PerAgent), PerTool: tighterQuota(a.PerTool, b.PerTool)}
}

// tighterQuota keeps the quota allowing fewer calls per second.
func tighterQuota(a, b *manifest.Quota) *manifest.Quota {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.PeriodS > 0 && b.PeriodS > 0 && float64(a.Calls)/float64(a.PeriodS) <= float64(b.Calls)/float64(b.PeriodS):
		return a
	}
	return b
}
