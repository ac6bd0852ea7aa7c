// Package grant computes a connector's effective permission: manifest ∩ grant.
//
// The manifest says what a connector asks for; the grant says what an admin allows. [Effective]
// checks that the grant only names things the manifest declares (a typo in a grant is an error,
// never a silent denial or, worse, a silent allowance), then intersects the two into a [Policy]
// that the rest of the host enforces. Everything the policy does not list is denied.
//
// Example:
//
//	m, _ := manifest.Load("manifests/slack.yaml") // tools post_message [chat:write], list_channels [channels:read]
//	g, _ := manifest.ParseGrant("grant.yaml", []byte(`
//	connector: slack
//	tools: ["*"]
//	scopes: [channels:read]
//	hosts: [slack.com]
//	credentials: {bot_token: env:SLACK_BOT_TOKEN}
//	limits: {timeout_ms: 5000}
//	`))
//	p, err := grant.Effective(m, g)
//	// p.Tools:  list_channels
//	// p.Denied: post_message -> "needs scope chat:write, which is not granted"
//	// p.Rules:  the manifest's slack.com rules; p.Limits.TimeoutMS: 5000
//
// A Policy is a plain value: safe for concurrent reads once built.
package grant

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/host/manifest"
)

// Policy is the effective permission of one connector under one grant.
type Policy struct {
	// Tools are the callable tools: granted, with every scope they use granted. Keyed by tool
	// name; the pointers point into the manifest.
	Tools map[string]*manifest.Tool
	// Denied gives, for each manifest tool that is not callable, a reason an agent can read,
	// e.g. "needs scope chat:write, which is not granted".
	Denied map[string]string
	// Rules are the manifest's network rules whose host is granted.
	Rules []manifest.Rule
	// Credentials maps each filled credential slot to what fills it (a secret reference, or an
	// OAuth client whose fields the slot's kind needs, all checked).
	Credentials map[string]manifest.CredentialGrant
	// Config holds the manifest's config defaults overridden by the grant's values. A key with
	// neither a non-empty default nor a grant value is absent.
	Config map[string]string
	// PrivateTargets are the prefixes the connector may dial although private.
	PrivateTargets []netip.Prefix
	// Upstreams maps a canonical origin (scheme://host:port, as manifest.ParseOrigin returns)
	// that the policy allows to the canonical origin actually dialed.
	Upstreams map[string]string
	// Limits are the manifest's limits, tightened by the grant.
	Limits manifest.Limits
	// Confirm holds the tools that need a human's approval for every call: those the manifest
	// annotates destructive or needs_confirmation, those the grant lists under confirm, and
	// those that may run a granted write database function (tools[].uses.database).
	Confirm map[string]bool
	// Functions are the granted database functions, keyed by name (pointers into the
	// manifest); a write function is listed only when the grant allows writes.
	Functions map[string]*manifest.DBFunction
	// DSN is the secret reference of the database, "" when none is granted.
	DSN string
	// Quotas are the grant's call quotas, nil for none.
	Quotas *manifest.Quotas
	// OAuth holds the OAuth section of each filled slot whose endpoints the grant moved (a
	// Salesforce login_host: sandbox or My Domain), to be used instead of the manifest's.
	OAuth map[string]*manifest.OAuth
	// Screening is how tool results are screened: the grant's section with its defaults
	// applied (action label, the default detectors); LinkHosts holds the granted network
	// rules' hosts followed by the grant's link_hosts.
	Screening manifest.Screening
}

// NeedsConfirmation reports whether every call of tool needs a human's approval.
func (p *Policy) NeedsConfirmation(tool string) bool { return p.Confirm[tool] }

// Callable reports whether the tool called name may be called, and if not, why.
func (p *Policy) Callable(name string) (*manifest.Tool, string) {
	if t, ok := p.Tools[name]; ok {
		return t, ""
	}
	if reason, ok := p.Denied[name]; ok {
		return nil, reason
	}
	return nil, fmt.Sprintf("there is no tool %q", name)
}

// knownKinds are the credential kinds this host can inject.
var knownKinds = map[string]bool{
	manifest.KindBearer:                  true,
	manifest.KindAPIKey:                  true,
	manifest.KindBasic:                   true,
	manifest.KindOAuth2ClientCredentials: true,
	manifest.KindOAuth2AuthorizationCode: true,
	manifest.KindOAuth2JWTBearer:         true,
}

