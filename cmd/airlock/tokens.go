package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
)

// tokenHolders describes a kind of bearer-token holder the CLI manages: agents (MCP) or admins
// (the admin API). Both keep only SHA-256 hashes in a 0600 file of the state directory.
type tokenHolders struct {
	cmd, what      string // "agent", "agent"
	file           string // in the state directory, where older versions kept the tokens
	open           func(st *store.Store) *mcp.Agents
	subjects       bool // holders act for a subject (agents do)
	roles          bool // holders have a role (admins do)
	usage, example string
	addedHint      string // printed after a new token, to stderr
}

// runTokens is 'airlock agent …' and 'airlock admin …': add NAME, list, revoke NAME, and for
// admins role NAME ROLE.
func runTokens(ctx context.Context, e *env, args []string, k tokenHolders) error {
	var g globals
	fs := newFlagSet(e, k.cmd, k.usage, k.example)
	g.register(fs)
	subject, role := "default", ""
	verbs := "add, list or revoke"
	if k.subjects {
		fs.StringVar(&subject, "subject", "default", "add: the tenant the "+k.what+"'s calls act for")
	}
	if k.roles {
		g.registerServer(fs)
		fs.StringVar(&role, "role", "", "add: what the admin may do: viewer, approver, granter or owner (required)")
		verbs = "add, list, role or revoke"
	}
	asJSON := fs.Bool("json", false, "list: print JSON (never tokens)")
	var ttl time.Duration
	fs.DurationVar(&ttl, "ttl", 0, "add: the token stops working after this `duration` (e.g. 720h); 0: never")
	fs.DurationVar(&ttl, "expires", 0, "add: the former name of --ttl")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("say what to do: %s", verbs)
	}
	verb, name := fs.Arg(0), fs.Arg(1)
	want := 2 // add NAME, revoke NAME
	switch {
	case verb == "list":
		want = 1
	case verb == "role" && k.roles: // role NAME ROLE (or --role ROLE)
		want = 3
		if r := fs.Arg(2); r != "" {
			role = r
		}
	}
	if err := atMost(fs, want, ""); err != nil {
		return err
	}
	if ttl < 0 {
		return usagef("--ttl %s: give a positive duration, or 0 for a token that does not expire", ttl)
	}
	if k.roles && (verb == "add" || verb == "role") {
		if role == "" {
			return usagef("say what %s may do: --role viewer, approver, granter or owner (see 'airlock help admin')", orName(name))
		}
		if _, err := admin.ParseRole(role); err != nil {
			return usagef("%v", err)
		}
	}
	if c, err := g.remote(); err != nil || c != nil {
		if err != nil {
			return err
		}
		return remoteTokens(ctx, e, c, verb, name, role, *asJSON)
	}
	st, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	holders, err := g.openTokens(ctx, e, st, k)
	if err != nil {
		return err
	}
	switch verb {
	case "add":
		if name == "" {
			return usagef("name the %s: airlock %s add NAME", k.what, k.cmd)
		}
		var until time.Time
		if ttl > 0 {
			until = time.Now().Add(ttl).Truncate(time.Second)
		}
		token, err := holders.Issue(mcp.NewToken{Name: name, Subject: subject, Role: role, Expires: until})
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, token)
		added := fmt.Sprintf("%s %s added", strings.ToUpper(k.what[:1])+k.what[1:], name)
		detail := map[string]string{}
		if k.subjects {
			added += fmt.Sprintf(" (subject %s)", subject)
			detail["subject"] = subject
		}
		if k.roles {
			added += fmt.Sprintf(" with role %s", role)
			detail["role"] = role
		}
		if !until.IsZero() {
			added += ", until " + until.UTC().Format(time.RFC3339)
			detail["expires"] = until.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(e.stderr, "%s. The token above is shown only once: %s\n", added, k.addedHint)
		return g.recordAction(ctx, nil, k.cmd+" token add", name, detail)
	case "list":
		list, err := holders.List()
		if err != nil {
			return err
		}
		return printHolders(e, k, list, *asJSON)
	case "role":
		if !k.roles {
			return usagef("unknown action %q: use %s", verb, verbs)
		}
		if name == "" {
			return usagef("name the admin and the role: airlock admin role NAME viewer|approver|granter|owner")
		}
		a, err := g.recorder(e, st)
		if err != nil {
			return err
		}
		if err := a.SetRole(ctx, name, admin.Role(role), adminName()); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "Admin %s now has role %s, from its next request on.\n", name, role)
		return nil
	case "revoke":
		if name == "" {
			return usagef("name the %s: airlock %s revoke NAME", k.what, k.cmd)
		}
		if err := holders.Revoke(name); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "%s %s revoked: its token is refused from its next request on.\n", strings.ToUpper(k.what[:1])+k.what[1:], name)
		return g.recordAction(ctx, nil, k.cmd+" token revoke", name, nil)
	default:
		return usagef("unknown action %q: use %s", verb, verbs)
	}
}

