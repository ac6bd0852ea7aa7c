package main

import (
	"context"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/mcp"
)

func runAdmin(ctx context.Context, e *env, args []string) error {
	return runTokens(ctx, e, args, tokenHolders{cmd: "admin", what: "admin", file: "admins.json", open: mcp.StoreAdmins,
		usage: `
Usage: airlock admin add NAME
       airlock admin list
       airlock admin revoke NAME

Manages the tokens of the admin HTTP API ('airlock serve --http' serves it at /admin/v1/, next
to MCP at /mcp). Admin tokens are not agent tokens: they live in the state store (only their
SHA-256, with creation, last use and expiry) and start with airlock_admin_, and an agent token is refused by the
admin API (and an admin token by MCP). 'add' prints the token once.`, example: `
  airlock admin add alice
  curl -H "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:8700/admin/v1/approvals?status=pending`,
		addedHint: "send it as \"Authorization: Bearer TOKEN\" to /admin/v1/."})
}

// adminTokens adapts the admin token file to admin.TokenVerifier.
type adminTokens struct{ a *mcp.Agents }

func (t adminTokens) Verify(token string) (admin.Caller, bool, error) {
	id, ok, err := t.a.Verify(token)
	return admin.Caller{Name: id.Name, Role: admin.Role(id.Role)}, ok, err
}
