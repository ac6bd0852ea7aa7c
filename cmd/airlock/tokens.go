package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock-dev/airlock/host/mcp"
)

// tokenHolders describes a kind of bearer-token holder the CLI manages: agents (MCP) or admins
// (the admin API). Both keep only SHA-256 hashes in a 0600 file of the state directory.
type tokenHolders struct {
	cmd, what      string // "agent", "agent"
	file           string // in the state directory
	open           func(path string) *mcp.Agents
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
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if err := parse(fs, args); err != nil {
			return err
		}
		return usagef("say what to do: add, list or revoke")
	}
	verb := args[0]
	name, rest := splitName(args[1:])
	if verb == "list" && name != "" {
		rest = append([]string{name}, rest...)
		name = ""
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	_, stateDir, err := g.loadConfig()
	if err != nil {
		return err
	}
	holders := k.open(filepath.Join(stateDir, k.file))
	switch verb {
	case "add":
		if name == "" {
			return usagef("name the %s: airlock %s add NAME", k.what, k.cmd)
		}
		token, err := holders.Add(name, subject)
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
				Name    string    `json:"name"`
				Subject string    `json:"subject,omitempty"`
				Created time.Time `json:"created"`
			}
			out := make([]holder, 0, len(list))
			for _, a := range list {
				h := holder{Name: a.Name, Created: a.Created}
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
			fmt.Fprintln(tw, "NAME\tSUBJECT\tCREATED")
		} else {
			fmt.Fprintln(tw, "NAME\tCREATED")
		}
		for _, a := range list {
			if k.subjects {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Name, a.Subject, a.Created.Format(time.RFC3339))
			} else {
				fmt.Fprintf(tw, "%s\t%s\n", a.Name, a.Created.Format(time.RFC3339))
			}
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
