// Command airlock runs API connectors as sandboxed WebAssembly plugins for AI agents.
//
//	airlock demo                                  see a tool call go through a sandboxed connector
//	airlock tools                                 list the tools an agent would see
//	airlock call slack.post_message --args '{…}'  run one tool call, print the structured result
//	airlock manifest validate manifests/*.yaml    check manifests before publishing them
//	airlock plugin build                          build plugins/* and stamp their manifests
//	airlock audit                                 show the audit trail
//	source <(airlock completion bash)             complete commands and flags (bash, zsh, fish)
//
// Run `airlock help COMMAND` for the flags and an example of each command; `airlock man --dir
// DIR` writes the same text as manual pages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/suggest"
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
	// subs are the command's sub-commands (airlock plugin pack), for 'airlock help CMD SUB',
	// the manual pages and the shell completions.
	subs []string
}

// env is what every command gets: output streams and the global settings.
type env struct {
	stdout, stderr io.Writer
	help           *helpDoc // the help of the command that ran (set by newFlagSet)
}

func commands() []command {
	return []command{
		{"demo", "run the guided demo: a sandboxed Slack connector against a local fake Slack", runDemo, nil},
		{"tools", "list the tools agents can call (granted tools of the configured connectors)", runTools, nil},
		{"call", "run one tool call and print its structured result", runCall, nil},
		{"serve", "serve the tools to agents over MCP (stdio, or streamable HTTP with agent tokens)", runServe, nil},
		{"agent", "manage the agents allowed over HTTP (airlock agent add|list|revoke)", runAgent, []string{"add", "list", "revoke"}},
		{"manifest", "validate connector manifests (airlock manifest validate FILE…)", runManifest, []string{"validate"}},
		{"plugin", "build, pack, sign, verify, install and list connector bundles (airlock plugin …)", runPlugin, pluginSubs()},
		{"grant", "review what a connector asks for and grant it (all, or some tools, scopes and hosts)", runGrant, nil},
		{"grants", "list the grants, or one connector's grant history", runGrants, nil},
		{"profile", "narrow what each agent (or group of agents) may see, call and act for (airlock profile set|allow|deny|list|show|delete)", runProfile, []string{"list", "show", "set", "allow", "deny", "delete"}},
		{"revoke", "withdraw a connector's grant, or some of its tools, at once", runRevoke, nil},
		{"approvals", "list the tool calls waiting for a human's approval", runApprovals, nil},
		{"approve", "let one pending call run once, with exactly its arguments", runApprove, nil},
		{"deny", "refuse one pending call", runDeny, nil},
		{"connect", "connect a user's account to an OAuth connector (sign in; tokens stay with the host)", runConnect, nil},
		{"secret", "manage the encrypted secret store (airlock secret set|list|rm|rotate-key)", runSecret, []string{"set", "list", "rm", "rotate-key"}},
		{"audit", "show, search, export and verify the hash-chained audit trail", runAudit, []string{"tail", "search", "export", "verify", "key", "adopt"}},
		{"admin", "manage the tokens and roles of the admin HTTP API (airlock admin add|list|role|revoke)", runAdmin, []string{"add", "list", "role", "revoke"}},
		{"trust", "manage the publisher keys trusted to sign bundles (airlock trust add|list|rm)", runTrust, []string{"add", "list", "rm"}},
		{"openapi", "make a connector from chosen operations of an OpenAPI description, no code (airlock openapi list|import)", runOpenAPI, []string{"list", "import"}},
		{"init", "scaffold a new connector, ready to build, test, pack and sign (airlock init connector NAME)", runInit, []string{"connector", "master-key"}},
		{"completion", "print a shell completion script (airlock completion bash|zsh|fish)", runCompletion, []string{"bash", "zsh", "fish"}},
		{"man", "write the manual pages (airlock man --dir DIR)", runMan, nil},
		{"version", "print the version", runVersion, nil},
	}
}

// usageError is a command-line mistake: exit code 2 and a pointer to help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" && (len(args) == 1 || args[1] == "help") {
		printUsage(stdout)
		return exitOK
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = []string{"version"}
	}
	if args[0] == "help" { // help CMD [SUB]: what CMD [SUB] --help prints
		args = append(args[1:len(args):len(args)], "--help")
	}
	name := args[0]
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
			cmd := name // the sub-command whose help to read, when it has its own
			if e.help != nil && strings.HasPrefix(e.help.name, name) {
				cmd = e.help.name
			}
			fmt.Fprintf(stderr, "airlock %s: %s\nRun 'airlock help %s' for usage.\n", cmd, secret.RedactURLs(ue.msg), cmd)
			return exitUsage
		case errors.Is(err, errSilent):
			return exitError
		default:
			fmt.Fprintf(stderr, "airlock %s: %s\n", name, secret.RedactURLs(err.Error()))
			return exitError
		}
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	if s := suggest.Closest(name, names); s != "" {
		fmt.Fprintf(stderr, "airlock: unknown command %q (did you mean %q?)\nRun 'airlock help' for the list of commands.\n", name, s)
		return exitUsage
	}
	fmt.Fprintf(stderr, "airlock: unknown command %q\nRun 'airlock help' for the list of commands.\n", name)
	return exitUsage
}

var (
	errHelp   = errors.New("help shown")
	errSilent = errors.New("failure already reported")
)

// The text of 'airlock help', also the top of airlock(1).
const (
	usageIntro   = "airlock runs API connectors as sandboxed WebAssembly plugins for AI agents."
	usageSecrets = "Plugins never see a secret: the host injects credentials into the requests it makes for them."
	usageFooter  = `Start here:
  airlock demo                 # about 20 s the first time (it builds the Slack plugin)

Configuration: airlock.yaml in the working directory (or --config / AIRLOCK_CONFIG) lists the
connectors and their grants; see 'airlock help tools'. Every flag has an AIRLOCK_* variable.
Flags may come before or after a command's arguments. Shell completion: 'airlock help completion';
manual pages: 'airlock help man'.`
)

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "%s\n%s\n\nUsage: airlock COMMAND [flags]\n\nCommands:\n", usageIntro, usageSecrets)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\n%s\n", usageFooter)
}
