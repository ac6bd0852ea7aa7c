package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

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
                               [--set KEY=VALUE]… [--confirm TOOL,…] [--version V] [--file GRANT.yaml] [--dry-run]

Shows what an installed connector asks for — tools (with the scopes each uses), hosts, credential
slots, database functions (with their exact SQL) and limits — then records what you allow as the
connector's grant. Everything not granted is denied. Without --tools/--scopes/--hosts nothing of
that kind is granted; "*" grants all the manifest declares. A tool whose scopes are not all
granted stays unlisted and uncallable.

If a newer version of the connector is pending because it asks for more than the active one (a
new host, scope, tool, slot, function or a looser limit), the difference is shown; granting it
with --version V approves it, and the new version replaces the old one atomically. Without
--version the grant applies to the active version and the upgrade stays pending. Use --dry-run
to only review.

Credentials are references, never values: env:NAME, file:PATH, store:NAME ('airlock secret set'),
vault:MOUNT/PATH#FIELD. OAuth slots take a grant file (--file) with client_id and references.

The change applies at once to a server sharing this state (within a second) and is kept with
who made it ($AIRLOCK_ADMIN or your user name); 'airlock grants --history' shows every version.`, `
  airlock grant slack --dry-run                               # review what it asks for
  airlock grant slack --tools '*' --scopes '*' --hosts slack.com --credential bot_token=store:slack_bot
  airlock grant slack --tools list_channels --scopes channels:read --hosts slack.com --credential bot_token=env:SLACK_BOT_TOKEN
  airlock grant salesforce --file grants/salesforce.yaml`)
	g.register(fs)
	var tools, scopes, hosts, confirm listFlag
	creds, cfg := mapFlag{}, mapFlag{}
	fs.Var(&tools, "tools", "granted tools, comma-separated or repeated; '*' for all")
	fs.Var(&scopes, "scopes", "granted OAuth scopes; '*' for all")
	fs.Var(&hosts, "hosts", "granted hosts as the manifest writes them; '*' for all")
	fs.Var(creds, "credential", "`SLOT=REF`: the secret reference that fills a credential slot (repeatable)")
	fs.Var(cfg, "set", "`KEY=VALUE`: a value for a config key of the manifest (repeatable)")
	fs.Var(&confirm, "confirm", "tools that need a human's approval for every call")
	version := fs.String("version", "", "the installed version to grant; naming a pending version approves the upgrade (default: the active version)")
	file := fs.String("file", "", "read the grant from a YAML `file` (manifests/FORMAT.md); the other grant flags are added to it")
	dry := fs.Bool("dry-run", false, "show what the connector asks for and what would change; record nothing")
	note := fs.String("note", "", "a note kept in the grant's history (a ticket, a reason)")
	name, rest := splitName(args)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if name == "" {
		return usagef("name the connector: airlock grant CONNECTOR (see 'airlock plugin list')")
	}
	st, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := g.recorder(e, st)
	if err != nil {
		return err
	}
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
	if *dry {
		return nil
	}
	gr := &manifest.Grant{Connector: name}
	if *file != "" {
		if gr, err = manifest.LoadGrant(*file); err != nil {
			return err
		}
	}
	gr.Tools = append(gr.Tools, tools...)
	gr.Scopes = append(gr.Scopes, scopes...)
	gr.Hosts = append(gr.Hosts, hosts...)
	gr.Confirm = append(gr.Confirm, confirm...)
	if len(creds) > 0 && gr.Credentials == nil {
		gr.Credentials = map[string]manifest.CredentialGrant{}
	}
	for k, v := range creds {
		gr.Credentials[k] = manifest.CredentialGrant{Secret: v}
	}
	if len(cfg) > 0 && gr.Config == nil {
		gr.Config = map[string]string{}
	}
	for k, v := range cfg {
		gr.Config[k] = v
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
	return admin.New(st, nil, logger), nil
}

func splitName(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
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

Lists the current grant of every connector, with its version, who made it and when. With a
connector and --history, lists every version of its grant (revocations included).`, `
  airlock grants
  airlock grants slack --history`)
	g.register(fs)
	history := fs.Bool("history", false, "show every version of CONNECTOR's grant")
	asJSON := fs.Bool("json", false, "print JSON")
	name, rest := splitName(args)
	if err := parse(fs, rest); err != nil {
		return err
	}
	st, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	var views []admin.GrantView
	if *history {
		if name == "" {
			return usagef("--history needs a connector: airlock grants CONNECTOR --history")
		}
		recs, err := st.GrantHistory(ctx, name)
		if err != nil {
			return err
		}
		views = admin.GrantViews(recs)
	} else {
		recs, err := st.ListGrants(ctx)
		if err != nil {
			return err
		}
		for _, v := range admin.GrantViews(recs) {
			if name == "" || v.Connector == name {
				views = append(views, v)
			}
		}
	}
	if *asJSON {
		return writeJSON(e, views)
	}
	if len(views) == 0 {
		fmt.Fprintln(e.stdout, "No grants. Review and grant a connector with 'airlock grant CONNECTOR'.")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONNECTOR\tVERSION\tBY\tWHEN\tGRANT")
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
	return tw.Flush()
}

func runRevoke(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "revoke", `
Usage: airlock revoke CONNECTOR [--tools T,…] [--note TEXT]

Withdraws a connector's grant, or only some of its tools. Every new call is refused from the
moment the change is applied (at once on a server that made it through its admin API, within a
second on servers sharing this state); calls already running finish, and every call is audited.`, `
  airlock revoke slack
  airlock revoke slack --tools post_message --note "INC-42"`)
	g.register(fs)
	var tools listFlag
	fs.Var(&tools, "tools", "revoke only these tools")
	note := fs.String("note", "", "a note kept in the grant's history")
	name, rest := splitName(args)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if name == "" {
		return usagef("name the connector: airlock revoke CONNECTOR")
	}
	st, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := g.recorder(e, st)
	if err != nil {
		return err
	}
	if err := a.Revoke(ctx, name, tools, adminName(), *note); err != nil {
		return err
	}
	what := "all tools of " + name
	if len(tools) > 0 {
		what = strings.Join(tools, ", ") + " of " + name
	}
	fmt.Fprintf(e.stderr, "Revoked %s.\n", what)
	return nil
}
