package manifest

import (
	"fmt"
	"slices"
	"strings"
)

// Change is one thing a new manifest version asks for that the old one did not. Changes are what
// an admin reviews before a new version replaces an approved one (DESIGN.md, "Manifests and
// grants": a version that asks for more is not enabled until re-approved).
type Change struct {
	// Kind says what grew: one of the Change* constants.
	Kind string `json:"kind"`
	// Path locates it in the new manifest, like "tools[post_message].scopes" or "network[2]".
	Path string `json:"path"`
	// Detail is a sentence for the admin: what the new version asks for.
	Detail string `json:"detail"`
}

// Kinds of Change.
const (
	ChangePublisher   = "publisher"   // the publisher is a different one
	ChangeTool        = "tool"        // a new tool, or a tool that became less safe (annotations)
	ChangeScope       = "scope"       // a tool uses a new OAuth scope
	ChangeHost        = "host"        // a network destination not covered by the old rules
	ChangeCredential  = "credential"  // a new credential slot, or one sent more widely or differently
	ChangeDatabase    = "database"    // a new or changed database function
	ChangeLimit       = "limit"       // a looser resource limit
	ChangeRateLimit   = "rate_limit"  // a looser or removed rate limit on a network rule
	ChangeOAuthScopes = "oauth_scope" // an OAuth slot requests a new scope
)

func (c Change) String() string { return c.Path + ": " + c.Detail }

