package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
)

func runProfile(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "profile", `
Usage: airlock profile list [--json]
       airlock profile show NAME [--history] [--json]
       airlock profile set NAME [--member AGENT]… [--remove-member AGENT]… [--allow TOOL]…
                                [--subject S]… [--per-agent CALLS/PERIOD] [--per-tool CALLS/PERIOD] [--replace]
       airlock profile allow NAME TOOL… [--subject S]…
       airlock profile deny NAME TOOL… [--subject S]…
       airlock profile delete NAME

An agent profile narrows what its members — agents, by the name of their token ('airlock agent
list') — may see and call: a call runs only if the manifest declares it, the grant allows it AND
the member's profile allows it. tools/list shows each agent only its own tools, and a refused
call says which profile refused it. A profile with several members is a group; an agent is a
member of one profile at most. An agent in no profile gets every granted tool, unless the server
runs with --require-profiles (then it gets none).

Tools are connector.tool patterns: a tool (slack.post_message), a glob (slack.list_*: * is any
run of characters, ? one), a connector's name for all its tools (slack), or * for every granted
tool. 'deny' removes a pattern exactly as it was allowed.

--subject lists subjects (tenants) the members may act for besides their token's own: over MCP
HTTP a member selects one per request with the X-Airlock-Subject header. Tool arguments never
select a subject.

--per-agent bounds each member's calls to all its tools, --per-tool each tool's calls from all
members together, as CALLS/PERIOD (100/1m, 5000/24h; 0 removes the quota).

'set' creates the profile or changes it: --member, --allow and --subject add to its lists
(--replace starts from an empty profile). Every change is versioned, audited with its difference
and who made it ($AIRLOCK_ADMIN or your user name; through --server, the admin token's name),
and applies at once to a server on this state (connected MCP clients get
notifications/tools/list_changed). Reading profiles needs a viewer's token, changing them a
granter's.`+serverHelp, `
  airlock profile set support --member support-bot --allow zendesk --allow slack.post_message
  airlock profile set reporting --member report-bot --member audit-bot --allow 'warehouse.query_*' --per-agent 100/1h
  airlock profile allow support slack.list_channels
  airlock profile allow support --subject globex        # support-bot may send X-Airlock-Subject: globex
  airlock profile deny support slack.post_message
  airlock profile show support --history`)
	g.register(fs)
	g.registerServer(fs)
	var members, removeMembers, allow, subjects listFlag
	fs.Var(&members, "member", "set: add this agent (token name) to the profile; repeatable")
	fs.Var(&removeMembers, "remove-member", "set: remove this agent from the profile; repeatable")
	fs.Var(&allow, "allow", "set: allow this tool pattern (connector.tool, a glob, a connector, or *); repeatable")
	fs.Var(&subjects, "subject", "set, allow, deny: a subject the members may act for besides their token's; repeatable")
	perAgent := fs.String("per-agent", "", "set: each member's calls to all its tools, as `CALLS/PERIOD` (100/1m; 0 removes it)")
	perTool := fs.String("per-tool", "", "set: each tool's calls from all members together, as `CALLS/PERIOD`")
	replace := fs.Bool("replace", false, "set: start from an empty profile instead of the current one")
	history := fs.Bool("history", false, "show: every version of the profile")
	asJSON := fs.Bool("json", false, "list, show: print JSON")
	note := fs.String("note", "", "a note kept in the profile's history (a ticket, a reason)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("say what to do: list, show, set, allow, deny or delete")
	}
	verb, name, tools := fs.Arg(0), fs.Arg(1), fs.Args()[min(2, fs.NArg()):]
	if len(tools) > 0 && verb != "allow" && verb != "deny" || verb == "list" && name != "" {
		return usagef("unexpected arguments %q", fs.Args()[1:])
	}
	if verb != "list" && name == "" {
		return usagef("name the profile: airlock profile %s NAME", verb)
	}
	g.mayCreateKey = true // changes are audited keyed: a fresh embedded state gets its master key
	var a profileAPI
	c, err := g.remote()
	if err != nil {
		return err
	}
	if c != nil {
		a = remoteProfiles{c}
	} else {
		ad, err := g.openAdmin(ctx, e)
		if err != nil {
			return err
		}
		defer ad.Store().Close()
		a = localProfiles{ad}
	}
	switch verb {
	case "list":
		list, err := a.Profiles(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e, list)
		}
		if len(list) == 0 {
			fmt.Fprintln(e.stdout, "No profiles: every agent gets every granted tool (unless the server runs with --require-profiles). Add one with 'airlock profile set NAME --member AGENT --allow TOOL'.")
			return nil
		}
		return printProfiles(e, list)
	case "show":
		var list []admin.ProfileView
		if *history {
			list, err = a.ProfileHistory(ctx, name)
		} else {
			var v admin.ProfileView
			v, err = a.Profile(ctx, name)
			list = []admin.ProfileView{v}
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e, list)
		}
		return printProfiles(e, list)
	case "delete":
		if err := a.DeleteProfile(ctx, name, *note); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Deleted profile %s: its members are in no profile any more.\n", name)
		return nil
	case "set", "allow", "deny":
	default:
		return usagef("unknown profile command %q: use list, show, set, allow, deny or delete", verb)
	}

	p := host.Profile{Name: name}
	cur, err := a.Profile(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if verb != "set" {
			return fmt.Errorf("profile %s does not exist: create it with 'airlock profile set %s --member AGENT --allow TOOL'", name, name)
		}
	case err != nil:
		return err
	case verb != "set" || !*replace:
		p = cur.Profile
	}
	switch verb {
	case "set":
		if len(tools) > 0 {
			return usagef("set takes tools with --allow TOOL")
		}
		p.Members = append(p.Members, members...)
		p.Members = slices.DeleteFunc(p.Members, func(m string) bool { return slices.Contains(removeMembers, m) })
		p.Tools = append(p.Tools, allow...)
		p.Subjects = append(p.Subjects, subjects...)
		if p.Quotas, err = setQuota(p.Quotas, *perAgent, *perTool); err != nil {
			return err
		}
	case "allow":
		if len(tools) == 0 && len(subjects) == 0 {
			return usagef("name what to allow: airlock profile allow %s TOOL… [--subject S]", name)
		}
		p.Tools = append(p.Tools, tools...)
		p.Subjects = append(p.Subjects, subjects...)
	case "deny":
		if len(tools) == 0 && len(subjects) == 0 {
			return usagef("name what to deny: airlock profile deny %s TOOL… [--subject S]", name)
		}
		check := host.Profile{Tools: slices.Clone(tools)}
		check.Check() // normalise the patterns as they were stored (slack → slack.*)
		for _, t := range check.Tools {
			if !slices.Contains(p.Tools, t) {
				if p.Allows(t) {
					return fmt.Errorf("profile %s allows %s through a wider pattern (%s): deny that pattern and allow the tools you want one by one", name, t, strings.Join(p.Tools, ", "))
				}
				return fmt.Errorf("profile %s does not allow %s", name, t)
			}
		}
		for _, s := range subjects {
			if !slices.Contains(p.Subjects, s) {
				return fmt.Errorf("profile %s does not list subject %s", name, s)
			}
		}
		p.Tools = slices.DeleteFunc(p.Tools, func(t string) bool { return slices.Contains(check.Tools, t) })
		p.Subjects = slices.DeleteFunc(p.Subjects, func(s string) bool { return slices.Contains(subjects, s) })
	}
	if verb != "set" && (len(members) > 0 || len(removeMembers) > 0 || len(allow) > 0 || *perAgent != "" || *perTool != "" || *replace) {
		return usagef("--member, --remove-member, --allow, --per-agent, --per-tool and --replace go with 'set'")
	}
	v, err := a.SetProfile(ctx, p, *note)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Profile %s is now version %d (by %s):\n", name, v.Version, v.Admin)
	return printProfiles(e, []admin.ProfileView{v})
}

