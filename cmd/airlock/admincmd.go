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

func runAdmin(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "admin", `
Usage: airlock admin add NAME
       airlock admin list
       airlock admin revoke NAME

Manages the tokens of the admin HTTP API ('airlock serve --http' serves it at /admin/v1/, next
to MCP at /mcp). Admin tokens are not agent tokens: they live in STATE_DIR/admins.json (only
their SHA-256, mode 0600) and start with airlock_admin_, and an agent token is refused by the
admin API (and an admin token by MCP). 'add' prints the token once.`, `
  airlock admin add alice
  curl -H "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:8700/admin/v1/approvals?status=pending`)
	g.register(fs)
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if err := parse(fs, args); err != nil {
			return err
		}
		return usagef("say what to do: add, list or revoke")
	}
	verb := args[0]
	name, rest := splitName(args[1:])
	if err := parse(fs, rest); err != nil {
		return err
	}
	_, stateDir, err := g.loadConfig()
	if err != nil {
		return err
	}
	admins := mcp.OpenAdmins(filepath.Join(stateDir, "admins.json"))
	switch verb {
	case "add":
		if name == "" {
			return usagef("name the admin: airlock admin add NAME")
		}
		token, err := admins.Add(name, "")
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, token)
		fmt.Fprintf(e.stderr, "Admin %s added. The token above is shown only once; send it as \"Authorization: Bearer TOKEN\" to /admin/v1/.\n", name)
		return nil
	case "list":
		list, err := admins.List()
		if err != nil {
			return err
		}
		if len(list) == 0 {
			fmt.Fprintln(e.stdout, "No admin tokens. Add one with 'airlock admin add NAME'.")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED")
		for _, a := range list {
			fmt.Fprintf(tw, "%s\t%s\n", a.Name, a.Created.Format(time.RFC3339))
		}
		return tw.Flush()
	case "revoke":
		if name == "" {
			return usagef("name the admin: airlock admin revoke NAME")
		}
		if err := admins.Revoke(name); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "Admin %s revoked: the token is refused from its next request on.\n", name)
		return nil
	default:
		return usagef("unknown action %q: use add, list or revoke", verb)
	}
}

// adminTokens adapts the admin token file to admin.TokenVerifier.
type adminTokens struct{ a *mcp.Agents }

func (t adminTokens) Verify(token string) (string, bool, error) {
	id, ok, err := t.a.Verify(token)
	return id.Name, ok, err
}
