package main

import (
	"context"

	"github.com/airlock-dev/airlock/host/mcp"
)

func runAgent(ctx context.Context, e *env, args []string) error {
	return runTokens(ctx, e, args, tokenHolders{cmd: "agent", what: "agent", file: "agents.json", open: mcp.StoreAgents, subjects: true,
		usage: `
Usage: airlock agent add NAME [--subject ID] [--ttl DURATION]
       airlock agent list [--json]
       airlock agent revoke NAME

Manages the agents that may call tools over HTTP ('airlock serve --http'). 'add' prints a new
bearer token once: give it to the agent, it cannot be shown again. Only its SHA-256 is kept, with
the name, the subject (the tenant the agent's calls act for, default "default") and the creation
time, in the state store (so every replica on one PostgreSQL accepts it), with its last use (to
the minute) and an optional expiry (--ttl; an expired token is refused with 401 saying so).
'revoke' takes effect on the agent's next request, on every replica, without restarting. To
rotate a token, revoke the agent and add it again. Tokens of an older STATE_DIR/agents.json are
moved into the store once, on first use. These commands work on the state store directly.`, example: `
  airlock agent add ci-bot --subject acme      # prints airlock_agent_…
  airlock agent add nightly --ttl 720h
  airlock agent list
  airlock agent revoke ci-bot`,
		addedHint: "give it to the agent as \"Authorization: Bearer TOKEN\"."})
}