// setQuota applies --per-agent and --per-tool (CALLS/PERIOD; "" keeps, 0 removes) to q.
func setQuota(q *manifest.Quotas, perAgent, perTool string) (*manifest.Quotas, error) {
	if perAgent == "" && perTool == "" {
		return q, nil
	}
	out := manifest.Quotas{}
	if q != nil {
		out = *q
	}
	for _, f := range []struct {
		flag, v string
		dst     **manifest.Quota
	}{{"per-agent", perAgent, &out.PerAgent}, {"per-tool", perTool, &out.PerTool}} {
		if f.v == "" {
			continue
		}
		if f.v == "0" {
			*f.dst = nil
			continue
		}
		calls, period, ok := strings.Cut(f.v, "/")
		n, err := strconv.Atoi(calls)
		d, derr := time.ParseDuration(period)
		if !ok || err != nil || derr != nil || n <= 0 || d < time.Second || d%time.Second != 0 {
			return nil, usagef("--%s %q: write CALLS/PERIOD with a whole number of seconds, such as 100/1m or 5000/24h (0 removes the quota)", f.flag, f.v)
		}
		*f.dst = &manifest.Quota{Calls: n, PeriodS: int(d / time.Second)}
	}
	if out.PerAgent == nil && out.PerTool == nil {
		return nil, nil
	}
	return &out, nil
}

