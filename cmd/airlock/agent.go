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

func runAgent(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "agent", `
Usage: airlock agent add NAME [--subject ID]
       airlock agent list [--json]
       airlock agent revoke NAME

Manages the agents that may call tools over HTTP ('airlock serve --http'). 'add' prints a new
bearer token once: give it to the agent, it cannot be shown again. Only its SHA-256 is kept, with
the name, the subject (the tenant the agent's calls act for, default "default") and the creation
time, in STATE_DIR/agents.json (mode 0600). 'revoke' takes effect on the agent's next request,
without restarting the server. To rotate a token, revoke the agent and add it again.`, `
  airlock agent add ci-bot --subject acme      # prints airlock_agent_…
  airlock agent list
  airlock agent revoke ci-bot`)
	g.register(fs)
	subject := fs.String("subject", "default", "add: the tenant the agent's calls act for")
	asJSON := fs.Bool("json", false, "list: print the agents as JSON (never their tokens)")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if err := parse(fs, args); err != nil {
			return err
		}
		return usagef("say what to do: add, list or revoke")
	}
	verb, rest := args[0], args[1:]
	var name string
	if verb != "list" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
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
	agents := mcp.OpenAgents(filepath.Join(stateDir, "agents.json"))
	switch verb {
	case "add":
		if name == "" {
			return usagef("name the agent: airlock agent add NAME")
		}
		token, err := agents.Add(name, *subject)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, token)
		fmt.Fprintf(e.stderr, "Agent %s added (subject %s). The token above is shown only once: give it to the agent as \"Authorization: Bearer TOKEN\".\n", name, *subject)
		return nil
	case "list":
		list, err := agents.List()
		if err != nil {
			return err
		}
		if *asJSON {
			type agent struct {
				Name    string    `json:"name"`
				Subject string    `json:"subject"`
				Created time.Time `json:"created"`
			}
			out := make([]agent, 0, len(list))
			for _, a := range list {
				out = append(out, agent{a.Name, a.Subject, a.Created})
			}
			return writeJSON(e, out)
		}
		if len(list) == 0 {
			fmt.Fprintln(e.stdout, "No agents. Add one with 'airlock agent add NAME'.")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSUBJECT\tCREATED")
		for _, a := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Name, a.Subject, a.Created.Format(time.RFC3339))
		}
		return tw.Flush()
	case "revoke":
		if name == "" {
			return usagef("name the agent: airlock agent revoke NAME")
		}
		if err := agents.Revoke(name); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "Agent %s revoked: its token is refused from its next request on.\n", name)
		return nil
	default:
		return usagef("unknown action %q: use add, list or revoke", verb)
	}
}
