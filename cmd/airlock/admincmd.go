package main

import (
	"context"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/mcp"
)

func runAdmin(ctx context.Context, e *env, args []string) error {
	return runTokens(ctx, e, args, tokenHolders{cmd: "admin", what: "admin", file: "admins.json", open: mcp.StoreAdmins, roles: true,
		usage: `
Usage: airlock admin add NAME --role ROLE [--ttl DURATION]
       airlock admin list [--json]
       airlock admin role NAME ROLE
       airlock admin revoke NAME

Manages the tokens of the admin HTTP API ('airlock serve --http' serves it at /admin/v1/, next
to MCP at /mcp). Admin tokens are not agent tokens: they live in the state store (only their
SHA-256, with role, creation, last use and expiry) and start with airlock_admin_, and an agent
token is refused by the admin API (and an admin token by MCP). 'add' prints the token once.

Each token has a role; each role allows what the ones before it allow, and more:
  viewer    read connectors, grants, approvals, the audit trail and metrics
  approver  also approve or deny the calls waiting for a human
  granter   also grant and revoke connectors (and approve upgrades)
  owner     also list admins and change their roles
A request beyond the token's role is refused (403, naming the role it needs) and recorded in the
audit trail. 'role' changes a role from the admin's next request on. An expired token (--ttl) is
refused (401); revoke it and add the admin again for a new one. Admin tokens made before roles
existed are owners.

Without --server these commands work on the state store directly, as an owner (whoever can open
the store holds everything in it). With --server URL (or $AIRLOCK_SERVER) 'list' and 'role' go
through that airlock's admin API with the token in $AIRLOCK_ADMIN_TOKEN, which must be an
owner's.`, example: `
  airlock admin add alice --role approver --ttl 720h
  airlock admin list
  airlock admin role alice granter
  curl -H "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:8700/admin/v1/approvals?status=pending
  AIRLOCK_ADMIN_TOKEN=$ADMIN_TOKEN airlock approvals --server http://127.0.0.1:8700`,
		addedHint: "send it as \"Authorization: Bearer TOKEN\" to /admin/v1/, or put it in $AIRLOCK_ADMIN_TOKEN for the CLI's --server."})
}

// adminTokens adapts the admin tokens to admin.HashVerifier.
type adminTokens struct{ a *mcp.Agents }

func (t adminTokens) Verify(token string) (admin.Caller, bool, error) {
	return adminCaller(t.a.Verify(token))
}

func (t adminTokens) VerifySHA256(sumHex string) (admin.Caller, bool, error) {
	return adminCaller(t.a.VerifySHA256(sumHex))
}

func adminCaller(id mcp.Identity, ok bool, err error) (admin.Caller, bool, error) {
	return admin.Caller{Name: id.Name, Role: admin.Role(id.Role)}, ok, err
}