// checkCredential returns what is wrong with cg as the filling of slot c, or "".
func checkCredential(c *manifest.Credential, cg manifest.CredentialGrant) string {
	need := func(have bool, field string) string {
		if !have {
			return fmt.Sprintf("kind %s needs %s", c.Kind, field)
		}
		return ""
	}
	only := func(allowed ...string) string {
		for field, v := range map[string]string{"secret reference": cg.Secret, "client_id": cg.ClientID, "client_secret": cg.ClientSecret, "private_key": cg.PrivateKey, "username": cg.Username} {
			if v != "" && !slices.Contains(allowed, field) {
				return fmt.Sprintf("kind %s does not use %s: remove it (it uses %s)", c.Kind, field, strings.Join(allowed, ", "))
			}
		}
		return ""
	}
	var msgs []string
	add := func(m string) {
		if m != "" {
			msgs = append(msgs, m)
		}
	}
	switch c.Kind {
	case manifest.KindBearer, manifest.KindAPIKey, manifest.KindBasic:
		add(need(cg.Secret != "", "a secret reference such as env:NAME (write the reference as a plain string)"))
		add(only("secret reference"))
	case manifest.KindOAuth2ClientCredentials:
		add(need(cg.ClientID != "", "client_id"))
		add(need(cg.ClientSecret != "", "client_secret (a secret reference)"))
		add(only("client_id", "client_secret"))
	case manifest.KindOAuth2AuthorizationCode:
		add(need(cg.ClientID != "", "client_id"))
		add(only("client_id", "client_secret"))
	case manifest.KindOAuth2JWTBearer:
		add(need(cg.ClientID != "", "client_id"))
		add(need(cg.PrivateKey != "", "private_key (a secret reference to a PEM key)"))
		add(need(cg.Username != "", "username"))
		add(only("client_id", "private_key", "username"))
	}
	return strings.Join(msgs, "; ")
}

