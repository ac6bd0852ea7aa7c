package main

import (
	"context"
	"fmt"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/store"
)

func runApprovals(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "approvals", `
Usage: airlock approvals [--all] [--json]

Lists the tool calls waiting for a human's approval: tools annotated destructive or
needs_confirmation, tools a grant lists under confirm, and write database functions. Each shows
the exact arguments the agent sent; approving lets exactly that call run once (the agent calls
again with the same arguments), before it expires.`+serverHelp, `
  airlock approvals
  airlock approve ap_3f9c2a…
  airlock deny ap_3f9c2a… --reason "not during the freeze"`)
	g.register(fs)
	g.registerServer(fs)
	all := fs.Bool("all", false, "show decided, used and expired requests too")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	status := "pending"
	if *all {
		status = ""
	}
	var list []admin.ApprovalView // the same shape whether read from the store or the server
	err := g.withAdmin(ctx, e, func(a *admin.Admin) error {
		aps, err := a.Approvals(ctx, status)
		list = admin.ApprovalViews(aps)
		return err
	}, func(c *adminClient) error {
		return c.do(ctx, "GET", "approvals?status="+url.QueryEscape(status), nil, &list)
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "No calls are waiting for approval.")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tTOOL\tAGENT\tSUBJECT\tEXPIRES\tARGUMENTS")
	cut := false
	for _, a := range list {
		// As the tool gets them: bidi overrides, zero-width and other invisible characters show
		// as \u escapes, so nothing on screen reads other than it runs.
		args := admin.VisibleJSON(a.Arguments)
		if r := []rune(args); len(r) > 100 {
			args, cut = string(r[:90])+fmt.Sprintf("… (+%d characters)", len(r)-90), true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s.%s\t%s\t%s\t%s\t%s\n", a.ID, a.Status, a.Connector, a.Tool, a.Agent, a.Subject, a.Expires.Local().Format(time.DateTime), args)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if cut {
		fmt.Fprintln(e.stdout, "Some arguments are cut short: read them whole before approving, with 'airlock approvals --json'.")
	}
	return nil
}

func runApprove(ctx context.Context, e *env, args []string) error {
	return decide(ctx, e, "approve", args)
}
func runDeny(ctx context.Context, e *env, args []string) error { return decide(ctx, e, "deny", args) }

func decide(ctx context.Context, e *env, verb string, args []string) error {
	var g globals
	fs := newFlagSet(e, verb, fmt.Sprintf(`
Usage: airlock %s ID [--reason TEXT]

%s the pending call ID (see 'airlock approvals'). Approval lets that exact call — same tool,
subject and arguments — run once, when the agent calls again, until the request expires; a denied
call never reaches the upstream, and the agent is told it was denied. An ID whose tool ends in
#result holds a result that screening flagged (grant screening.action require_approval; review it
with 'airlock approvals --json'): approving it releases that result once to the same call.`+serverHelp, verb, map[string]string{"approve": "Approves", "deny": "Denies"}[verb]), fmt.Sprintf(`
  airlock %s ap_3f9c2a1b`, verb))
	g.register(fs)
	g.registerServer(fs)
	reason := fs.String("reason", "", "deny: why, shown to the agent")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := atMost(fs, 1, ""); err != nil {
		return err
	}
	id := fs.Arg(0)
	if id == "" {
		return usagef("give the approval ID: airlock %s ID (see 'airlock approvals')", verb)
	}
	var ap admin.ApprovalView
	err := g.withAdmin(ctx, e, func(a *admin.Admin) error {
		var got store.Approval
		var err error
		if verb == "approve" {
			got, err = a.Approve(ctx, id, adminName())
		} else {
			got, err = a.Deny(ctx, id, adminName(), *reason)
		}
		ap = admin.NewApprovalView(got)
		return err
	}, func(c *adminClient) error {
		var body any
		if verb == "deny" {
			body = map[string]string{"reason": *reason}
		}
		return c.do(ctx, "POST", "approvals/"+url.PathEscape(id)+"/"+verb, body, &ap)
	})
	if err != nil {
		return err
	}
	if verb == "approve" {
		fmt.Fprintf(e.stderr, "Approved %s: %s.%s may run once with these arguments until %s:\n%s\n", id, ap.Connector, ap.Tool, ap.Expires.Local().Format(time.DateTime), admin.VisibleJSON(ap.Arguments))
		return nil
	}
	fmt.Fprintf(e.stderr, "Denied %s (%s.%s).\n", id, ap.Connector, ap.Tool)
	return nil
}
