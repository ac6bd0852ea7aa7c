package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

func runTools(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "tools", `
Usage: airlock tools [--json] [--config FILE]

Lists what an agent would see: every granted tool of every connector named in the configuration,
as connector.tool. A tool whose OAuth scopes are not all granted is not listed.

The configuration (airlock.yaml) names each connector's stamped manifest and its grant:

  state_dir: .airlock
  connectors:
    - manifest: build/plugins/slack.yaml   # made by 'make plugins'
      grant: grants/slack.yaml             # what the admin allows; see manifests/FORMAT.md`, `
  make plugins && airlock tools
  airlock tools --json | jq '.[].name'
  airlock tools --format openai > tools.json   # for agents that do not speak MCP
  airlock tools --agent support-bot             # what that agent's profile lets it see`)
	g.register(fs)
	asJSON := fs.Bool("json", false, "print the tools as JSON (name, description, schemas, annotations)")
	agent := fs.String("agent", "", "list only the tools this `agent` may see: what its profile allows ('airlock help profile')")
	format := fs.String("format", "text", "output `format`: text, json, or a function-calling schema: mcp, openai, anthropic\n(openai and anthropic names escape the dot: slack.post_message becomes slack__post_message)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *asJSON {
		*format = "json"
	}
	switch *format {
	case "text", "json", "mcp", "openai", "anthropic":
	default:
		return usagef("--format %q: use text, json, mcp, openai or anthropic", *format)
	}
	h, err := g.openHost(ctx, e)
	if err != nil {
		return err
	}
	defer h.Close(ctx)
	tools := h.Tools()
	if *agent != "" {
		tools = h.ToolsFor(*agent)
	}
	switch *format {
	case "json":
		return writeJSON(e, tools)
	case "mcp", "openai", "anthropic":
		b, err := mcp.ExportTools(tools, *format)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(append(b, '\n'))
		return err
	}
	if len(tools) == 0 {
		fmt.Fprintln(e.stdout, "No tools: no connector is configured, or nothing is granted. Try 'airlock demo', or see 'airlock help tools'.")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOOL\tHINTS\tDESCRIPTION")
	for _, t := range tools {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, hints(t.Annotations), firstSentence(t.Description))
	}
	return tw.Flush()
}

func hints(a manifest.Annotations) string {
	var h []string
	if a.ReadOnly {
		h = append(h, "read-only")
	}
	if a.Destructive {
		h = append(h, "destructive")
	}
	if a.Idempotent {
		h = append(h, "idempotent")
	}
	if a.NeedsConfirmation {
		h = append(h, "needs-confirmation")
	}
	if len(h) == 0 {
		return "-"
	}
	return strings.Join(h, ",")
}

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i > 0 {
		s = s[:i+1]
	}
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