// Effective intersects m and g. It refuses (with every problem found, joined) a grant for
// another connector, one that names tools, scopes, hosts, credential slots or config keys m does
// not declare, limits looser than m's, or malformed private targets or upstreams.
func Effective(m *manifest.Manifest, g *manifest.Grant) (*Policy, error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if g.Connector != m.Name {
		return nil, fmt.Errorf("grant is for connector %q, not %q", g.Connector, m.Name)
	}

	// Declared names.
	var toolNames, scopes, hosts []string
	for _, t := range m.Tools {
		toolNames = append(toolNames, t.Name)
		scopes = append(scopes, t.Scopes...)
	}
	for _, r := range m.Network {
		hosts = append(hosts, r.Host)
	}
	scopes, hosts = uniqueSorted(scopes), uniqueSorted(hosts)

	grantedTools := set(g.Tools)
	grantedScopes := set(g.Scopes)
	grantedHosts := set(g.Hosts)
	check := func(what string, granted, declared []string) {
		for _, name := range granted {
			if name != manifest.All && !slices.Contains(declared, name) {
				fail("grant names %s %q, which manifest %s does not declare (declared: %s)", what, name, m.Name, list(declared))
			}
		}
	}
	check("tool", g.Tools, toolNames)
	check("scope", g.Scopes, scopes)
	check("host", g.Hosts, hosts)

	p := &Policy{
		Tools:       map[string]*manifest.Tool{},
		Denied:      map[string]string{},
		Credentials: map[string]manifest.CredentialGrant{},
		Config:      map[string]string{},
		Upstreams:   map[string]string{},
		Confirm:     map[string]bool{},
		Functions:   map[string]*manifest.DBFunction{},
		Quotas:      g.Quotas,
		OAuth:       map[string]*manifest.OAuth{},
	}
	check("tool", g.Confirm, toolNames)

	// Database functions: granted, and writes only when allowed.
	if g.Database != nil {
		if m.Database == nil {
			fail("grant has a database section, but manifest %s declares no database functions: remove it", m.Name)
		} else {
			var fnames []string
			for _, f := range m.Database.Functions {
				fnames = append(fnames, f.Name)
			}
			check("database function", g.Database.Functions, fnames)
			granted := set(g.Database.Functions)
			for i := range m.Database.Functions {
				f := &m.Database.Functions[i]
				if granted.has(f.Name) && (f.ReadOnly || g.Database.AllowWrites) {
					p.Functions[f.Name] = f
				}
			}
			p.DSN = g.Database.DSN
		}
	}

	// Tools: granted and every scope granted.
	for i := range m.Tools {
		t := &m.Tools[i]
		if !grantedTools.has(t.Name) {
			p.Denied[t.Name] = fmt.Sprintf("tool %s.%s is not granted; an admin must grant it", m.Name, t.Name)
			continue
		}
		if t.Function != "" {
			f, _ := m.Function(t.Function)
			if _, ok := p.Functions[t.Function]; !ok {
				if f != nil && !f.ReadOnly && g.Database != nil && set(g.Database.Functions).has(f.Name) {
					p.Denied[t.Name] = fmt.Sprintf("runs database function %s, which writes; the grant does not allow writes (an admin must set database.allow_writes)", t.Function)
				} else {
					p.Denied[t.Name] = fmt.Sprintf("runs database function %s, which is not granted; an admin must grant it", t.Function)
				}
				continue
			}
			if !f.ReadOnly {
				p.Confirm[t.Name] = true
			}
		}
		if t.Annotations.Destructive || t.Annotations.NeedsConfirmation || slices.Contains(g.Confirm, t.Name) {
			p.Confirm[t.Name] = true
		}
		var missing []string
		for _, s := range t.Scopes {
			if !grantedScopes.has(s) {
				missing = append(missing, s)
			}
		}
		switch len(missing) {
		case 0:
			p.Tools[t.Name] = t
		case 1:
			p.Denied[t.Name] = fmt.Sprintf("needs scope %s, which is not granted; an admin must grant it", missing[0])
		default:
			p.Denied[t.Name] = fmt.Sprintf("needs scopes %s, which are not granted; an admin must grant them", strings.Join(missing, ", "))
		}
	}

	confirmWrites(p)

	// Network rules, with the grant's tighter rates.
	for _, r := range m.Network {
		if grantedHosts.has(r.Host) {
			r.Methods = slices.Clone(r.Methods)
			p.Rules = append(p.Rules, r)
		}
	}
	for i, o := range g.RateLimits {
		matched := false
		for j := range p.Rules {
			r := &p.Rules[j]
			if !o.Matches(*r) {
				continue
			}
			matched = true
			if r.RateLimit != nil && o.PerSecond > r.RateLimit.PerSecond {
				fail("rate_limits[%d]: %g per second is looser than the manifest's %g for %s%s; a grant may only tighten rates", i, o.PerSecond, r.RateLimit.PerSecond, r.Host, r.PathPrefix)
				continue
			}
			r.RateLimit = &manifest.RateLimit{PerSecond: o.PerSecond, Burst: o.Burst}
		}
		if !matched {
			fail("rate_limits[%d]: no granted network rule has host %q%s (write host and path_prefix as the manifest does)", i, o.Host, map[bool]string{true: " and path_prefix " + strconv.Quote(o.PathPrefix)}[o.PathPrefix != ""])
		}
	}

	// Credentials.
	var slots []string
	for _, c := range m.Credentials {
		slots = append(slots, c.Name)
	}
	for _, slot := range sortedKeys(g.Credentials) {
		c, ok := m.Credential(slot)
		if !ok {
			fail("grant fills credential slot %q, which manifest %s does not declare (declared: %s)", slot, m.Name, list(slots))
			continue
		}
		if !knownKinds[c.Kind] {
			continue // a kind this host cannot inject: the slot stays empty
		}
		if msg := checkCredential(c, g.Credentials[slot]); msg != "" {
			fail("credentials.%s: %s", slot, msg)
			continue
		}
		p.Credentials[slot] = g.Credentials[slot]
	}

	// Config.
	var keys []string
	for _, k := range m.Config {
		keys = append(keys, k.Name)
		if k.Default != "" {
			p.Config[k.Name] = k.Default
		}
	}
	for _, k := range sortedKeys(g.Config) {
		if !slices.Contains(keys, k) {
			fail("grant sets config key %q, which manifest %s does not declare (declared: %s)", k, m.Name, list(keys))
			continue
		}
		p.Config[k] = g.Config[k]
	}
	errs = append(errs, configValues(m, p)...)

	errs = append(errs, salesforceEndpoints(m, p)...)

	// Private targets.
	for _, t := range g.PrivateTargets {
		prefix, err := manifest.ParsePrefix(t)
		if err != nil {
			fail("private_targets: %v", err)
			continue
		}
		p.PrivateTargets = append(p.PrivateTargets, prefix)
	}

	// Upstreams: the left side must be an origin the policy allows.
	for _, from := range sortedKeys(g.Upstreams) {
		origin, err := manifest.ParseOrigin(from)
		if err != nil {
			fail("upstreams: %v", err)
			continue
		}
		to, err := manifest.ParseOrigin(g.Upstreams[from])
		if err != nil {
			fail("upstreams[%q]: %v", from, err)
			continue
		}
		if !allowsOrigin(p.Rules, origin) && !endpointOrigin(m, p, origin) {
			fail("upstreams: %q is not an origin the granted network rules allow, nor a filled OAuth slot's token or authorization endpoint (scheme, host and port must match)", from)
			continue
		}
		p.Upstreams[origin] = to
	}

	errs = append(errs, screening(p, g.Screening)...)

	// Limits.
	limits, lerrs := tighten(m.Limits.WithDefaults(), g.Limits)
	errs = append(errs, lerrs...)
	p.Limits = limits

	if len(errs) > 0 {
		return nil, fmt.Errorf("grant for %s: %w", m.Name, errors.Join(errs...))
	}
	return p, nil
}

