package host

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/internal/quota"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
)

// Profile restricts what its member agents may use, on top of the grants: the effective
// permission of a call is manifest ∩ grant ∩ profile. An agent is a member of at most one
// profile; a profile with several members is a group. Profiles live in the state store
// (package admin, `airlock profile`) and reach the host through [Host.SetProfiles].
type Profile struct {
	// Name names the profile in refusals and the audit trail: 1 to 64 letters, digits, '_', '.'
	// or '-', starting with a letter or digit.
	Name string `json:"name"`
	// Members are the names of the agent tokens the profile applies to (`airlock agent add
	// NAME`; over stdio, the --agent name).
	Members []string `json:"members"`
	// Tools are the tools the members may see and call, as connector.tool patterns: a tool name
	// (slack.post_message), a glob where * matches any run of characters and ? one character
	// (slack.list_*), a connector's name alone for all its tools (slack, the same as slack.*),
	// or * for every granted tool. Empty: no tool at all.
	Tools []string `json:"tools"`
	// Subjects are the subjects (tenants) the members may act for besides the one their token
	// carries, by exact name. A member selects one per request with the X-Airlock-Subject header
	// over MCP HTTP (host.CallRequest.ActAs for embedders); tool arguments never select one.
	// Empty: only the token's own subject.
	Subjects []string `json:"subjects,omitempty"`
	// Quotas bound the members' calls: per_agent is each member's calls to all its tools,
	// per_tool each tool's calls from all members together ({calls, period_s}, as in a grant).
	// Nil: none beyond the grants' quotas.
	Quotas *manifest.Quotas `json:"quotas,omitempty"`
}

var (
	profileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	toolPattern = regexp.MustCompile(`^[A-Za-z0-9_*?-]+(\.[A-Za-z0-9_*?.-]+)?$`)
)

// Check reports what is wrong with p, in terms an admin can act on. It normalises the tool
// patterns (a bare connector name becomes connector.*) and sorts and de-duplicates the lists.
func (p *Profile) Check() error {
	var errs []error
	if !profileName.MatchString(p.Name) {
		errs = append(errs, fmt.Errorf("profile name %q: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", p.Name))
	}
	for _, m := range p.Members {
		if !profileName.MatchString(m) {
			errs = append(errs, fmt.Errorf("member %q is not an agent name (see `airlock agent list`)", m))
		}
	}
	for i, t := range p.Tools {
		if !strings.Contains(t, ".") && t != "*" {
			t += ".*"
			p.Tools[i] = t
		}
		if _, err := path.Match(t, ""); err != nil || !toolPattern.MatchString(t) {
			errs = append(errs, fmt.Errorf("tool pattern %q: write connector.tool, a glob such as slack.list_*, a connector name, or *", t))
		}
	}
	for _, s := range p.Subjects {
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '*' }) || len(s) > 200 {
			errs = append(errs, fmt.Errorf("subject %q: give a subject's exact name (no wildcards)", s))
		}
	}
	if q := p.Quotas; q != nil {
		for _, x := range []struct {
			name string
			q    *manifest.Quota
		}{{"per_agent", q.PerAgent}, {"per_tool", q.PerTool}} {
			if x.q != nil && (x.q.Calls < 0 || (x.q.Calls > 0 && x.q.PeriodS <= 0)) {
				errs = append(errs, fmt.Errorf("quotas.%s: give a positive number of calls and a positive period_s", x.name))
			}
		}
	}
	for _, l := range []*[]string{&p.Members, &p.Tools, &p.Subjects} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	return errors.Join(errs...)
}

// Allows reports whether the profile lets its members use tool (connector.tool).
func (p *Profile) Allows(tool string) bool {
	for _, pat := range p.Tools {
		if ok, _ := path.Match(pat, tool); ok {
			return true
		}
	}
	return false
}

// activeProfile is a profile as the host applies it.
type activeProfile struct {
	p     Profile
	quota *quota.Gate // nil without quotas
	// refused, when set, refuses every call of the members: the profile could not be applied
	// (fail closed), or the agent is a member of several profiles.
	refused string
}

// profiles is the host's set of profiles by member. Immutable once built; replaced as a whole.
type profiles struct {
	byAgent map[string]*activeProfile
	list    []Profile
	gen     uint64 // counts the changes, so an MCP server knows its clients' lists may differ
}