func runCall(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "call", `
Usage: airlock call CONNECTOR.TOOL [--args JSON] [--subject ID] [--agent NAME] [--defer]

Runs one tool call through the whole path (grant check, argument validation, the sandboxed
plugin, egress with credential injection, output validation, audit) and prints the structured
result on stdout:

  {"ok": true|false, "data": …, "error": {"code", "category", "message", "retry_after"}, "meta": {…}}

category is retryable, correctable or fatal. The exit code is 0 when ok is true, 1 when the call
failed, 2 for a mistake on the command line.

With --defer, a tool annotated deferrable is checked now and queued in the state store: data is
{"status": "accepted", "job_id": …}; a running 'airlock serve' on the same state runs it at the
upstream's pace, and 'airlock call airlock_job_status --args '{"job_id":"…"}'' reports it.`, `
  airlock call slack.post_message --args '{"channel":"C0GENERAL","text":"deploy done"}'
  airlock call slack.post_message --defer --args '{"channel":"C0GENERAL","text":"weekly digest"}'
  echo '{"limit":5}' | airlock call slack.list_channels --args -`)
	g.register(fs)
	argsJSON := fs.String("args", "{}", "the tool's arguments as a JSON object, or - to read them from stdin")
	subject := fs.String("subject", envOr("AIRLOCK_SUBJECT", "default"), "the tenant the call acts for ($AIRLOCK_SUBJECT)")
	agent := fs.String("agent", envOr("AIRLOCK_AGENT", "cli"), "the caller's name in the audit log ($AIRLOCK_AGENT)")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	conversation := fs.String("conversation", "", "the conversation the call is for, recorded in the audit log (a label, never authority)")
	user := fs.String("user", "", "the end user the call is for, recorded in the audit log (a label, never authority)")
	deferred := fs.Bool("defer", false, "queue the call (a deferrable tool) and print its job ID; 'airlock serve' runs it")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("name the tool to call, like slack.post_message (see 'airlock tools')")
	}
	tool := fs.Arg(0)
	if err := atMost(fs, 1, ": pass tool arguments with --args '{…}'"); err != nil {
		return err
	}
	raw := []byte(*argsJSON)
	if *argsJSON == "-" {
		var err error
		if raw, err = io.ReadAll(io.LimitReader(os.Stdin, 16<<20)); err != nil {
			return fmt.Errorf("reading arguments from stdin: %w", err)
		}
	}
	if !json.Valid(raw) {
		return usagef("--args is not valid JSON: %.80s", raw)
	}
	g.mayCreateKey = true // the call is audited, keyed: a fresh embedded state gets its master key
	h, err := g.openHost(ctx, e)
	if err != nil {
		return err
	}
	defer h.Close(ctx)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res := h.Call(ctx, host.CallRequest{Tool: tool, Arguments: raw, Subject: *subject, Agent: *agent, Conversation: *conversation, User: *user, Defer: *deferred})
	if err := writeJSON(e, res); err != nil {
		return err
	}
	if !res.OK {
		return errSilent
	}
	return nil
}

func writeJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runManifest(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "manifest", `
Usage: airlock manifest validate FILE…

Checks connector manifests against manifests/manifest.schema.json and the rules in
manifests/FORMAT.md, compiles every tool's input and output JSON Schema, and reports each
problem as FILE:LINE: PATH: what to change. A manifest whose module.sha256 is not yet set
(a source manifest, before 'airlock plugin pack' or 'airlock plugin build') is valid but reported
as unpinned.`, `
  airlock manifest validate manifests/slack.yaml`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 || fs.Arg(0) != "validate" {
		return usagef("use: airlock manifest validate FILE…")
	}
	failed := false
	for _, path := range fs.Args()[1:] {
		m, err := manifest.Load(path)
		if err != nil {
			failed = true
			fmt.Fprintln(e.stderr, err)
			continue
		}
		pin := "module pinned by sha256"
		if m.Module.SHA256 == "" {
			pin = "module not pinned yet (" + pinAdvice(path, m.Name) + ")"
		}
		fmt.Fprintf(e.stdout, "%s: ok: %s %s by %s, %d tools, %s\n", path, m.Name, m.Version, m.Publisher, len(m.Tools), pin)
		printBindings(e.stdout, m)
	}
	if failed {
		return errSilent
	}
	return nil
}

// pluginSubs are the sub-commands of airlock plugin.
func pluginSubs() []string {
	return append([]string{"build"}, slices.Sorted(maps.Keys(pluginCommands))...)
}

// pinAdvice says how to pin the module of the manifest at path: 'airlock plugin build' works
// only for a connector of the airlock repository (manifests/NAME.yaml beside plugins/NAME, Go);
// anywhere else 'airlock plugin pack' pins the module it packs.
func pinAdvice(path, name string) string {
	abs, err := filepath.Abs(path)
	if err == nil {
		if root, ok := findAirlockRoot(filepath.Dir(abs)); ok && abs == filepath.Join(root, "manifests", name+".yaml") {
			if _, err := os.Stat(filepath.Join(root, "plugins", name)); err == nil {
				return "'airlock plugin build " + name + "' stamps its digest"
			}
		}
	}
	return "'airlock plugin pack' pins it to the module it packs"
}