// endpointOrigin reports whether a canonical origin is the token or authorization endpoint of
// a filled OAuth slot (as the grant may have moved it).
func endpointOrigin(m *manifest.Manifest, p *Policy, origin string) bool {
	for _, c := range m.Credentials {
		if _, ok := p.Credentials[c.Name]; !ok || c.OAuth == nil {
			continue
		}
		o := c.OAuth
		if moved, ok := p.OAuth[c.Name]; ok {
			o = moved
		}
		for _, u := range []string{o.TokenURL, o.AuthorizeURL} {
			if u == "" {
				continue
			}
			pu, err := url.Parse(u)
			if err != nil {
				continue
			}
			if o, err := manifest.ParseOrigin(pu.Scheme + "://" + pu.Host); err == nil && o == origin {
				return true
			}
		}
	}
	return false
}

// allowsOrigin reports whether a canonical origin scheme://host:port matches a rule.
func allowsOrigin(rules []manifest.Rule, origin string) bool {
	scheme, rest, _ := strings.Cut(origin, "://")
	i := strings.LastIndex(rest, ":")
	host, port := strings.Trim(rest[:i], "[]"), rest[i+1:]
	for _, r := range rules {
		if r.Scheme == scheme && fmt.Sprint(r.Port) == port && r.MatchHost(host) {
			return true
		}
	}
	return false
}

// tighten returns the manifest limits m lowered by the grant's non-zero limits g, with an error
// for each grant limit that is looser than the manifest's.
func tighten(m, g manifest.Limits) (manifest.Limits, []error) {
	var errs []error
	out := m
	for _, f := range []struct {
		name     string
		have     int
		override int
		dst      *int
	}{
		{"memory_mb", m.MemoryMB, g.MemoryMB, &out.MemoryMB},
		{"timeout_ms", m.TimeoutMS, g.TimeoutMS, &out.TimeoutMS},
		{"max_input_bytes", m.MaxInputBytes, g.MaxInputBytes, &out.MaxInputBytes},
		{"max_output_bytes", m.MaxOutputBytes, g.MaxOutputBytes, &out.MaxOutputBytes},
		{"max_response_bytes", m.MaxResponseBytes, g.MaxResponseBytes, &out.MaxResponseBytes},
		{"max_requests", m.MaxRequests, g.MaxRequests, &out.MaxRequests},
	} {
		switch {
		case f.override == 0:
		case f.override < 0:
			errs = append(errs, fmt.Errorf("limits.%s: %d must be positive", f.name, f.override))
		case f.override > f.have:
			errs = append(errs, fmt.Errorf("limits.%s: %d is looser than the manifest's %d; a grant may only tighten limits", f.name, f.override, f.have))
		default:
			*f.dst = f.override
		}
	}
	return out, errs
}

type nameSet struct {
	all   bool
	names map[string]bool
}

func set(names []string) nameSet {
	s := nameSet{names: map[string]bool{}}
	for _, n := range names {
		if n == manifest.All {
			s.all = true
		}
		s.names[n] = true
	}
	return s
}

func (s nameSet) has(name string) bool { return s.all || s.names[name] }

func uniqueSorted(ss []string) []string {
	ss = slices.Clone(ss)
	sort.Strings(ss)
	return slices.Compact(ss)
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
