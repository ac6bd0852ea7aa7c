package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/user"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
)

// listFlag is a repeatable or comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// mapFlag is a repeatable KEY=VALUE flag.
type mapFlag map[string]string

func (m mapFlag) String() string { return "" }
func (m mapFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: write KEY=VALUE", v)
	}
	m[k] = val
	return nil
}

// adminName is who the CLI records as the admin making a change: $AIRLOCK_ADMIN, else the OS user.
func adminName() string {
	if n := os.Getenv("AIRLOCK_ADMIN"); n != "" {
		return n
	}
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}

func runGrant(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "grant", `
Usage: airlock grant CONNECTOR [--tools T,…] [--scopes S,…] [--hosts H,…] [--credential SLOT=REF]…
                               [--set KEY=VALUE]… [--confirm TOOL,…] [--version V] [--file GRANT.yaml]
                               [--replace] [--dry-run]

Shows what an installed connector asks for — tools (with the scopes each uses), hosts, credential
slots, database functions (with their exact SQL) and limits — then records what you allow as the
connector's grant. Everything not granted is denied; "*" grants all the manifest declares. A tool
whose scopes are not all granted stays unlisted and uncallable.

Flags change the current grant: each of --tools, --scopes, --hosts and --confirm replaces that
list, --credential and --set replace one slot or key; everything else (upstreams, confirm rules,
quotas, limits, the other slots) is kept. --replace starts from an empty grant instead, and
--file from the grant in the file. --dry-run prints the resulting grant and its difference from
the current one, and records nothing.

If a newer version of the connector is pending because it asks for more than the active one (a
new host, scope, tool, slot, function or a looser limit), the difference is shown; granting it
with --version V approves it, and the new version replaces the old one atomically. Without
--version the grant applies to the active version and the upgrade stays pending.

Credentials are references, never values: store:NAME ('airlock secret set NAME' first),
env:NAME, file:PATH, vault:MOUNT/PATH#FIELD, op://VAULT/ITEM/FIELD, doppler:PROJECT/CONFIG/NAME
(the last three need their block in airlock.yaml). A reference that cannot work (no scheme, a store
secret that does not exist) is refused; one this shell cannot resolve (an environment variable
of the server) is recorded with a warning. OAuth slots take a grant file (--file).

A connector configured in airlock.yaml can be granted here too: the store's grant then narrows
the file's (the most restrictive decision wins; 'airlock grants' shows where each part comes
from). The change applies at once to a server sharing this state (within a second) and is kept
with who made it ($AIRLOCK_ADMIN or your user name); 'airlock grants --history' shows every version.`, `
  airlock grant slack --dry-run                               # review what it asks for
  airlock grant slack --tools '*' --scopes '*' --hosts slack.com --credential bot_token=store:slack_bot
  airlock grant slack --version 1.1.0 --tools '*' --dry-run   # an upgrade: the resulting grant and its diff
  airlock grant slack --credential bot_token=store:slack_bot_2   # change one slot, keep the rest
  airlock grant salesforce --file grants/salesforce.yaml --replace`)
	g.register(fs)
	var tools, scopes, hosts, confirm listFlag
	creds, cfg := mapFlag{}, mapFlag{}
	fs.Var(&tools, "tools", "granted tools, comma-separated or repeated; '*' for all (replaces the current list)")
	fs.Var(&scopes, "scopes", "granted OAuth scopes; '*' for all (replaces the current list)")
	fs.Var(&hosts, "hosts", "granted hosts as the manifest writes them; '*' for all (replaces the current list)")
	fs.Var(creds, "credential", "`SLOT=REF`: the secret reference that fills a credential slot (repeatable)")
	fs.Var(cfg, "set", "`KEY=VALUE`: a value for a config key of the manifest (repeatable)")
	fs.Var(&confirm, "confirm", "tools that need a human's approval for every call (replaces the current list)")
	version := fs.String("version", "", "the installed version to grant; naming a pending version approves the upgrade (default: the active version)")
	file := fs.String("file", "", "start from the grant in this YAML `file` (manifests/FORMAT.md) instead of the current grant; the flags change it")
	replace := fs.Bool("replace", false, "start from an empty grant instead of the current one: what the flags say is the whole grant")
	dry := fs.Bool("dry-run", false, "show what the connector asks for, the resulting grant and its difference from the current one; record nothing")
	note := fs.String("note", "", "a note kept in the grant's history (a ticket, a reason)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := atMost(fs, 1, ""); err != nil {
		return err
	}
	name := fs.Arg(0)
	if name == "" {
		return usagef("name the connector: airlock grant CONNECTOR (see 'airlock plugin list')")
	}
	a, err := g.openAdmin(ctx, e)
	if err != nil {
		return err
	}
	st := a.Store()
	defer st.Close()
	asks, diff, err := a.Review(ctx, name, *version)
	if err != nil {
		return err
	}
	printReview(e, asks, diff)
	if len(diff) > 0 && *version == "" {
		fmt.Fprintf(e.stdout, "\nTo approve this upgrade, grant it by version: airlock grant %s --version %s …\n", name, asks.Version)
		if !*dry {
			fmt.Fprintf(e.stdout, "The grant below applies to the active version; %s stays pending.\n", asks.Version)
		}
	}
	cur, err := loadCurrentGrant(ctx, st, g.configured(), name)
	if err != nil {
		return err
	}
	gr := &manifest.Grant{Connector: name}
	switch {
	case *file != "":
		if gr, err = manifest.LoadGrant(*file); err != nil {
			return err
		}
	case !*replace && cur != nil:
		gr = cur.clone()
	}
	patchGrant(gr, grantFlags{tools: tools, scopes: scopes, hosts: hosts, confirm: confirm, creds: creds, config: cfg, set: setFlags(fs)})
	warnings, refErr := a.CheckReferences(ctx, gr)
	if *dry {
		printPlannedGrant(e, cur, gr)
		printReferenceProblems(e, warnings, refErr)
		return nil
	}
	printReferenceProblems(e, warnings, nil)
	if refErr != nil {
		return refErr
	}
	rec, err := a.Grant(ctx, admin.GrantRequest{Connector: name, Version: *version, Grant: gr, Admin: adminName(), Note: *note})
	if err != nil {
		return err
	}
	granted := name + "@" + asks.Version
	if len(diff) > 0 && *version == "" {
		granted = name + " (the active version)"
	}
	fmt.Fprintf(e.stdout, "\nGranted %s (grant version %d, by %s). Tools now callable:", granted, rec.Version, rec.Admin)
	if pol, err := policyTools(asks, gr); err == nil {
		fmt.Fprintf(e.stdout, " %s\n", pol)
	}
	if cur != nil && cur.source == "airlock.yaml" {
		fmt.Fprintf(e.stdout, "%s is also granted in airlock.yaml: the most restrictive of the two applies (see 'airlock grants %s').\n", name, name)
	}
	return nil
}