// Compare lists what newer asks for beyond older: new tools, scopes, hosts (scheme, port, path,
// method), credential slots and the hosts they go to, database functions, looser limits and rate
// limits (a config value's rate limits included), and tools whose annotations became less safe.
// An empty result means newer may replace older under the same grant without widening anything.
// Descriptions, schemas, other config changes and the module digest are not reported: they do not
// widen what the connector may do. Changes are in a stable order. Both manifests must have been
// made by [Parse] (defaults applied).
func Compare(older, newer *Manifest) []Change {
	var out []Change
	add := func(kind, path, format string, args ...any) {
		out = append(out, Change{Kind: kind, Path: path, Detail: fmt.Sprintf(format, args...)})
	}
	if older.Publisher != newer.Publisher {
		add(ChangePublisher, "publisher", "published by %q instead of %q", newer.Publisher, older.Publisher)
	}

	// Tools and their scopes.
	for _, t := range newer.Tools {
		p := "tools[" + t.Name + "]"
		o, ok := older.Tool(t.Name)
		if !ok {
			add(ChangeTool, p, "new tool %s (scopes: %s)", t.Name, listOrNone(t.Scopes))
			continue
		}
		for _, s := range t.Scopes {
			if !slices.Contains(o.Scopes, s) {
				add(ChangeScope, p+".scopes", "tool %s now uses scope %s", t.Name, s)
			}
		}
		if o.Annotations.ReadOnly && !t.Annotations.ReadOnly {
			add(ChangeTool, p+".annotations.read_only", "tool %s is no longer read-only", t.Name)
		}
		if !o.Annotations.Destructive && t.Annotations.Destructive {
			add(ChangeTool, p+".annotations.destructive", "tool %s is now destructive", t.Name)
		}
		if o.Annotations.NeedsConfirmation && !t.Annotations.NeedsConfirmation {
			add(ChangeTool, p+".annotations.needs_confirmation", "tool %s no longer asks for confirmation", t.Name)
		}
		if o.Function != t.Function && t.Function != "" {
			add(ChangeTool, p+".function", "tool %s now runs database function %s", t.Name, t.Function)
		}
		compareBinding(o, &t, func(field, format string, args ...any) { add(ChangeTool, p+".uses."+field, format, args...) })
	}

	// Network rules: each new rule must be covered by one old rule.
	for i, r := range newer.Network {
		p := fmt.Sprintf("network[%d]", i)
		if why := uncovered(r, older.Network); why != "" {
			add(ChangeHost, p, "%s", why)
			continue
		}
		if why := looserRate(r, older.Network); why != "" {
			add(ChangeRateLimit, p+".rate_limit", "%s", why)
		}
	}

	// Credential slots.
	for _, c := range newer.Credentials {
		p := "credentials[" + c.Name + "]"
		o, ok := older.Credential(c.Name)
		if !ok {
			add(ChangeCredential, p, "new credential slot %s (%s) sent to %s", c.Name, c.Kind, strings.Join(c.Hosts, ", "))
			continue
		}
		if o.Kind != c.Kind {
			add(ChangeCredential, p+".kind", "credential slot %s changes kind from %s to %s", c.Name, o.Kind, c.Kind)
		}
		if o.In != c.In || o.Param != c.Param {
			add(ChangeCredential, p+".in", "credential slot %s is injected as %s %q instead of %s %q", c.Name, c.In, c.Param, o.In, o.Param)
		}
		for _, h := range c.Hosts {
			if !slices.ContainsFunc(o.Hosts, func(oh string) bool { return MatchHost(oh, h) }) {
				add(ChangeCredential, p+".hosts", "credential slot %s may now be sent to %s", c.Name, h)
			}
		}
		if c.OAuth != nil {
			if o.OAuth == nil {
				add(ChangeCredential, p+".oauth", "credential slot %s now obtains OAuth tokens from %s", c.Name, c.OAuth.TokenURL)
				continue
			}
			if o.OAuth.TokenURL != c.OAuth.TokenURL {
				add(ChangeCredential, p+".oauth.token_url", "credential slot %s obtains tokens from %s instead of %s", c.Name, c.OAuth.TokenURL, o.OAuth.TokenURL)
			}
			if o.OAuth.AuthorizeURL != c.OAuth.AuthorizeURL {
				add(ChangeCredential, p+".oauth.authorize_url", "credential slot %s signs users in at %s instead of %s", c.Name, c.OAuth.AuthorizeURL, o.OAuth.AuthorizeURL)
			}
			if o.OAuth.RevocationURL != c.OAuth.RevocationURL {
				add(ChangeCredential, p+".oauth.revocation_url", "credential slot %s revokes tokens at %q instead of %q", c.Name, c.OAuth.RevocationURL, o.OAuth.RevocationURL)
			}
			if o.OAuth.Audience != c.OAuth.Audience {
				add(ChangeCredential, p+".oauth.audience", "credential slot %s asserts audience %q instead of %q", c.Name, c.OAuth.Audience, o.OAuth.Audience)
			}
			if !o.OAuth.InstanceURL && c.OAuth.InstanceURL {
				add(ChangeCredential, p+".oauth.instance_url", "credential slot %s may now be sent to the instance_url of the token response", c.Name)
			}
			for _, s := range c.OAuth.Scopes {
				if !slices.Contains(o.OAuth.Scopes, s) {
					add(ChangeOAuthScopes, p+".oauth.scopes", "credential slot %s now requests OAuth scope %s", c.Name, s)
				}
			}
		}
	}

	// Database functions: a new one, or the same name with a different statement or looser bounds.
	if newer.Database != nil {
		for _, f := range newer.Database.Functions {
			p := "database.functions[" + f.Name + "]"
			o, ok := older.Function(f.Name)
			if !ok {
				add(ChangeDatabase, p, "new database function %s: %s", f.Name, f.Statement())
				continue
			}
			if o.Statement() != f.Statement() {
				add(ChangeDatabase, p+".sql", "database function %s runs a different statement: %s", f.Name, f.Statement())
			}
			if !paramsEqual(o.Params, f.Params) {
				add(ChangeDatabase, p+".params", "database function %s takes different parameters", f.Name)
			}
			if o.ReadOnly && !f.ReadOnly {
				add(ChangeDatabase, p+".read_only", "database function %s now writes", f.Name)
			}
			looser := func(field string, oldV, newV int) {
				if newV > oldV {
					add(ChangeDatabase, p+"."+field, "database function %s: %s %d instead of %d", f.Name, field, newV, oldV)
				}
			}
			looser("max_rows", o.MaxRows, f.MaxRows)
			looser("max_bytes", o.MaxBytes, f.MaxBytes)
			looser("timeout_ms", o.TimeoutMS, f.TimeoutMS)
		}
	}

	// Limits.
	ol, nl := older.Limits.WithDefaults(), newer.Limits.WithDefaults()
	for _, l := range []struct {
		field      string
		oldV, newV int
	}{
		{"memory_mb", ol.MemoryMB, nl.MemoryMB},
		{"timeout_ms", ol.TimeoutMS, nl.TimeoutMS},
		{"max_input_bytes", ol.MaxInputBytes, nl.MaxInputBytes},
		{"max_output_bytes", ol.MaxOutputBytes, nl.MaxOutputBytes},
		{"max_response_bytes", ol.MaxResponseBytes, nl.MaxResponseBytes},
		{"max_requests", ol.MaxRequests, nl.MaxRequests},
	} {
		if l.newV > l.oldV {
			add(ChangeLimit, "limits."+l.field, "%s %d instead of %d", l.field, l.newV, l.oldV)
		}
	}
	return append(out, compareConfigRates(older, newer)...)
}

