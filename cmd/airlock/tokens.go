package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

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
	usage, example string
	addedHint      string // printed after a new token, to stderr
}

// runTokens is 'airlock agent …' and 'airlock admin …': add NAME, list, revoke NAME.
func runTokens(ctx context.Context, e *env, args []string, k tokenHolders) error {
	var g globals
	fs := newFlagSet(e, k.cmd, k.usage, k.example)
	g.register(fs)
	subject := "default"
	if k.subjects {
		fs.StringVar(&subject, "subject", "default", "add: the tenant the "+k.what+"'s calls act for")
	}
	asJSON := fs.Bool("json", false, "list: print JSON (never tokens)")
	expires := fs.Duration("expires", 0, "add: the token stops working after this `duration` (e.g. 720h); 0: never")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("say what to do: add, list or revoke")
	}
	verb, name := fs.Arg(0), fs.Arg(1)
	want := 2 // add NAME, revoke NAME
	if verb == "list" {
		want = 1
	}
	if err := atMost(fs, want, ""); err != nil {
		return err
	}
	if *expires < 0 {
		return usagef("--expires %s: give a positive duration, or 0 for a token that does not expire", *expires)
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
		if *expires > 0 {
			until = time.Now().Add(*expires)
		}
		token, err := holders.AddUntil(name, subject, until)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, token)
		added := fmt.Sprintf("%s %s added", strings.ToUpper(k.what[:1])+k.what[1:], name)
		if k.subjects {
			added += fmt.Sprintf(" (subject %s)", subject)
		}
		fmt.Fprintf(e.stderr, "%s. The token above is shown only once: %s\n", added, k.addedHint)
		return g.recordAction(ctx, nil, k.cmd+" token add", name, map[string]string{"subject": subject})
	case "list":
		list, err := holders.List()
		if err != nil {
			return err
		}
		if *asJSON {
			type holder struct {
				Name     string     `json:"name"`
				Subject  string     `json:"subject,omitempty"`
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
				out = append(out, h)
			}
			return writeJSON(e, out)
		}
		if len(list) == 0 {
			fmt.Fprintf(e.stdout, "No %ss. Add one with 'airlock %s add NAME'.\n", k.what, k.cmd)
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		if k.subjects {
			fmt.Fprint(tw, "NAME\tSUBJECT\t")
		} else {
			fmt.Fprint(tw, "NAME\t")
		}
		fmt.Fprintln(tw, "CREATED\tLAST USED\tEXPIRES")
		for _, a := range list {
			if k.subjects {
				fmt.Fprintf(tw, "%s\t%s\t", a.Name, a.Subject)
			} else {
				fmt.Fprintf(tw, "%s\t", a.Name)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Created.Format(time.RFC3339), timeOr(a.LastUsed, "never"), timeOr(a.Expires, "never"))
		}
		return tw.Flush()
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
		return usagef("unknown action %q: use add, list or revoke", verb)
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