// policyTools lists the tools a grant makes callable, for the confirmation message.
func policyTools(asks *admin.Asks, gr *manifest.Grant) (string, error) {
	all := func(l []string) bool { return len(l) == 1 && l[0] == manifest.All }
	in := func(l []string, s string) bool {
		for _, x := range l {
			if x == s {
				return true
			}
		}
		return false
	}
	var out []string
	for _, t := range asks.Tools {
		if !all(gr.Tools) && !in(gr.Tools, t.Name) {
			continue
		}
		ok := true
		for _, s := range t.Scopes {
			if !all(gr.Scopes) && !in(gr.Scopes, s) {
				ok = false
			}
		}
		if ok {
			out = append(out, t.Name)
		}
	}
	if len(out) == 0 {
		return "none (grant tools and the scopes they use)", nil
	}
	return strings.Join(out, ", "), nil
}

// recorder returns an Admin that records decisions in st without a host to apply them to,
// logging to the command's stderr at --log-level (not to the process-wide default logger).
func (g *globals) recorder(e *env, st *store.Store) (*admin.Admin, error) {
	logger, err := g.logger(e.stderr)
	if err != nil {
		return nil, err
	}
	a := admin.New(st, nil, logger)
	a.SetConfigured(g.configured())
	return a, nil
}