// uncovered says why rule r is not covered by any of the old rules, or "" when one covers it.
func uncovered(r Rule, old []Rule) string {
	var hostMatch []Rule
	for _, o := range old {
		if o.Scheme == r.Scheme && o.Port == r.Port && MatchHost(o.Host, r.Host) {
			hostMatch = append(hostMatch, o)
		}
	}
	dest := fmt.Sprintf("%s://%s:%d%s", r.Scheme, r.Host, r.Port, r.PathPrefix)
	if len(hostMatch) == 0 {
		return fmt.Sprintf("new destination %s (%s)", dest, strings.Join(r.Methods, ", "))
	}
	var pathMatch []Rule
	for _, o := range hostMatch {
		if strings.HasPrefix(r.PathPrefix, o.PathPrefix) {
			pathMatch = append(pathMatch, o)
		}
	}
	if len(pathMatch) == 0 {
		return fmt.Sprintf("new path %s (%s)", dest, strings.Join(r.Methods, ", "))
	}
	var missing []string
	for _, m := range r.Methods {
		if !slices.ContainsFunc(pathMatch, func(o Rule) bool { return slices.Contains(o.Methods, m) }) {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("new methods %s on %s", strings.Join(missing, ", "), dest)
	}
	return ""
}

// looserRate says why rule r's rate limit is looser than that of every old rule covering it,
// or "" when one of them is at least as loose.
func looserRate(r Rule, old []Rule) string {
	var limited []Rule
	for _, o := range old {
		if o.Scheme == r.Scheme && o.Port == r.Port && MatchHost(o.Host, r.Host) && strings.HasPrefix(r.PathPrefix, o.PathPrefix) {
			if o.RateLimit == nil {
				return "" // an unlimited old rule covers it
			}
			limited = append(limited, o)
		}
	}
	if len(limited) == 0 {
		return ""
	}
	if r.RateLimit == nil {
		return fmt.Sprintf("%s%s is no longer rate limited", r.Host, r.PathPrefix)
	}
	for _, o := range limited {
		if r.RateLimit.PerSecond <= o.RateLimit.PerSecond && burst(r.RateLimit) <= burst(o.RateLimit) {
			return ""
		}
	}
	return fmt.Sprintf("%s%s: rate limit %g/s burst %d is looser than before", r.Host, r.PathPrefix, r.RateLimit.PerSecond, burst(r.RateLimit))
}

func burst(l *RateLimit) int {
	if l.Burst > 0 {
		return l.Burst
	}
	b := int(l.PerSecond)
	if float64(b) < l.PerSecond {
		b++
	}
	return max(b, 1)
}

func paramsEqual(a, b []DBParam) bool {
	return slices.EqualFunc(a, b, func(x, y DBParam) bool {
		return x.Name == y.Name && string(x.Schema) == string(y.Schema)
	})
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