// SetProfiles replaces the host's agent profiles (nil: none, every agent keeps what the
// grants allow, unless Config.RequireProfiles). It takes effect for every call that starts
// after it returns; OnToolsChanged is called when something changed, so an MCP server tells
// its clients their tool lists changed. A profile that does not check, and an agent named in
// several profiles, fail closed: those agents are refused every call, saying why.
func (h *Host) SetProfiles(ps []Profile) {
	h.loadMu.Lock()
	old := h.profiles.Load()
	next := &profiles{byAgent: map[string]*activeProfile{}}
	if old != nil {
		next.gen = old.gen
	}
	for _, p := range ps {
		p.Members, p.Tools, p.Subjects = slices.Clone(p.Members), slices.Clone(p.Tools), slices.Clone(p.Subjects)
		ap := &activeProfile{p: p}
		if err := ap.p.Check(); err != nil {
			ap.refused = fmt.Sprintf("profile %s cannot be applied (%v); ask an admin to fix it with `airlock profile set %s`", p.Name, err, p.Name)
		} else if ap.quota, err = h.profileQuota(old, &ap.p); err != nil {
			ap.refused = fmt.Sprintf("profile %s cannot be applied (%v); ask an admin to fix its quotas", p.Name, err)
		}
		next.list = append(next.list, ap.p)
		for _, m := range ap.p.Members {
			if other := next.byAgent[m]; other != nil {
				both := &activeProfile{p: Profile{Name: other.p.Name}, refused: fmt.Sprintf(
					"agent %s is a member of profiles %s and %s, and an agent may be in one only; ask an admin to remove it from one (`airlock profile set NAME --member …`)",
					m, other.p.Name, p.Name)}
				next.byAgent[m] = both
				h.logger.Error("an agent is a member of several profiles: its calls are refused", "agent", m, "profiles", []string{other.p.Name, p.Name})
				continue
			}
			next.byAgent[m] = ap
		}
		if ap.refused != "" {
			h.logger.Error("a profile cannot be applied: its members' calls are refused", "profile", p.Name, "why", ap.refused)
		}
	}
	sort.Slice(next.list, func(i, j int) bool { return next.list[i].Name < next.list[j].Name })
	changed := old == nil && len(ps) > 0 || old != nil && !profilesEqual(old.list, next.list)
	if changed {
		next.gen++
	}
	h.profiles.Store(next)
	h.loadMu.Unlock()
	if changed && h.cfg.OnToolsChanged != nil {
		h.cfg.OnToolsChanged()
	}
}

// profileQuota returns the quota gate of p: the previous one when its quotas did not change
// (so a re-read of the store does not refill the buckets), a new one otherwise.
func (h *Host) profileQuota(old *profiles, p *Profile) (*quota.Gate, error) {
	q := p.Quotas
	if q == nil || (q.PerAgent == nil || q.PerAgent.Calls == 0) && (q.PerTool == nil || q.PerTool.Calls == 0) {
		return nil, nil
	}
	if old != nil {
		for _, ap := range old.byAgent {
			if ap.p.Name == p.Name && ap.quota != nil && quotasEqual(ap.p.Quotas, q) {
				return ap.quota, nil
			}
		}
	}
	return h.quotaGate(q, "the profile "+p.Name)
}

// quotaGate returns the gate of quotas q (a grant's or a profile's), shared through Redis when
// the host has it; scope names what per_agent counts in refusals ("": the connector).
func (h *Host) quotaGate(q *manifest.Quotas, scope string) (*quota.Gate, error) {
	qc := quota.Config{LocalShare: h.cfg.LocalShare, Scope: scope}
	if q.PerAgent != nil {
		qc.PerAgent = quota.Quota{Calls: q.PerAgent.Calls, Period: q.PerAgent.Period()}
	}
	if q.PerTool != nil {
		qc.PerTool = quota.Quota{Calls: q.PerTool.Calls, Period: q.PerTool.Period()}
	}
	if h.shared != nil {
		qc.Shared = h.shared
	}
	return quota.New(qc)
}

func quotasEqual(a, b *manifest.Quotas) bool {
	eq := func(x, y *manifest.Quota) bool { return x == nil && y == nil || x != nil && y != nil && *x == *y }
	return a == nil && b == nil || a != nil && b != nil && eq(a.PerAgent, b.PerAgent) && eq(a.PerTool, b.PerTool)
}

func profilesEqual(a, b []Profile) bool {
	return slices.EqualFunc(a, b, func(x, y Profile) bool {
		return x.Name == y.Name && slices.Equal(x.Members, y.Members) && slices.Equal(x.Tools, y.Tools) &&
			slices.Equal(x.Subjects, y.Subjects) && quotasEqual(x.Quotas, y.Quotas)
	})
}