func printReview(e *env, a *admin.Asks, diff []manifest.Change) {
	w := e.stdout
	signed := "signed by " + a.Publisher
	if a.Unsigned {
		signed = "UNSIGNED (installed with --allow-unsigned)"
	}
	fmt.Fprintf(w, "Connector %s %s — publisher %s, %s, module sha256 %s\n", a.Connector, a.Version, a.Publisher, signed, short(a.Digest))
	if len(diff) > 0 {
		fmt.Fprintf(w, "\nThis version is PENDING: it asks for more than the active version:\n")
		for _, c := range diff {
			fmt.Fprintf(w, "  + %s\n", c)
		}
	}
	fmt.Fprintln(w, "\nTools:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, t := range a.Tools {
		fmt.Fprintf(tw, "  %s\tscopes: %s\t%s\t%s\n", t.Name, orNone(t.Scopes), strings.Join(t.Hints, ", "), firstSentence(t.Description))
	}
	tw.Flush()
	printToolBindings(w, a.Tools)
	fmt.Fprintf(w, "Scopes: %s\n", orNone(a.Scopes))
	fmt.Fprintln(w, "Hosts:")
	for _, h := range a.Hosts {
		fmt.Fprintf(w, "  %s\n", h)
	}
	if len(a.Credentials) > 0 {
		fmt.Fprintln(w, "Credential slots:")
		for _, c := range a.Credentials {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
	if len(a.Config) > 0 {
		fmt.Fprintln(w, "Config keys (a value's rate limits apply whenever the grant sets it):")
		for _, c := range a.Config {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
	if len(a.Functions) > 0 {
		fmt.Fprintln(w, "Database functions (review the SQL):")
		for _, f := range a.Functions {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	l := a.Limits
	fmt.Fprintf(w, "Limits: %d MiB memory, %d ms per call, %d requests per call, %d-byte responses\n", l.MemoryMB, l.TimeoutMS, l.MaxRequests, l.MaxResponseBytes)
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

func runGrants(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "grants", `
Usage: airlock grants [CONNECTOR --history] [--json]

Lists the current grant of every connector recorded in the store, with its version, who made it
and when, then the grant that applies to each connector and where each part of it comes from:
airlock.yaml ("file"), the store ("store"), both ("file ∩ store": only what both allow) or
either ("file ∪ store": confirm rules). A revocation in the store wins over airlock.yaml. With a
connector and --history, lists every version of its grant (revocations included). Through
--server only the store's grants are listed (airlock.yaml is the server's).`+serverHelp, `
  airlock grants
  airlock grants slack --history`)
	g.register(fs)
	g.registerServer(fs)
	history := fs.Bool("history", false, "show every version of CONNECTOR's grant")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := atMost(fs, 1, ""); err != nil {
		return err
	}
	name := fs.Arg(0)
	if *history && name == "" {
		return usagef("--history needs a connector: airlock grants CONNECTOR --history")
	}
	var (
		views []admin.GrantView
		eff   []effectiveGrant
	)
	err := g.withAdmin(ctx, e, func(a *admin.Admin) error {
		st := a.Store()
		list := st.ListGrants
		if *history {
			list = func(ctx context.Context) ([]store.GrantRecord, error) { return st.GrantHistory(ctx, name) }
		}
		recs, err := list(ctx)
		if err != nil {
			return err
		}
		views = admin.GrantViews(recs)
		if *history {
			return nil
		}
		if views = grantsOf(views, name); *asJSON {
			return nil
		}
		eff, err = effectiveGrants(ctx, st, &g, views, name)
		return err
	}, func(c *adminClient) error {
		if *history {
			return c.do(ctx, "GET", "grants/"+url.PathEscape(name)+"/history", nil, &views)
		}
		err := c.do(ctx, "GET", "grants", nil, &views)
		views = grantsOf(views, name)
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e, views)
	}
	if len(views) == 0 && len(eff) == 0 {
		fmt.Fprintln(e.stdout, "No grants. Review and grant a connector with 'airlock grant CONNECTOR'.")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if len(views) > 0 {
		fmt.Fprintln(tw, "CONNECTOR\tVERSION\tBY\tWHEN\tGRANT")
	}
	for _, v := range views {
		summary := "REVOKED"
		if !v.Revoked {
			var gr manifest.Grant
			_ = json.Unmarshal(v.Grant, &gr)
			summary = fmt.Sprintf("tools %s; scopes %s; hosts %s", orNone(gr.Tools), orNone(gr.Scopes), orNone(gr.Hosts))
		}
		if v.Note != "" {
			summary += " (" + v.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", v.Connector, v.Version, v.Admin, v.Created.Local().Format(time.DateTime), summary)
	}
	for _, ef := range eff {
		fmt.Fprintf(tw, "\nIn effect for %s (%s):\n", ef.connector, ef.summary)
		for _, p := range ef.parts {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", p[0], p[1], p[2])
		}
	}
	return tw.Flush()
}

// grantsOf returns the views of connector name, or all of them when name is "".
func grantsOf(views []admin.GrantView, name string) []admin.GrantView {
	if name == "" {
		return views
	}
	var out []admin.GrantView
	for _, v := range views {
		if v.Connector == name {
			out = append(out, v)
		}
	}
	return out
}

// effectiveGrant is the grant that applies to one connector, part by part: key, value, source.
type effectiveGrant struct {
	connector, summary string
	parts              [][3]string
}

// effectiveGrants computes, for every connector the store grants or airlock.yaml configures
// (only name, if given), the grant that applies and where each part comes from.
func effectiveGrants(ctx context.Context, st *store.Store, g *globals, views []admin.GrantView, name string) ([]effectiveGrant, error) {
	cfg, _, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	configured := g.configured()
	names := map[string]bool{}
	for _, v := range views {
		names[v.Connector] = true
	}
	for _, c := range cfg.Connectors {
		if m, err := manifest.Load(c.Manifest); err == nil && (name == "" || m.Name == name) {
			names[m.Name] = true
		}
	}
	var out []effectiveGrant
	for _, n := range slices.Sorted(maps.Keys(names)) {
		fm, fileG, inFile := configured(n)
		var storeG *manifest.Grant
		ef := effectiveGrant{connector: n}
		revoked := false
		for _, v := range views {
			if v.Connector != n {
				continue
			}
			if revoked = v.Revoked; !revoked {
				storeG = &manifest.Grant{}
				if err := json.Unmarshal(v.Grant, storeG); err != nil {
					return nil, fmt.Errorf("connector %s: the stored grant is unreadable: %w", n, err)
				}
			}
		}
		m := fm
		if in, err := st.ActiveInstalled(ctx, n); err == nil {
			if im, err := manifest.Parse(n+".yaml", in.Manifest); err == nil {
				m = im
			}
		}
		switch {
		case revoked:
			ef.summary = "REVOKED in the store; nothing runs, whatever airlock.yaml says"
			out = append(out, ef)
			continue
		case m == nil:
			ef.summary = "granted in the store but neither installed nor in airlock.yaml: nothing runs"
			out = append(out, ef)
			continue
		case inFile && storeG != nil:
			ef.summary = "the most restrictive of airlock.yaml and the store"
		case inFile:
			ef.summary = "from airlock.yaml"
		default:
			ef.summary = "from the store"
		}
		if !inFile {
			fileG = nil
		}
		merged, from := host.MergeGrants(m, fileG, storeG)
		flat := flattenGrant(merged)
		for _, k := range slices.Sorted(maps.Keys(flat)) {
			src := from[k]
			if src == "" {
				src = from[strings.SplitN(k, ".", 2)[0]]
			}
			if src == "" { // credentials.slot.client_secret → credentials.slot
				if i := strings.LastIndex(k, "."); i > 0 {
					src = from[k[:i]]
				}
			}
			ef.parts = append(ef.parts, [3]string{k, flat[k], src})
		}
		out = append(out, ef)
	}
	return out, nil
}

func runRevoke(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "revoke", `
Usage: airlock revoke CONNECTOR [--tools T,…] [--note TEXT]

Withdraws a connector's grant, or only some of its tools. Every new call is refused from the
moment the change is applied (at once on a server that made it through its admin API, within a
second on servers sharing this state); calls already running finish, and every call is audited.
A revoke always takes effect: for a connector configured in airlock.yaml it is recorded in the
store and wins over the file until the connector is granted again ('airlock grant').`+serverHelp, `
  airlock revoke slack
  airlock revoke slack --tools post_message --note "INC-42"`)
	g.register(fs)
	g.registerServer(fs)
	var tools listFlag
	fs.Var(&tools, "tools", "revoke only these tools")
	note := fs.String("note", "", "a note kept in the grant's history")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := atMost(fs, 1, ""); err != nil {
		return err
	}
	name := fs.Arg(0)
	if name == "" {
		return usagef("name the connector: airlock revoke CONNECTOR")
	}
	err := g.withAdmin(ctx, e, func(a *admin.Admin) error {
		return a.Revoke(ctx, name, tools, adminName(), *note)
	}, func(c *adminClient) error {
		q := url.Values{"note": {*note}}
		if len(tools) > 0 {
			q.Set("tools", strings.Join(tools, ","))
		}
		return c.do(ctx, "DELETE", "grants/"+url.PathEscape(name)+"?"+q.Encode(), nil, nil)
	})
	if err != nil {
		return err
	}
	what := "all tools of " + name
	if len(tools) > 0 {
		what = strings.Join(tools, ", ") + " of " + name
	}
	fmt.Fprintf(e.stderr, "Revoked %s.\n", what)
	if _, _, inFile := g.configured()(name); inFile && g.server == "" {
		fmt.Fprintf(e.stderr, "%s is configured in airlock.yaml: the revocation is recorded in the store and wins over the file.\n", name)
	}
	return nil
}

// currentGrant is the grant flags change, with where it comes from.
type currentGrant struct {
	*manifest.Grant
	// source is "the store" or, for a connector only airlock.yaml grants, "airlock.yaml" (then
	// Grant holds the file's permissions only: values and limits stay the file's).
	source     string
	configured bool // airlock.yaml configures the connector too
}

func (c *currentGrant) clone() *manifest.Grant {
	var g manifest.Grant
	b, _ := json.Marshal(c.Grant)
	_ = json.Unmarshal(b, &g)
	return &g
}

// loadCurrentGrant returns the current grant of connector name: the store's unless revoked,
// else the permissions airlock.yaml grants; nil when there is none.
func loadCurrentGrant(ctx context.Context, st *store.Store, configured func(string) (*manifest.Manifest, *manifest.Grant, bool), name string) (*currentGrant, error) {
	_, fileG, inFile := configured(name)
	rec, err := st.CurrentGrant(ctx, name)
	switch {
	case err == nil && !rec.Revoked:
		var g manifest.Grant
		if err := json.Unmarshal(rec.Grant, &g); err != nil {
			return nil, fmt.Errorf("connector %s: the stored grant is unreadable: %w", name, err)
		}
		return &currentGrant{Grant: &g, source: "the store", configured: inFile}, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, err
	case err == nil: // revoked: nothing is granted, whatever the file says
		return nil, nil
	case inFile:
		return &currentGrant{Grant: admin.Permissions(fileG), source: "airlock.yaml", configured: true}, nil
	}
	return nil, nil
}

// grantFlags are the grant command's flags that change a grant; set holds the names given.
type grantFlags struct {
	tools, scopes, hosts, confirm listFlag
	creds, config                 mapFlag
	set                           map[string]bool
}

// patchGrant applies the flags to gr: a list flag replaces its list, --credential and --set
// replace one slot or key; the rest of gr is kept.
func patchGrant(gr *manifest.Grant, f grantFlags) {
	for _, l := range []struct {
		flag string
		dst  *[]string
		v    listFlag
	}{{"tools", &gr.Tools, f.tools}, {"scopes", &gr.Scopes, f.scopes}, {"hosts", &gr.Hosts, f.hosts}, {"confirm", &gr.Confirm, f.confirm}} {
		if f.set[l.flag] {
			*l.dst = slices.Clone([]string(l.v))
		}
	}
	if len(f.creds) > 0 && gr.Credentials == nil {
		gr.Credentials = map[string]manifest.CredentialGrant{}
	}
	for k, v := range f.creds {
		gr.Credentials[k] = manifest.CredentialGrant{Secret: v}
	}
	if len(f.config) > 0 && gr.Config == nil {
		gr.Config = map[string]string{}
	}
	for k, v := range f.config {
		gr.Config[k] = v
	}
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// printPlannedGrant prints the grant that would be recorded and its difference from cur.
func printPlannedGrant(e *env, cur *currentGrant, gr *manifest.Grant) {
	b, _ := json.MarshalIndent(gr, "", "  ")
	fmt.Fprintf(e.stdout, "\nResulting grant (dry run, nothing recorded):\n%s\n", b)
	var old *manifest.Grant
	from := "no current grant"
	if cur != nil {
		old, from = cur.Grant, "the current grant, from "+cur.source
	}
	lines := grantDiff(old, gr)
	if len(lines) == 0 {
		fmt.Fprintf(e.stdout, "\nNo change against %s.\n", from)
		return
	}
	fmt.Fprintf(e.stdout, "\nChanges against %s:\n", from)
	for _, l := range lines {
		fmt.Fprintf(e.stdout, "  %s\n", l)
	}
}

// printReferenceProblems prints the warnings of the reference check, and for a dry run the
// error the grant would be refused with.
func printReferenceProblems(e *env, warnings []string, err error) {
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "this grant would be refused: %v\n", err)
	}
}

// grantDiff lists what changes from old to new, one "- key: value" or "+ key: value" line per
// changed entry.
func grantDiff(old, new *manifest.Grant) []string {
	a, b := flattenGrant(old), flattenGrant(new)
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		va, inA := a[k]
		vb, inB := b[k]
		if inA && inB && va == vb {
			continue
		}
		if inA {
			out = append(out, "- "+k+": "+va)
		}
		if inB {
			out = append(out, "+ "+k+": "+vb)
		}
	}
	return out
}

// flattenGrant returns g as "key.sub" → value text, lists joined with ", ", so two grants
// compare entry by entry (fields added to the grant format later included).
func flattenGrant(g *manifest.Grant) map[string]string {
	out := map[string]string{}
	if g == nil {
		return out
	}
	b, _ := json.Marshal(g)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	delete(m, "connector")
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(strings.TrimPrefix(prefix+"."+k, "."), x)
			}
		case []any:
			var parts []string
			for _, x := range v {
				if s, ok := x.(string); ok {
					parts = append(parts, s)
				} else {
					xb, _ := json.Marshal(x)
					parts = append(parts, string(xb))
				}
			}
			sort.Strings(parts)
			out[prefix] = strings.Join(parts, ", ")
		default:
			vb, _ := json.Marshal(v)
			out[prefix] = strings.Trim(string(vb), `"`)
		}
	}
	walk("", m)
	return out
}
