// Command airlock runs API connectors as sandboxed WebAssembly plugins for AI agents.
//
//	airlock demo                                  see a tool call go through a sandboxed connector
//	airlock tools                                 list the tools an agent would see
//	airlock call slack.post_message --args '{…}'  run one tool call, print the structured result
//	airlock manifest validate manifests/*.yaml    check manifests before publishing them
//	airlock plugin build                          build plugins/* and stamp their manifests
//	airlock audit                                 show the audit trail
//
// Run `airlock help COMMAND` for the flags and an example of each command.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/airlock-dev/airlock/host/secret"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed (a tool call that returned an error, an invalid manifest)
	exitUsage = 2 // the command line was wrong
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what every command gets: output streams and the global settings.
type env struct {
	stdout, stderr io.Writer
}

func commands() []command {
	return []command{
		{"demo", "run the guided demo: a sandboxed Slack connector against a local fake Slack", runDemo},
		{"tools", "list the tools agents can call (granted tools of the configured connectors)", runTools},
		{"call", "run one tool call and print its structured result", runCall},
		{"serve", "serve the tools to agents over MCP (stdio, or streamable HTTP with agent tokens)", runServe},
		{"agent", "manage the agents allowed over HTTP (airlock agent add|list|revoke)", runAgent},
		{"manifest", "validate connector manifests (airlock manifest validate FILE…)", runManifest},
		{"plugin", "build, pack, sign, verify, install and list connector bundles (airlock plugin …)", runPlugin},
		{"grant", "review what a connector asks for and grant it (all, or some tools, scopes and hosts)", runGrant},
		{"grants", "list the grants, or one connector's grant history", runGrants},
		{"revoke", "withdraw a connector's grant, or some of its tools, at once", runRevoke},
		{"approvals", "list the tool calls waiting for a human's approval", runApprovals},
		{"approve", "let one pending call run once, with exactly its arguments", runApprove},
		{"deny", "refuse one pending call", runDeny},
		{"connect", "connect a user's account to an OAuth connector (sign in; tokens stay with the host)", runConnect},
		{"secret", "manage the encrypted secret store (airlock secret set|list|rm|rotate-key)", runSecret},
		{"audit", "show, search, export and verify the hash-chained audit trail", runAudit},
		{"admin", "manage the tokens and roles of the admin HTTP API (airlock admin add|list|role|revoke)", runAdmin},
		{"trust", "manage the publisher keys trusted to sign bundles (airlock trust add|list|rm)", runTrust},
		{"openapi", "make a connector from chosen operations of an OpenAPI description, no code (airlock openapi list|import)", runOpenAPI},
		{"init", "scaffold a new connector, ready to build, test, pack and sign (airlock init connector NAME)", runInit},
		{"version", "print the version", runVersion},
	}
}

// usageError is a command-line mistake: exit code 2 and a pointer to help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" && len(args) == 1 {
		printUsage(stdout)
		return exitOK
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = []string{"version"}
	}
	name := args[0]
	if name == "help" {
		name, args = args[1], []string{args[1], "--help"}
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, e, args[1:])
		var ue *usageError
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, errHelp):
			return exitOK
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "airlock %s: %s\nRun 'airlock help %s' for usage.\n", name, secret.RedactURLs(ue.msg), name)
			return exitUsage
		case errors.Is(err, errSilent):
			return exitError
		default:
			fmt.Fprintf(stderr, "airlock %s: %s\n", name, secret.RedactURLs(err.Error()))
			return exitError
		}
	}
	fmt.Fprintf(stderr, "airlock: unknown command %q\nRun 'airlock help' for the list of commands.\n", name)
	return exitUsage
}

var (
	errHelp   = errors.New("help shown")
	errSilent = errors.New("failure already reported")
)

func printUsage(w io.Writer) {
	fmt.Fprint(w, `airlock runs API connectors as sandboxed WebAssembly plugins for AI agents.
Plugins never see a secret: the host injects credentials into the requests it makes for them.

Usage: airlock COMMAND [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Start here:
  airlock demo                 # about 20 s the first time (it builds the Slack plugin)

Configuration: airlock.yaml in the working directory (or --config / AIRLOCK_CONFIG) lists the
connectors and their grants; see 'airlock help tools'. Every flag has an AIRLOCK_* variable.
`)
}