// Profiles returns the profiles SetProfiles set, sorted by name.
func (h *Host) Profiles() []Profile {
	ps := h.profiles.Load()
	if ps == nil {
		return nil
	}
	return slices.Clone(ps.list)
}

// ProfilesGeneration counts the changes SetProfiles made; an MCP server compares it to tell
// its clients to list their tools again.
func (h *Host) ProfilesGeneration() uint64 {
	if ps := h.profiles.Load(); ps != nil {
		return ps.gen
	}
	return 0
}

func (h *Host) profileOf(agent string) *activeProfile {
	if ps := h.profiles.Load(); ps != nil {
		return ps.byAgent[agent]
	}
	return nil
}

// Permits reports whether agent may see and call tool (connector.tool) as far as its profile
// goes (the grant is checked by Tools and Call): always, for an agent in no profile unless
// Config.RequireProfiles is set.
func (h *Host) Permits(agent, tool string) bool {
	if tool == JobStatusTool { // listed to an agent that may call a deferrable tool
		return slices.ContainsFunc(h.Tools(), func(t Tool) bool { return t.Annotations.Deferrable && h.Permits(agent, t.Name) })
	}
	ap := h.profileOf(agent)
	if ap == nil {
		return !h.cfg.RequireProfiles
	}
	return ap.refused == "" && ap.p.Allows(tool)
}

// ToolsFor returns the tools agent may see: [Host.Tools] less what its profile does not allow.
func (h *Host) ToolsFor(agent string) []Tool {
	return slices.DeleteFunc(h.Tools(), func(t Tool) bool { return !h.Permits(agent, t.Name) })
}

// admitProfile is the profile's part of a call, checked before the grant so that an agent
// learns nothing about tools outside its profile: the subject the call acts for, and the tool.
// It sets req.Subject (and the audit event's) to the subject selected.
func (h *Host) admitProfile(req *CallRequest, ev *audit.Event) *ResultError {
	ap := h.profileOf(req.Agent)
	if ap != nil {
		ev.Profile = ap.p.Name
	}
	refuse := func(msg string) *ResultError {
		return &ResultError{Code: abi.CodeNotGranted, Category: abi.Fatal, Message: msg}
	}
	if ap != nil && ap.refused != "" {
		return refuse(ap.refused)
	}
	if req.ActAs != "" && req.ActAs != req.Subject {
		switch {
		case ap == nil:
			return refuse(fmt.Sprintf("agent %s may act only for its token's subject %s, not for %s: no profile lets it choose; "+
				"ask an admin: airlock profile set NAME --member %s --subject %s", req.Agent, req.Subject, req.ActAs, req.Agent, req.ActAs))
		case !slices.Contains(ap.p.Subjects, req.ActAs):
			return refuse(fmt.Sprintf("profile %s does not allow acting for subject %s; ask an admin: airlock profile allow %s --subject %s",
				ap.p.Name, req.ActAs, ap.p.Name, req.ActAs))
		}
		req.Subject, ev.Subject = req.ActAs, req.ActAs
	}
	switch {
	case ap == nil && h.cfg.RequireProfiles:
		return refuse(fmt.Sprintf("agent %s is in no profile, and this server gives such agents nothing (--require-profiles); "+
			"ask an admin: airlock profile set NAME --member %s --allow %s", req.Agent, req.Agent, req.Tool))
	case ap == nil:
		return nil
	case !ap.p.Allows(req.Tool):
		return refuse(fmt.Sprintf("profile %s does not allow %s; ask an admin: airlock profile allow %s %s",
			ap.p.Name, req.Tool, ap.p.Name, req.Tool))
	}
	return nil
}

// admitProfileQuota counts the call against the quotas of the agent's profile (step 4 of a
// call, with the grant's quotas), or refuses it saying when to try again.
func (h *Host) admitProfileQuota(ctx context.Context, req *CallRequest, connName, toolName string) *ResultError {
	ap := h.profileOf(req.Agent)
	if ap == nil || ap.quota == nil {
		return nil
	}
	if ok, wait, reason := ap.quota.Admit(ctx, req.Agent, "profile/"+ap.p.Name, req.Tool); !ok {
		h.metrics().QuotaRefused(connName, toolName)
		return &ResultError{Code: abi.CodeRateLimited, Category: abi.Retryable, RetryAfter: wait.Seconds(), Message: reason}
	}
	return nil
}