// orName is name, or NAME when none was given.
func orName(name string) string {
	if name == "" {
		return "NAME"
	}
	return name
}

// printHolders lists token holders: a table, or JSON with never a token nor its hash.
func printHolders(e *env, k tokenHolders, list []mcp.Agent, asJSON bool) error {
	if asJSON {
		type holder struct {
			Name     string     `json:"name"`
			Subject  string     `json:"subject,omitempty"`
			Role     string     `json:"role,omitempty"`
			Created  time.Time  `json:"created"`
			LastUsed *time.Time `json:"last_used,omitempty"`
			Expires  *time.Time `json:"expires,omitempty"`
		}
		out := make([]holder, 0, len(list))
		for _, a := range list {
			h := holder{Name: a.Name, Created: a.Created}
			if !a.LastUsed.IsZero() {
				h.LastUsed = &a.LastUsed
			}
			if !a.Expires.IsZero() {
				h.Expires = &a.Expires
			}
			if k.subjects {
				h.Subject = a.Subject
			}
			if k.roles {
				h.Role = a.Role
			}
			out = append(out, h)
		}
		return writeJSON(e, out)
	}
	if len(list) == 0 {
		fmt.Fprintf(e.stdout, "No %ss. Add one with 'airlock %s add NAME'.\n", k.what, k.cmd)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "NAME\t")
	if k.subjects {
		fmt.Fprint(tw, "SUBJECT\t")
	}
	if k.roles {
		fmt.Fprint(tw, "ROLE\t")
	}
	fmt.Fprintln(tw, "CREATED\tLAST USED\tEXPIRES")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t", a.Name)
		if k.subjects {
			fmt.Fprintf(tw, "%s\t", a.Subject)
		}
		if k.roles {
			fmt.Fprintf(tw, "%s\t", a.Role)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Created.Format(time.RFC3339), timeOr(a.LastUsed, "never"), expiresOr(a.Expires))
	}
	return tw.Flush()
}

// expiresOr shows an expiry, saying when it has passed.
func expiresOr(t time.Time) string {
	if !t.IsZero() && !time.Now().Before(t) {
		return t.Format(time.RFC3339) + " (expired)"
	}
	return timeOr(t, "never")
}

// remoteTokens is 'airlock admin list|role' through a server's admin API (owner routes); the
// other actions issue or revoke tokens, which is done where the state store is.
func remoteTokens(ctx context.Context, e *env, c *adminClient, verb, name, role string, asJSON bool) error {
	k := tokenHolders{cmd: "admin", what: "admin", roles: true}
	switch verb {
	case "list":
		var views []admin.AdminView
		if err := c.do(ctx, "GET", "admins", nil, &views); err != nil {
			return err
		}
		list := make([]mcp.Agent, 0, len(views))
		for _, v := range views {
			a := mcp.Agent{Name: v.Name, Role: v.Role, Created: v.Created}
			if v.LastUsed != nil {
				a.LastUsed = *v.LastUsed
			}
			if v.Expires != nil {
				a.Expires = *v.Expires
			}
			list = append(list, a)
		}
		return printHolders(e, k, list, asJSON)
	case "role":
		if name == "" {
			return usagef("name the admin and the role: airlock admin role NAME viewer|approver|granter|owner")
		}
		if err := c.do(ctx, "PUT", "admins/"+url.PathEscape(name)+"/role", map[string]string{"role": role}, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "Admin %s now has role %s, from its next request on.\n", name, role)
		return nil
	default:
		return usagef("admin %s works on the state store only, not through --server: run it where the store is (holding the store is an owner's power)", verb)
	}
}

func timeOr(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.Format(time.RFC3339)
}

// openTokens returns the token holders of kind k, kept in the state store, after moving the
// tokens of an older STATE_DIR/agents.json or admins.json into it (once, saying so).
func (g *globals) openTokens(ctx context.Context, e *env, st *store.Store, k tokenHolders) (*mcp.Agents, error) {
	_, stateDir, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	holders := k.open(st)
	path := filepath.Join(stateDir, k.file)
	n, err := holders.MigrateFile(ctx, path)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		fmt.Fprintf(e.stderr, "airlock: moved %d %s token(s) from %s into the state store; the file is kept as %s.migrated and no longer read\n", n, k.what, path, path)
	}
	return holders, nil
}