func runPlugin(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		if sub, ok := pluginCommands[args[0]]; ok {
			return sub(ctx, e, args[1:])
		}
	}
	fs := newFlagSet(e, "plugin", `
Usage: airlock plugin build [--out DIR] [NAME…]
       airlock plugin keygen|pack|sign|verify|install|list|remove|test …   (airlock plugin CMD --help)

Publishing: 'keygen' makes an ed25519 key pair, 'pack' bundles a manifest and its module,
'sign' signs the bundle, 'verify' checks it against the trust store ('airlock trust add'),
'install' verifies and records it (installing grants nothing: see 'airlock grant'), 'list' and
'remove' manage installed versions, 'test' runs a bundle's tools against a fake upstream and
reports what it reached against what its manifest declares.

'build' builds each connector plugins/NAME with the standard Go compiler (GOOS=wasip1 GOARCH=wasm
-buildmode=c-shared; no TinyGo), then writes DIR/NAME.wasm and DIR/NAME.yaml: a copy of
manifests/NAME.yaml with module.path and module.sha256 stamped to match the module. With no
NAME, builds every plugin that has a manifest. Run it from the repository root. Builds are cached
by source digest.`, `
  airlock plugin build                 # all connectors into build/plugins
  airlock plugin build slack --out /tmp/plugins`)
	out := fs.String("out", "build/plugins", "output `directory`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 || fs.Arg(0) != "build" {
		return usagef("use: airlock plugin %s (see 'airlock help plugin')", strings.Join(pluginSubs(), "|"))
	}
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		return err
	}
	names := fs.Args()[1:]
	if len(names) == 0 {
		entries, err := os.ReadDir(filepath.Join(root, "plugins"))
		if err != nil {
			return err
		}
		for _, d := range entries {
			if _, err := os.Stat(filepath.Join(root, "manifests", d.Name()+".yaml")); d.IsDir() && err == nil {
				names = append(names, d.Name())
			}
		}
	}
	for _, name := range names {
		fmt.Fprintf(e.stderr, "building plugins/%s (GOOS=wasip1 GOARCH=wasm)…\n", name)
		start := time.Now()
		wasm, err := pluginbuild.Build(ctx, pluginbuild.Options{Package: "./plugins/" + name, Root: root})
		if err != nil {
			return err
		}
		stamped, err := pluginbuild.Stamp(filepath.Join(root, "manifests", name+".yaml"), wasm, *out)
		if err != nil {
			return err
		}
		if _, err := manifest.Load(stamped); err != nil {
			return fmt.Errorf("the stamped manifest does not load: %w", err)
		}
		fmt.Fprintf(e.stdout, "%s (%.1fs)\n", stamped, time.Since(start).Seconds())
	}
	return nil
}

func printAudit(e *env, events []audit.Event) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tREQUEST\tKIND\tTOOL\tOUTCOME\tDETAIL")
	for _, ev := range events {
		detail := ev.Message
		if ev.Kind == audit.KindRequest {
			detail = fmt.Sprintf("%s %s", ev.Method, ev.URL)
			if ev.Status != 0 {
				detail += fmt.Sprintf(" → %d", ev.Status)
			}
			if ev.Credential != "" {
				detail += fmt.Sprintf(" [credential %s injected=%v]", ev.Credential, ev.Injected)
			}
			if ev.Message != "" {
				detail += ": " + ev.Message
			}
		} else if ev.Kind == audit.KindAdmin || ev.Kind == audit.KindAuth || ev.Kind == audit.KindDropped {
			detail = auditDetail(ev)
		} else if ev.Code != "" {
			detail = ev.Code + ": " + ev.Message
		}
		if ev.Kind == audit.KindCall && (ev.User != "" || ev.Conversation != "") {
			detail = fmt.Sprintf("[user %s, conversation %s] %s", cmp.Or(ev.User, "-"), cmp.Or(ev.Conversation, "-"), detail)
		}
		if len(detail) > 140 {
			detail = detail[:137] + "..."
		}
		fmt.Fprintf(tw, "%s\t%.8s\t%s\t%s\t%s\t%s\n", ev.Time.Local().Format("15:04:05.000"), ev.RequestID, ev.Kind, ev.Tool, ev.Outcome, detail)
	}
	tw.Flush()
}