func printProfiles(e *env, list []admin.ProfileView) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROFILE\tVERSION\tMEMBERS\tTOOLS\tSUBJECTS\tQUOTAS\tBY\tWHEN")
	dash := func(l []string) string {
		if len(l) == 0 {
			return "-"
		}
		return strings.Join(l, ",")
	}
	for _, v := range list {
		if v.Deleted {
			fmt.Fprintf(tw, "%s\t%d\t(deleted)\t\t\t\t%s\t%s\n", v.Name, v.Version, v.Admin, v.Created.Format(time.RFC3339))
			continue
		}
		quotas := "-"
		if q := v.Quotas; q != nil {
			var parts []string
			if q.PerAgent != nil {
				parts = append(parts, fmt.Sprintf("per agent %d/%s", q.PerAgent.Calls, q.PerAgent.Period()))
			}
			if q.PerTool != nil {
				parts = append(parts, fmt.Sprintf("per tool %d/%s", q.PerTool.Calls, q.PerTool.Period()))
			}
			quotas = strings.Join(parts, ", ")
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.Version, dash(v.Members), dash(v.Tools), dash(v.Subjects), quotas, v.Admin, v.Created.Format(time.RFC3339))
	}
	return tw.Flush()
}

// profileAPI is what 'airlock profile' does, on the state store or through a server's admin API
// (--server, where the server checks the admin token's role).
type profileAPI interface {
	Profiles(ctx context.Context) ([]admin.ProfileView, error)
	Profile(ctx context.Context, name string) (admin.ProfileView, error)
	ProfileHistory(ctx context.Context, name string) ([]admin.ProfileView, error)
	SetProfile(ctx context.Context, p host.Profile, note string) (admin.ProfileView, error)
	DeleteProfile(ctx context.Context, name, note string) error
}

// localProfiles works on the state store, as the admin adminName() names.
type localProfiles struct{ *admin.Admin }

func (l localProfiles) SetProfile(ctx context.Context, p host.Profile, note string) (admin.ProfileView, error) {
	if _, err := l.Admin.SetProfile(ctx, p, adminName(), note); err != nil {
		return admin.ProfileView{}, err
	}
	return l.Admin.Profile(ctx, p.Name)
}

func (l localProfiles) DeleteProfile(ctx context.Context, name, note string) error {
	return l.Admin.DeleteProfile(ctx, name, adminName(), note)
}

// remoteProfiles goes through /admin/v1/profiles; the server records the token's admin.
type remoteProfiles struct{ c *adminClient }

func (r remoteProfiles) Profiles(ctx context.Context) (list []admin.ProfileView, err error) {
	return list, r.c.do(ctx, "GET", "profiles", nil, &list)
}

func (r remoteProfiles) Profile(ctx context.Context, name string) (v admin.ProfileView, err error) {
	return v, notFoundFrom(r.c.do(ctx, "GET", "profiles/"+url.PathEscape(name), nil, &v))
}

func (r remoteProfiles) ProfileHistory(ctx context.Context, name string) (list []admin.ProfileView, err error) {
	return list, r.c.do(ctx, "GET", "profiles/"+url.PathEscape(name)+"?history=1", nil, &list)
}

func (r remoteProfiles) SetProfile(ctx context.Context, p host.Profile, note string) (v admin.ProfileView, err error) {
	name := p.Name
	p.Name = "" // the path names it
	return v, r.c.do(ctx, "PUT", "profiles/"+url.PathEscape(name)+"?note="+url.QueryEscape(note), p, &v)
}

func (r remoteProfiles) DeleteProfile(ctx context.Context, name, note string) error {
	return r.c.do(ctx, "DELETE", "profiles/"+url.PathEscape(name)+"?note="+url.QueryEscape(note), nil, nil)
}

// notFoundFrom makes a server's 404 wrap store.ErrNotFound, as the store's own answer does.
func notFoundFrom(err error) error {
	var se *serverError
	if errors.As(err, &se) && se.status == http.StatusNotFound {
		return fmt.Errorf("%s: %w", se.msg, store.ErrNotFound)
	}
	return err
}
